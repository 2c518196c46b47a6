"""The training loop and step of ``CrossModalEngine``: torchreid's ``train``,
``parse_data_for_train`` and ``forward_backward`` hooks, the log lines, and what a
non-finite loss does (``on_nonfinite``: skip, rollback or stop).

A mixin: it reads the settings ``CrossModalEngine.__init__`` sets (``self.device``,
``self.precision``, ``self.criterion``, ...) and trains through ``self.train_model``.
"""
import datetime
import time

import torch

from .. import distributed
from ..progress import progress
from .checkpoint import CheckpointManager, NonFiniteError, restore_training_state
from .train_log import LossWindow

ON_NONFINITE = ('skip', 'rollback', 'stop')


class TrainLoop:
    """One epoch, one step and the non-finite guard (mixed into ``CrossModalEngine``)."""

    def train(self, print_freq=10, fixbase_epoch=0, open_layers=None):
        """One epoch (from ``_start_iteration`` when resuming inside it).

        Loss terms stay on the device; every ``print_freq`` steps (and at the epoch's
        end) their means since the last log line are fetched in one transfer, printed
        and written to TensorBoard with the LR and the throughput.
        """
        self.set_model_mode('train')
        self.two_stepped_transfer_learning(self.epoch, fixbase_epoch, open_layers)
        start = self._begin_epoch()
        self.num_batches = len(self.train_loader)
        print_freq = max(1, int(print_freq))
        window = LossWindow()
        desc = 'epoch {}'.format(self.epoch + 1) + (
            '/{}'.format(self.max_epoch) if self.max_epoch else '')
        batches = progress(self.train_loader, desc, total=self.num_batches - start,
                           enabled=distributed.is_main())
        end = time.time()
        done = start
        for self.batch_idx, data in enumerate(batches, start=start):
            data_time = time.time() - end
            loss_summary = self.forward_backward(data)
            window.add(loss_summary, len(data['pid']), data_time)
            done = self.batch_idx + 1
            logged = done % print_freq == 0 or done == self.num_batches
            if logged:
                self._log_window(window, done)
            if done < self.num_batches and self._stop_requested(logged):
                if window.steps:
                    self._log_window(window, done)
                self._preempt(self.epoch, done)
            if self.checkpoint_every_iters and done % self.checkpoint_every_iters == 0 \
                    and done < self.num_batches:
                self.save_training_checkpoint(self.epoch, done)
            end = time.time()
        if window.steps:
            self._log_window(window, done)
        self.update_lr()

    def frozen_at_build(self, model):
        """Names of ``model``'s parameters that did not require gradients when the engine
        first saw it (LSMRL's CLIP text tower, the BNNeck bias): recorded once per model."""
        frozen = self._frozen_at_build.get(model)
        if frozen is None:
            frozen = frozenset(n for n, p in model.named_parameters() if not p.requires_grad)
            self._frozen_at_build[model] = frozen
        return frozen

    def two_stepped_transfer_learning(self, epoch, fixbase_epoch, open_layers, model=None):
        """torchreid's fixbase (only ``open_layers`` train for ``fixbase_epoch`` epochs, then
        every layer), except that what was frozen when the model was built stays frozen:
        torchreid's ``open_all_layers`` sets ``requires_grad`` on every parameter, so a
        frozen text tower would get (and, under DDP, all-reduce) gradients every step."""
        model = self.model if model is None else model
        if model is None:
            return
        frozen = self.frozen_at_build(model)
        super().two_stepped_transfer_learning(epoch, fixbase_epoch, open_layers, model=model)
        if frozen:
            for name, param in model.named_parameters():
                if name in frozen:
                    param.requires_grad_(False)

    def _log_window(self, window, done):
        """Print one line and write the TensorBoard scalars of the steps since the last."""
        # a pre-emption signal travels in the log's reduction (no collective of its own)
        means, seconds, steps, throughput, data_time = window.flush(self._stop_signalled())
        self._stop_agreed = window.flag
        step_time = seconds / max(1, steps)
        eta = step_time * (self.num_batches - done
                           + max(0, self.max_epoch - self.epoch - 1) * self.num_batches)
        lr = self.get_current_lr()
        print('epoch: [{}/{}][{}/{}]\ttime {:.3f}\tdata {:.3f}\teta {}\t{}\tlr {:.6f}\t'
              '{:.1f} img/s'.format(
                  self.epoch + 1, self.max_epoch, done, self.num_batches, step_time, data_time,
                  str(datetime.timedelta(seconds=int(eta))),
                  '\t'.join('{} {:.4f}'.format(k, v) for k, v in means.items()), lr, throughput))
        if self.writer is not None:
            # epochs of other lengths (the MIP sampler's) each span one nominal epoch, so the
            # curves' steps only grow
            nominal = self.schedule.get('iterations per epoch') or self.num_batches
            n_iter = self.epoch * nominal + round(done * nominal / self.num_batches)
            for name, value in means.items():
                self.writer.add_scalar('Train/' + name, value, n_iter)
            self.writer.add_scalar('Train/lr', lr, n_iter)
            self.writer.add_scalar('Train/throughput', throughput, n_iter)
            self.writer.add_scalar('Train/time', step_time, n_iter)
            self.writer.add_scalar('Train/data', data_time, n_iter)

    def _begin_epoch(self):
        """Epoch-start hooks; returns the iteration this epoch starts at."""
        start, self._start_iteration = self._start_iteration, 0
        sampler = getattr(self.train_loader, 'sampler', None)
        # a seeded sampler repeats its order unless told the epoch (as DistributedSampler)
        if hasattr(sampler, 'set_epoch'):
            sampler.set_epoch(self.epoch)
        if start:
            if hasattr(sampler, 'set_start'):
                sampler.set_start(start * self.train_loader.batch_size)
            else:
                print('=> The train sampler cannot start inside an epoch: epoch {} restarts '
                      'from its first batch'.format(self.epoch + 1))
                start = 0
        if hasattr(self.criterion, 'set_epoch'):
            self.criterion.set_epoch(self.epoch)
        if hasattr(self.scheduler, 'begin_epoch'):
            self.scheduler.begin_epoch(self.epoch)
        return start

    def parse_data_for_train(self, data):
        pids = data['pid']
        batch = {'pid': pids, 'camid': data['camid'],
                 # torchreid's own datasets have no modality: they are visible-only
                 'modality': data.get('modality', torch.zeros_like(pids))}
        return data['img'], batch

    def forward_backward(self, data):
        """One training step; returns {name: 0-d device tensor} (None if skipped).

        No host sync except one: whether the loss is finite (summed over the ranks),
        read after the backward pass is queued, so the device still has the whole
        forward and backward to run while the host waits; only the optimizer step's
        launch waits for it. Skip, rollback and stop need the answer before the update.
        """
        imgs, batch = self.parse_data_for_train(data)
        imgs = imgs.to(self.device, non_blocking=True)
        if self.batch_transform is not None:
            imgs = self.batch_transform(imgs, data.get('aug_seed'))
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        extra = {'pid': batch['pid']} if self._model_takes_pid else {}
        self.optimizer.zero_grad(set_to_none=True)
        with self.precision.autocast():
            outputs = self.train_model(imgs, modality=batch['modality'], camid=batch['camid'],
                                       named_outputs=True, **extra)
        loss, parts = self.criterion(outputs, batch)  # loss terms compute in fp32
        self.precision.backward(loss)
        distributed.all_reduce_grads(self._criterion_params())
        if not self._all_finite(loss):
            self._handle_nonfinite(loss, parts)
            self._advance_schedule()   # a skipped or rolled-back step still counts
            return None
        self._nonfinite_run = 0
        params = [p for group in self.optimizer.param_groups for p in group['params']]
        self.precision.step(self.optimizer, params, self.grad_clip)
        self._advance_schedule()
        summary = {k: v.detach() for k, v in parts.items()}
        summary['loss'] = loss.detach()
        logits = outputs.get('logits')
        if isinstance(logits, (list, tuple)) and logits:
            logits = logits[0]  # several heads: the first (global) one
        if torch.is_tensor(logits):
            summary['acc'] = (logits.detach().argmax(1) == batch['pid']).float().mean() * 100
        return summary

    def _advance_schedule(self):
        """A per-iteration schedule to the position after this step (taken, skipped or rolled
        back: the schedule follows the iteration count, not the updates).

        Inside ``train`` a schedule with ``step_to`` is placed, not stepped: after ``done``
        of the ``n`` steps of epoch ``e`` it stands at ``(e + done / n)`` epochs, i.e.
        ``e * L + done * L / n`` of its iterations (``L``: its ``iters_per_epoch``, the
        epoch length it was built for). Epochs whose length differs from ``L`` (the MIP
        sampler's differ by about a batch) thus cover exactly one epoch of the schedule
        each, and ``n == L`` gives the integer count ``e * L + done`` of a plain
        ``step()``. Other per-iteration schedulers are stepped up to that count."""
        sched = self.scheduler
        if not getattr(sched, 'per_iteration', False):
            return
        n, idx = getattr(self, 'num_batches', None), getattr(self, 'batch_idx', None)
        if not n or idx is None:   # forward_backward called outside train(): one step
            sched.step()
            return
        done = idx + 1
        if hasattr(sched, 'step_to'):
            nominal = getattr(sched, 'iters_per_epoch', None) or n
            sched.step_to(self.epoch * nominal + done * nominal / n)
            return
        target, last = self.epoch * n + done, getattr(sched, 'last_epoch', None)
        if not isinstance(last, int) or last >= target:   # not behind (or no count): a step
            sched.step()
            return
        for _ in range(target - last):
            sched.step()

    def _criterion_params(self):
        """Loss-term parameters that train (outside the DDP model: reduced by hand)."""
        if not isinstance(self.criterion, torch.nn.Module):
            return []
        return [p for p in self.criterion.parameters() if p.requires_grad]

    @staticmethod
    def _all_finite(loss):
        """Whether the loss is finite on every rank (the step's one host sync)."""
        finite = torch.isfinite(loss.detach()).float()
        if distributed.is_distributed():
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        return bool(finite)

    def _handle_nonfinite(self, loss, parts):
        """A NaN/inf loss: no step is taken; then skip, roll back or stop."""
        self.nonfinite_steps += 1
        self._nonfinite_run += 1
        terms = [name for name, value in parts.items() if not torch.isfinite(value)] or \
            ['the weighted sum']
        where = 'epoch {} iteration {}'.format(self.epoch + 1, self.batch_idx + 1)
        if self.on_nonfinite == 'stop' or self._nonfinite_run > self.max_nonfinite_steps:
            raise NonFiniteError(
                'non-finite loss ({}) at {} in term(s) {}{}; no checkpoint was written after '
                'it. Lower train.lr, set train.grad_clip, or train.amp off'.format(
                    float(loss.detach()), where, ', '.join(terms),
                    ' ({} steps in a row)'.format(self._nonfinite_run)
                    if self._nonfinite_run > 1 else ''))
        if self.on_nonfinite == 'rollback':
            path, ckpt = CheckpointManager(self._save_dir, self.keep_checkpoints).latest_good()
            if path is None:
                raise NonFiniteError('non-finite loss at {} in term(s) {} and no checkpoint to '
                                     'roll back to'.format(where, ', '.join(terms)))
            restore_training_state(ckpt, path, self.model, self.optimizer, self.scheduler,
                                   self.criterion, self.precision.scaler)
            print('=> Non-finite loss at {} in term(s) {}: rolled back to "{}" (data order '
                  'continues from here)'.format(where, ', '.join(terms), path))
        else:
            print('=> Non-finite loss at {} in term(s) {}: step skipped'.format(
                where, ', '.join(terms)))

    def get_current_lr(self, names=None):
        """The base LR (torchreid logs its last group's, which may carry a multiplier)."""
        group = self.optimizer.param_groups[-1]
        return group['lr'] / group.get('lr_mult', 1.0)

    def update_lr(self, names=None):
        # per-iteration schedulers already stepped in forward_backward
        if not getattr(self.scheduler, 'per_iteration', False):
            super().update_lr(names)
