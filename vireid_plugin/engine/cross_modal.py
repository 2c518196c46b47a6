"""The plugin's torchreid Engine: cross-modal batches in, named losses out, runs that survive.

Extends torchreid's ``Engine`` through its hooks (``parse_data_for_train``,
``forward_backward``, ``extract_features``, ``test``, ``train``, ``run``) so its
logging and TensorBoard writing stay as torchreid users know them. The same
engine trains image models (B, C, H, W) and video models (B, T, C, H, W): the
model, not the engine, handles the time axis.

What it adds to torchreid's loop:
- checkpoints every ``checkpoint_every`` epochs and ``checkpoint_every_iters``
  iterations, independent of evaluation (``engine/checkpoint.py``), and an exact
  ``resume`` from any of them, mid-epoch included;
- a non-finite loss stops that step, names the term, then skips the step, rolls
  back to the last checkpoint or stops (``on_nonfinite``);
- model selection (``select_on``): the last epoch, the best on SYSU-MM01's
  validation ids, or the best on the test set (allowed, and labelled as such);
- evaluation never disturbs the training RNG, so evaluating or not does not change
  the trained weights;
- a fast path: autocast (``precision.py``), losses kept on the device and logged every
  ``print_freq`` steps (``train_log.py``), optional ``torch.compile`` of the model;
- several processes under torchrun (``vireid_plugin.distributed``): the model trains in
  DistributedDataParallel, evaluation extracts a shard of the pool per rank and gathers
  it, only rank 0 prints, writes checkpoints, results and TensorBoard.

``self.model`` always stays the plain module (checkpoints and evaluation use it, so
state_dict keys have no ``module.`` / ``_orig_mod.`` prefix); training steps run through
``self.train_model``, the same parameters wrapped in DDP and/or compiled.
"""
import datetime
import inspect
import os
import time
import warnings

import torch
from torch.utils.tensorboard import SummaryWriter

from .. import compat, distributed
from ..config.loading import ConfigError
from ..data.seeded import preserved_rng, rng_state, set_rng_state
from ..progress import progress
from .checkpoint import (BEST, CheckpointError, CheckpointManager, NonFiniteError,
                         load_checkpoint, restore_training_state, schedule_changes)
from .evaluation import (append_results, extract_pool_features, format_table, pool_key,
                         scalar_tags, score_modes, trial_distance)
from .precision import Precision
from .saved_features import features_path, save_features
from .train_log import LossWindow
from .visualize import save_ranked_lists

SELECT_ON = ('last', 'val', 'test')
ON_NONFINITE = ('skip', 'rollback', 'stop')
SELECTION_LABEL = {'last': 'last epoch', 'val': 'best on the validation ids',
                   'test': 'best on the TEST set (optimistic: selected on the test data)'}


