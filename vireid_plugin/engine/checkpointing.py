"""Checkpoints and resume as ``CrossModalEngine`` does them: what a checkpoint holds
(``training_state``), when rank 0 writes one, torchreid's ``save_model`` hook, and an
exact ``resume`` (mid-epoch included, a changed schedule refused or rebuilt).

The files themselves (names, atomic writes, keeping, reading, restoring) are
``engine/checkpoint.py``'s; this mixin is the engine's side of them.
"""
import json
import os
import warnings

import torch

from .. import distributed
from ..checkpoint_io import WriteError, atomic_write
from ..data.seeded import cuda_rng_states, rng_state, set_rng_state
from ..errors import bounded_repr
from .checkpoint import (CheckpointError, CheckpointManager, checkpoint_name, load_checkpoint,
                         restore_training_state, schedule_changes)
from .preemption import PREEMPTED_FILE, Preempted

#: an optimizer group's keys that belong to the LR schedule
LR_KEYS = ('lr', 'initial_lr')


class Checkpointing:
    """Saving and resuming the whole training state (mixed into ``CrossModalEngine``)."""

    def training_state(self, epoch, iteration=0, cuda_rng=None):
        """Everything an uninterrupted run would still have at (epoch, iteration).
        ``cuda_rng``: every rank's CUDA generator state (``cuda_rng_states``, gathered by
        every rank); None: this process's own (one process)."""
        if cuda_rng is None and not distributed.is_distributed():
            cuda_rng = cuda_rng_states(self.device)
        criterion_state = self.criterion.state_dict() if isinstance(
            self.criterion, torch.nn.Module) else {}
        scaler = self.precision.scaler
        return {'state_dict': self.model.state_dict(), 'criterion': criterion_state or None,
                'optimizer': self.optimizer.state_dict() if self.optimizer else None,
                'scheduler': self.scheduler.state_dict() if self.scheduler else None,
                'scaler': scaler.state_dict() if scaler is not None else None,
                'rng': rng_state(cuda_rng), 'epoch': int(epoch), 'iteration': int(iteration),
                'schedule': self.schedule,
                'selection': {'select_on': self.select_on, 'best_score': self.best['score'],
                              'best_epoch': self.best['epoch']},
                'rank1': None}

    def save_training_checkpoint(self, epoch, iteration=0, best=False, policy=True):
        """Rank 0 writes; every rank waits for the file (others may read it: rollback,
        model selection). A failed write goes to ``train.on_write_error`` (``policy``
        False: it always raises); when it stops the run, every rank stops here together
        (``WritePolicy.agree``)."""
        path, failed = None, None
        cuda_rng = cuda_rng_states(self.device)   # every rank's (a collective on CUDA)
        if distributed.is_main():
            state = self.training_state(epoch, iteration, cuda_rng)

            def write():
                return self.checkpoints.save(state, epoch, iteration, best=best)
            if policy:
                path = self.write_policy.write('checkpoint', write)
            else:
                try:
                    path = write()
                except WriteError as exc:
                    failed = exc
            if path:
                print('Checkpoint saved to "{}"{}'.format(path,
                                                         ' (best so far)' if best else ''))
        self.write_policy.agree(failed)   # the barrier: every rank waits for the file
        return path

    def _stop_signalled(self):
        """Whether this process got a pre-emption signal (no collective)."""
        return self._preemption is not None and self._preemption.received is not None

    def _stop_requested(self, logged=True):
        """Whether a pre-emption signal came (on any rank) while run() trains. One process:
        asked after every step (a flag, no cost). Several: every rank learns it from the
        last log line's reduction (``_stop_agreed``, every ``train.print_freq`` steps and
        at the end of each epoch), so the check adds no collective and no host sync;
        ``logged`` says whether that reduction just ran."""
        if self._preemption is None:
            return False
        if not distributed.is_distributed():
            return self._preemption.requested()
        return logged and self._preemption.agree(getattr(self, '_stop_agreed', False))

    def _preempt(self, epoch, iteration, saved=False, path=None):
        """Write the checkpoint at (epoch, iteration) unless it was just ``saved`` (to
        ``path``), then ``preempted.json``; raise ``Preempted`` (every rank)."""
        signame = self._preemption.signame
        print('=> {} received: stopping {} with a checkpoint ({})'.format(
            signame, 'at epoch {} iteration {}'.format(epoch + 1, iteration) if iteration
            else 'after epoch {}'.format(epoch), checkpoint_name(epoch, iteration)
            + (': {} whole epochs and {} iterations of the next'.format(epoch, iteration)
               if iteration else '')))
        if not saved:
            path = self.save_training_checkpoint(epoch, iteration, policy=False)
        elif path is None and distributed.is_main():   # failed under 'retry': now or never
            path = self.checkpoints.save(self.training_state(epoch, iteration), epoch,
                                         iteration)
        if distributed.is_main():
            record = {'signal': signame, 'epoch': int(epoch), 'iteration': int(iteration),
                      'checkpoint': path, 'ignored_signals': self._preemption.extra,
                      'results': self.last_results, 'untrained_results': self.initial_results}
            atomic_write(os.path.join(self._save_dir, PREEMPTED_FILE),
                         lambda f: json.dump(record, f, indent=2), mode='w')
            if self.writer is not None:   # the curves so far
                self.writer.flush()
        raise Preempted(signame, epoch, iteration, path)

    def save_model(self, epoch, rank1, save_dir, is_best=False):
        """torchreid's hook: the checkpoint after ``epoch + 1`` whole epochs."""
        self.checkpoints = self.checkpoints or CheckpointManager(save_dir, self.keep_checkpoints)
        return self.save_training_checkpoint(epoch + 1, 0, best=is_best)

    def resume(self, path, save_dir, rebuild_schedule=False, fresh_optimizer=False):
        """Continue from ``path`` (or ``'auto'``: the newest good checkpoint of ``save_dir``).

        ``fresh_optimizer``: everything but the optimizer's state is restored; its groups
        get the LRs the schedule had reached (the moments start afresh).

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
        epoch, iteration = _position(ckpt, path)
        changes = schedule_changes(ckpt.get('schedule') if isinstance(ckpt, dict) else None,
                                   self.schedule)
        if changes and not rebuild_schedule:
            raise CheckpointError(
                '{} was trained with another schedule ({}); resuming would keep the old LR '
                'schedule. Restore those values, or set train.resume_rebuild_schedule True to '
                'rebuild the schedule from this config'.format(path, '; '.join(changes)))
        # the LRs the freshly built schedule gave the groups: the loaded optimizer state
        # carries the old schedule's (decayed) ones
        fresh = [{k: g[k] for k in LR_KEYS if k in g} for g in self.optimizer.param_groups] \
            if changes and self.optimizer is not None else None
        restore_training_state(ckpt, path, self.model,
                                None if fresh_optimizer else self.optimizer,
                                None if changes else self.scheduler, self.criterion,
                                self.precision.scaler)
        if fresh_optimizer and self.optimizer is not None:
            self._schedule_lrs_to_groups(changes)
        if changes:
            iteration = self._rebuild_schedule(ckpt['schedule'], epoch, iteration, fresh)
        if ckpt.get('rng'):
            try:
                note = set_rng_state(ckpt['rng'], distributed.rank(), distributed.world_size(),
                                     self.device)
            except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
                raise CheckpointError('{}: its random-generator state (rng) is malformed ({}: '
                                      '{}); it was not written by this plugin\'s engine, or '
                                      'was edited'.format(path, type(exc).__name__,
                                                          str(exc)[:100])) from None
            if note:
                print('=> Resume: {}'.format(note))
        sel = ckpt.get('selection') or {}
        if sel.get('select_on') == self.select_on:
            self.best.update(score=sel.get('best_score'), epoch=sel.get('best_epoch'))
        self.start_epoch, self._start_iteration = epoch, iteration
        print('=> Resumed from "{}": epoch {}{}{}'.format(
            path, epoch + 1 if iteration else epoch,
            ', iteration {}'.format(iteration) if iteration else ' done',
            ' (schedule rebuilt: {})'.format('; '.join(changes)) if changes else ''))
        return epoch

    def _schedule_lrs_to_groups(self, rebuilt):
        """With a fresh optimizer state: the groups take the LRs the restored scheduler had
        set (a rebuilt schedule sets its own, ``_rebuild_schedule``)."""
        sched, groups = self.scheduler, self.optimizer.param_groups
        last = getattr(sched, '_last_lr', None) if sched is not None and not rebuilt else None
        if last is not None and len(last) == len(groups):
            for group, lr in zip(groups, last):
                group['lr'] = lr
        print('=> Resume: the optimizer state was not restored (train.resume_fresh_optimizer '
              'True): its moments start afresh{}'.format(
                  ', at the LRs the schedule had reached ({})'.format(
                      ', '.join('{:.3g}'.format(g['lr']) for g in groups))
                  if last is not None else ''))

    def _rebuild_schedule(self, saved, epoch, iteration, fresh=None):
        """Bring the freshly built scheduler to where training is, from the LRs it started
        the groups at (``fresh``: the loaded optimizer state holds the old schedule's, and
        torchreid's chainable schedulers would step on top of them); returns the iteration
        inside the epoch in the new batch size."""
        old_bs = saved.get('train.batch_size')
        new_bs = self.schedule.get('train.batch_size')
        if iteration and old_bs and new_bs and old_bs != new_bs:
            iteration = iteration * old_bs // new_bs
        sched = self.scheduler
        for group, values in zip(self.optimizer.param_groups, fresh or ()):
            for key in LR_KEYS:
                group.pop(key, None)
            group.update(values)
        if sched is None:
            return iteration
        with warnings.catch_warnings():   # stepping a scheduler before any optimizer step
            warnings.simplefilter('ignore', UserWarning)
            if getattr(sched, 'per_iteration', False):
                sampler = getattr(self.train_loader, 'sampler', None)
                if hasattr(sampler, 'set_epoch'):   # the length of the epoch resumed in
                    sampler.set_epoch(epoch)
                n = len(self.train_loader)
                if hasattr(sched, 'step_to'):
                    nominal = getattr(sched, 'iters_per_epoch', None) or n
                    sched.step_to(epoch * nominal + iteration * nominal / n)
                else:
                    for _ in range(epoch * n + iteration):
                        sched.step()
            elif not hasattr(sched, 'begin_epoch'):
                for _ in range(epoch):
                    sched.step()
        return iteration


def _position(ckpt, path):
    """(epoch, iteration) of a training checkpoint, whole numbers >= 0, or one
    ``CheckpointError`` naming the file (before anything is restored from it)."""
    if not isinstance(ckpt, dict):
        return 0, 0   # restore_training_state names what it is
    values = []
    for key, default in (('epoch', None), ('iteration', 0)):
        value = ckpt.get(key, default) if key != 'iteration' else (ckpt.get(key) or 0)
        if value is None and key == 'epoch':
            return 0, 0   # no epoch: restore_training_state refuses it as not a checkpoint
        if isinstance(value, torch.Tensor) and value.numel() == 1:   # other trainers' files
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                value != value or value < 0 or int(value) != value:
            raise CheckpointError('{}: {} is {} ({}); expected a whole number >= 0'.format(
                path, key, bounded_repr(value), type(value).__name__))
        values.append(int(value))
    return tuple(values)