class CrossModalEngine(compat.Engine):
    """Args:
        datamanager: a (CrossModal)ImageDataManager or VideoDataManager.
        model: ``model(x, modality=None, camid=None)``; dict of outputs in train mode,
            features in eval mode.
        optimizer, scheduler: scheduler may be None or step per iteration
            (``per_iteration = True``), per epoch (torchreid's) or at epoch start
            (``begin_epoch``).
        criterion: ``criterion(outputs, batch) -> (total, {name: value})``; an nn.Module
            whose parameters (loss terms with heads) move to the device with the model
            and are saved in checkpoints; ``set_epoch`` is called every epoch.
        amp: auto / bf16 / fp16 / off.
        protocol_matrix: score every mode of each cross-modal target, not just its own.
        eval_before_train: score the untrained model first and report both.
        checkpoint_every: write a checkpoint every this many epochs (0: only the last).
        checkpoint_every_iters: also every this many iterations inside an epoch (0: off).
        keep_checkpoints: how many regular checkpoints to keep (the best one is extra).
        select_on: 'last', 'val' (SYSU-MM01's validation ids, held out of training) or
            'test' (the test set: labelled as optimistic everywhere).
        on_nonfinite: 'skip', 'rollback' or 'stop' on a NaN/inf loss;
            ``max_nonfinite_steps`` consecutive ones stop the run in any case.
        schedule: the settings that define the LR schedule ({config key: value}); a
            resume whose config changes one of them is refused unless rebuilt.
        compile: train through ``torch.compile(model)`` (the loss terms stay eager).
        find_unused_parameters, sync_bn: DistributedDataParallel options when several
            processes run (``vireid_plugin.distributed.wrap_model``).
        batch_transform: ``f(imgs, seed)`` applied to each training batch on the device
            (default: the data manager's ``batch_transform``, set by the uint8 image cache).
    """

    def __init__(self, datamanager, model, optimizer, criterion, scheduler=None,
                 use_gpu=True, amp='auto', grad_clip=0.0, protocol_matrix=False,
                 eval_before_train=False, test_batch_size=None, workers=None,
                 checkpoint_every=1, checkpoint_every_iters=0, keep_checkpoints=3,
                 select_on='last', on_nonfinite='skip', max_nonfinite_steps=10, schedule=None,
                 compile=False, find_unused_parameters=True, sync_bn=False,
                 batch_transform=None):
        super().__init__(datamanager, use_gpu)
        # uint8 image cache: augmentation + normalisation per batch on the device
        self.batch_transform = batch_transform if batch_transform is not None else \
            getattr(datamanager, 'batch_transform', None)
        if select_on not in SELECT_ON:
            raise ValueError('select_on must be one of {}, got {!r}'.format(SELECT_ON, select_on))
        if on_nonfinite not in ON_NONFINITE:
            raise ValueError('on_nonfinite must be one of {}, got {!r}'.format(
                ON_NONFINITE, on_nonfinite))
        # under torchrun each process was pinned to its GPU (distributed.init_distributed)
        self.device = torch.device('cuda', torch.cuda.current_device()) if self.use_gpu \
            else torch.device('cpu')
        self.model = model.to(self.device)
        self.compile = bool(compile)
        self.find_unused_parameters = bool(find_unused_parameters)
        self.sync_bn = bool(sync_bn)
        self._wrapped = (None, None)   # (model, its DDP / compiled training wrapper)
        self.max_epoch = 0             # set by run()
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.criterion = criterion.to(self.device) if isinstance(criterion, torch.nn.Module) \
            else criterion
        # models that need the labels in training (pairing, label injection) take pid=
        self._model_takes_pid = 'pid' in inspect.signature(model.forward).parameters
        self.register_model('model', self.model, optimizer, scheduler)
        self.precision = Precision(amp, self.device)
        self.grad_clip = grad_clip
        self.protocol_matrix = protocol_matrix
        self.eval_before_train = eval_before_train
        self.test_batch_size = test_batch_size
        self.workers = workers
        self.checkpoint_every = int(checkpoint_every)
        self.checkpoint_every_iters = int(checkpoint_every_iters)
        self.keep_checkpoints = int(keep_checkpoints)
        self.select_on = select_on
        self.on_nonfinite = on_nonfinite
        self.max_nonfinite_steps = int(max_nonfinite_steps)
        self.schedule = dict(schedule or {})
        self.last_results = {}
        self.initial_results = None
        self._stage = 'evaluation'  # recorded with each result: untrained / evaluation / ...
        self._selection = 'last'    # the model the next evaluation scores
        self.start_epoch = 0
        self._start_iteration = 0
        self.best = {'score': None, 'epoch': None, 'results': None}
        self.nonfinite_steps = 0
        self._nonfinite_run = 0
        self.checkpoints = None
        if select_on == 'val' and not hasattr(self._val_source(), 'val_pool'):
            raise ConfigError(
                "test.select_on val needs a source with an official validation split "
                "(sysu_mm01 with sysu.train_with_val False keeps its validation ids out of "
                "training); this run's sources have none: use 'last' or 'test'")

    # ---- training -------------------------------------------------------
    def set_model_mode(self, mode='train', names=None):
        super().set_model_mode(mode, names)
        if isinstance(self.criterion, torch.nn.Module):
            self.criterion.train(mode == 'train')

    @property
    def train_model(self):
        """``self.model`` as training steps call it: in DistributedDataParallel when several
        processes run, compiled with ``compile``; built on first use (and again if
        ``self.model`` is replaced)."""
        if self._wrapped[0] is not self.model:
            wrapped = distributed.wrap_model(self.model, self.device,
                                             self.find_unused_parameters, self.sync_bn)
            if self.compile:
                wrapped = torch.compile(wrapped)
            self._wrapped = (self.model, wrapped)
        return self._wrapped[1]

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
            if done % print_freq == 0 or done == self.num_batches:
                self._log_window(window, done)
            if self.checkpoint_every_iters and done % self.checkpoint_every_iters == 0 \
                    and done < self.num_batches:
                self.save_training_checkpoint(self.epoch, done)
            end = time.time()
        if window.steps:
            self._log_window(window, done)
        self.update_lr()

    def _log_window(self, window, done):
        """Print one line and write the TensorBoard scalars of the steps since the last."""
        means, seconds, steps, throughput, data_time = window.flush()
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
            n_iter = self.epoch * self.num_batches + done
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
            return None
        self._nonfinite_run = 0
        params = [p for group in self.optimizer.param_groups for p in group['params']]
        self.precision.step(self.optimizer, params, self.grad_clip)
        if getattr(self.scheduler, 'per_iteration', False):
            self.scheduler.step()
        summary = {k: v.detach() for k, v in parts.items()}
        summary['loss'] = loss.detach()
        logits = outputs.get('logits')
        if isinstance(logits, (list, tuple)) and logits:
            logits = logits[0]  # several heads: the first (global) one
        if torch.is_tensor(logits):
            summary['acc'] = (logits.detach().argmax(1) == batch['pid']).float().mean() * 100
        return summary

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

    # ---- checkpoints ----------------------------------------------------
    def training_state(self, epoch, iteration=0):
        """Everything an uninterrupted run would still have at (epoch, iteration)."""
        criterion_state = self.criterion.state_dict() if isinstance(
            self.criterion, torch.nn.Module) else {}
        scaler = self.precision.scaler
        return {'state_dict': self.model.state_dict(), 'criterion': criterion_state or None,
                'optimizer': self.optimizer.state_dict() if self.optimizer else None,
                'scheduler': self.scheduler.state_dict() if self.scheduler else None,
                'scaler': scaler.state_dict() if scaler is not None else None,
                'rng': rng_state(), 'epoch': int(epoch), 'iteration': int(iteration),
                'schedule': self.schedule,
                'selection': {'select_on': self.select_on, 'best_score': self.best['score'],
                              'best_epoch': self.best['epoch']},
                'rank1': None}

    def save_training_checkpoint(self, epoch, iteration=0, best=False):
        """Rank 0 writes; every rank waits for the file (others may read it: rollback,
        model selection)."""
        path = None
        if distributed.is_main():
            path = self.checkpoints.save(self.training_state(epoch, iteration), epoch,
                                         iteration, best=best)
            print('Checkpoint saved to "{}"{}'.format(path, ' (best so far)' if best else ''))
        distributed.barrier()
        return path

    def save_model(self, epoch, rank1, save_dir, is_best=False):
        """torchreid's hook: the checkpoint after ``epoch + 1`` whole epochs."""
        self.checkpoints = self.checkpoints or CheckpointManager(save_dir, self.keep_checkpoints)
        return self.save_training_checkpoint(epoch + 1, 0, best=is_best)

    def resume(self, path, save_dir, rebuild_schedule=False):
        """Continue from ``path`` (or ``'auto'``: the newest good checkpoint of ``save_dir``).

        Restores model, loss terms, optimizer, scheduler, AMP scaler, RNGs, the epoch and
        the iteration inside it. A config whose schedule settings differ from the
        checkpoint's is refused, or with ``rebuild_schedule`` the new schedule is built
        and brought to the checkpoint's step. Returns the epoch training resumes in.
        """
        if path == 'auto':
            path, ckpt = CheckpointManager(save_dir).latest_good()
            if path is None:
                print('=> model.resume auto: no checkpoint in "{}"; starting from '
                      'scratch'.format(os.path.join(save_dir, 'model')))
                return 0
        else:
            ckpt = load_checkpoint(path)
        changes = schedule_changes(ckpt.get('schedule') if isinstance(ckpt, dict) else None,
                                   self.schedule)
        if changes and not rebuild_schedule:
            raise CheckpointError(
                '{} was trained with another schedule ({}); resuming would keep the old LR '
                'schedule. Restore those values, or set train.resume_rebuild_schedule True to '
                'rebuild the schedule from this config'.format(path, '; '.join(changes)))
        restore_training_state(ckpt, path, self.model, self.optimizer,
                                None if changes else self.scheduler, self.criterion,
                                self.precision.scaler)
        epoch, iteration = int(ckpt['epoch']), int(ckpt.get('iteration', 0) or 0)
        if changes:
            iteration = self._rebuild_schedule(ckpt['schedule'], epoch, iteration)
        if ckpt.get('rng'):
            set_rng_state(ckpt['rng'])
        sel = ckpt.get('selection') or {}
        if sel.get('select_on') == self.select_on:
            self.best.update(score=sel.get('best_score'), epoch=sel.get('best_epoch'))
        self.start_epoch, self._start_iteration = epoch, iteration
        print('=> Resumed from "{}": epoch {}{}{}'.format(
            path, epoch + 1 if iteration else epoch,
            ', iteration {}'.format(iteration) if iteration else ' done',
            ' (schedule rebuilt: {})'.format('; '.join(changes)) if changes else ''))
        return epoch

    def _rebuild_schedule(self, saved, epoch, iteration):
        """Bring the freshly built scheduler to where training is; returns the iteration
        inside the epoch in the new batch size."""
        old_bs = saved.get('train.batch_size')
        new_bs = self.schedule.get('train.batch_size')
        if iteration and old_bs and new_bs and old_bs != new_bs:
            iteration = iteration * old_bs // new_bs
        sched = self.scheduler
        if sched is None:
            return iteration
        for group in self.optimizer.param_groups:   # the loaded state carries the old LRs
            group.pop('initial_lr', None)
        with warnings.catch_warnings():   # stepping a scheduler before any optimizer step
            warnings.simplefilter('ignore', UserWarning)
            if getattr(sched, 'per_iteration', False):
                for _ in range(epoch * len(self.train_loader) + iteration):
                    sched.step()
            elif not hasattr(sched, 'begin_epoch'):
                for _ in range(epoch):
                    sched.step()
        return iteration

    # ---- run ------------------------------------------------------------
    def run(self, save_dir='log', max_epoch=0, start_epoch=0, print_freq=10, fixbase_epoch=0,
            open_layers=None, start_eval=0, eval_freq=-1, test_only=False,
            dist_metric='euclidean', normalize_feature=False, visrank=False, visrank_topk=10,
            use_metric_cuhk03=False, ranks=(1, 5, 10, 20), rerank=False):
        main = distributed.is_main()
        # other ranks take part in evaluation (feature shards) but write nothing
        test_kwargs = dict(dist_metric=dist_metric, normalize_feature=normalize_feature,
                           ranks=ranks, save_dir=save_dir if main else '')
        visrank = visrank and main
        self._save_dir = save_dir
        self.checkpoints = CheckpointManager(save_dir, self.keep_checkpoints)
        if test_only:
            self.test(visrank=visrank, visrank_topk=visrank_topk, rerank=rerank,
                      use_metric_cuhk03=use_metric_cuhk03, **test_kwargs)
            return
        if self.writer is None and main:
            self.writer = SummaryWriter(log_dir=save_dir)
        start_epoch = max(start_epoch, self.start_epoch)
        fresh = start_epoch == 0 and not self._start_iteration
        if self.eval_before_train and fresh and max_epoch > 0:
            print('=> Evaluating the model before training')
            self._stage = 'untrained'
            self.test(**test_kwargs)
            self._stage = 'evaluation'
            self.initial_results = {k: [dict(r) for r in v] for k, v in self.last_results.items()}
        time_start = time.time()
        self.start_epoch, self.max_epoch = start_epoch, max_epoch
        print('=> Start training')
        for self.epoch in range(start_epoch, max_epoch):
            self.train(print_freq=print_freq, fixbase_epoch=fixbase_epoch,
                       open_layers=open_layers)
            done, last = self.epoch + 1, self.epoch + 1 == max_epoch
            periodic = eval_freq > 0 and done >= start_eval and done % eval_freq == 0
            best = False
            if last:
                print('=> Final test')
            if last or periodic:
                best = self._evaluate_epoch(done, test_kwargs)
            if last or best or (self.checkpoint_every and done % self.checkpoint_every == 0):
                self.save_training_checkpoint(done, 0, best=best)
        if max_epoch > start_epoch:
            self._report_selected(test_kwargs)
            elapsed = str(datetime.timedelta(seconds=round(time.time() - time_start)))
            print('Elapsed {}'.format(elapsed))
        if self.initial_results:
            for name, rows in self.last_results.items():
                before = self.initial_results[name][0]
                print('{}: mAP before training {:.2f}% -> after training {:.2f}% '
                      '(R1 {:.2f}% -> {:.2f}%)'.format(name, before['mAP'], rows[0]['mAP'],
                                                        before['R1'], rows[0]['R1']))
        if self.writer is not None:
            self.writer.close()

    def _evaluate_epoch(self, done, test_kwargs):
        """Evaluate after ``done`` epochs; returns whether it is the best for selection."""
        if self.select_on == 'val':
            score = self.evaluate_validation(done, test_kwargs['dist_metric'],
                                             test_kwargs['normalize_feature'],
                                             test_kwargs['save_dir'])
            if done == self.max_epoch:
                self.test(**test_kwargs)
        else:
            self.test(**test_kwargs)
            score = _selection_score(self.last_results)
        if self.select_on == 'last' or score is None:
            return False
        if self.best['score'] is None or score > self.best['score']:
            self.best.update(score=score, epoch=done,
                             results={k: [dict(r) for r in v]
                                      for k, v in self.last_results.items()})
            return True
        return False

    def _report_selected(self, test_kwargs):
        """With select_on val/test: the selected checkpoint's test results, labelled."""
        if self.select_on == 'last' or self.best['epoch'] is None:
            return
        label = SELECTION_LABEL[self.select_on]
        print('=> Model selected on {}: epoch {} (score {:.2f})'.format(
            'the validation ids' if self.select_on == 'val' else 'the TEST set',
            self.best['epoch'], self.best['score']))
        best_path = os.path.join(self.checkpoints.folder, BEST)
        if self.select_on == 'test' and self.best['results']:
            for name, rows in self.best['results'].items():   # already scored on test
                print(format_table(name, rows, note=label))
                append_results(test_kwargs['save_dir'], {
                    'dataset': name, 'epoch': int(self.best['epoch']), 'stage': 'selected',
                    'selection': self.select_on, 'rows': rows})
            return
        if not os.path.isfile(best_path):
            return
        ckpt = load_checkpoint(best_path)
        self.model.load_state_dict(ckpt['state_dict'])
        epoch, self.epoch = self.epoch, int(ckpt['epoch']) - 1
        self._stage, self._selection = 'selected', self.select_on
        try:
            self.test(**test_kwargs)
        finally:
            self._stage, self._selection, self.epoch = 'evaluation', 'last', epoch

    # ---- evaluation -----------------------------------------------------
    def extract_features(self, input, modality=None, camid=None):
        return self.model(input, modality=modality, camid=camid)

    def _feature_fn(self, imgs, modality, camid):
        return self.extract_features(imgs, modality, camid)

    def test(self, dist_metric='euclidean', normalize_feature=False, visrank=False,
             visrank_topk=10, save_dir='', use_metric_cuhk03=False, ranks=(1, 5, 10, 20),
             rerank=False):
        # evaluation leaves the training RNGs alone: evaluating or not, same weights
        distributed.broadcast_buffers(self.model)   # rank 0's BN statistics everywhere
        with preserved_rng():
            return self._test(dist_metric, normalize_feature, visrank, visrank_topk, save_dir,
                              use_metric_cuhk03, ranks, rerank)

    def _test(self, dist_metric, normalize_feature, visrank, visrank_topk, save_dir,
              use_metric_cuhk03, ranks, rerank):
        self.set_model_mode('eval')
        rank1 = None
        # targets that read the same pool the same way share one extraction (sysu_mm01 and
        # sysu_mm01_indoor, regdb and regdb_t2v, ...); what this evaluation scored is saved
        self._pool_cache, self._saved_entries = {}, {}
        for name in self.test_loader:
            dataset = self.test_loader[name]['query'].dataset
            rows = []
            if hasattr(dataset, 'eval_modes'):
                rows = self.evaluate_cross_modal(name, dataset, dist_metric, normalize_feature,
                                                 ranks, save_dir, rerank, visrank, visrank_topk)
                rank1, mAP = rows[0]['R1'] / 100, rows[0]['mAP'] / 100
            else:  # a torchreid single-modality dataset: torchreid's own evaluation
                rank1, mAP = self._evaluate(
                    dataset_name=name, query_loader=self.test_loader[name]['query'],
                    gallery_loader=self.test_loader[name]['gallery'], dist_metric=dist_metric,
                    normalize_feature=normalize_feature, visrank=visrank,
                    visrank_topk=visrank_topk, save_dir=save_dir,
                    use_metric_cuhk03=use_metric_cuhk03, ranks=list(ranks), rerank=rerank)
            if self.writer is not None:
                self.writer.add_scalar('Test/{}/rank1'.format(name), rank1, self.epoch)
                self.writer.add_scalar('Test/{}/mAP'.format(name), mAP, self.epoch)
                for tag, value in scalar_tags(name, rows):   # every row: R1, mAP, mINP
                    self.writer.add_scalar(tag, value, self.epoch)
        if save_dir and self._saved_entries:   # the figures' input (scripts/visualize.py)
            print('(pool features saved to "{}")'.format(save_features(
                features_path(save_dir, self._stage), self._saved_entries, stage=self._stage,
                epoch=self.epoch)))
        self._pool_cache = self._saved_entries = None
        return rank1

    def _pool_features(self, dataset, pool, loader_like=None, transform=None):
        batch = self.test_batch_size or (loader_like.batch_size if loader_like else 128)
        workers = self.workers if self.workers is not None else (
            loader_like.num_workers if loader_like else 0)
        shard = (distributed.rank(), distributed.world_size()) \
            if distributed.is_distributed() else None
        return extract_pool_features(self._feature_fn, dataset, batch, workers, self.device,
                                     self.precision.autocast, pool=pool, transform=transform,
                                     shard=shard)

    @torch.no_grad()
    def evaluate_cross_modal(self, name, dataset, dist_metric='euclidean',
                             normalize_feature=False, ranks=(1, 5, 10, 20), save_dir='',
                             rerank=False, visrank=False, visrank_topk=10):
        loader = self.test_loader[name]['query']
        start = time.time()
        cache = getattr(self, '_pool_cache', None)
        key = pool_key(dataset) if cache is not None else None
        shared = key is not None and key in cache
        if shared:
            feats = cache[key]
        else:
            feats = self._pool_features(dataset, dataset.test_pool, loader)
            if normalize_feature:
                feats = torch.nn.functional.normalize(feats, dim=1)
            if key is not None:
                cache[key] = feats
        extracted = time.time()
        modes = dataset.eval_modes(matrix=self.protocol_matrix)
        rows = score_modes(feats, dataset.test_pool, modes, dist_metric, ranks=ranks,
                           rerank=rerank)
        if self._stage == 'untrained':
            note = 'untrained model'
        elif self._stage == 'selected':
            note = 'selected: ' + SELECTION_LABEL[self._selection]
        else:
            note = 'epoch {}'.format(self.epoch + 1) + (
                '; model selection: ' + SELECTION_LABEL[self.select_on]
                if self.select_on != 'last' else '')
        print(format_table(name, rows, note=note))
        print('(features of {} pool items {}; {} trial(s) scored in {:.2f}s)'.format(
            len(dataset.test_pool), 'shared with an earlier target of the same pool' if shared
            else 'extracted once in {:.1f}s'.format(extracted - start),
            sum(m.num_trials for m in modes), time.time() - extracted))
        if getattr(self, '_saved_entries', None) is not None:
            reader = {k: getattr(dataset, k) for k in ('seq_len', 'frame_rule')
                      if getattr(dataset, k, None) is not None}
            self._saved_entries[name] = (feats, dataset.test_pool, modes, reader)
        if visrank:
            self.visualize_first_trial(name, dataset, feats, modes[0], dist_metric, rerank,
                                       save_dir, visrank_topk)
        self.last_results[name] = rows
        record = {'dataset': name, 'epoch': int(self.epoch), 'stage': self._stage, 'rows': rows}
        if self._stage != 'untrained':
            record['selection'] = self._selection if self._stage == 'selected' \
                else self.select_on
        append_results(save_dir, record)
        return rows

    def _val_source(self):
        return self.datamanager.train_set if hasattr(self.datamanager, 'train_set') else None

    @torch.no_grad()
    def evaluate_validation(self, epoch, dist_metric='euclidean', normalize_feature=False,
                            save_dir=''):
        """Score the validation ids (SYSU-MM01 protocol); returns the selection score."""
        distributed.broadcast_buffers(self.model)
        with preserved_rng():
            self.set_model_mode('eval')
            dataset = self._val_source()
            feats = self._pool_features(dataset, dataset.val_pool,
                                        transform=self.datamanager.transform_te)
            if normalize_feature:
                feats = torch.nn.functional.normalize(feats, dim=1)
            rows = score_modes(feats, dataset.val_pool, dataset.val_modes(), dist_metric)
        print(format_table('{} (validation ids)'.format(self.datamanager.sources[0]), rows,
                           note='epoch {}'.format(epoch)))
        append_results(save_dir, {'dataset': self.datamanager.sources[0], 'epoch': int(epoch),
                                  'stage': 'validation', 'rows': rows})
        return (rows[0]['R1'] + rows[0]['mAP']) / 2

    def visualize_first_trial(self, name, dataset, feats, mode, dist_metric, rerank,
                              save_dir, topk):
        """Ranked-list images of the first mode's first trial (test.visrank)."""
        gallery = mode.galleries[0]
        distmat = trial_distance(feats, mode.query, gallery, dist_metric, rerank)
        distmat = distmat.cpu().numpy() if torch.is_tensor(distmat) else distmat
        pool = dataset.test_pool
        folder = os.path.join(save_dir, 'visrank_' + name)
        save_ranked_lists(distmat, [pool[i] for i in mode.query], [pool[i] for i in gallery],
                          mode.metric, folder, topk=topk)
        print('Ranked lists of "{}" (trial 0) saved to "{}"'.format(mode.name, folder))


def _selection_score(results):
    """(R1 + mAP) / 2 of the first row of the first cross-modal target (MIP's rule)."""
    for rows in results.values():
        if rows:
            return (rows[0]['R1'] + rows[0]['mAP']) / 2
    return None
