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
from ..checkpoint_io import atomic_write
from ..data.seeded import rng_state, set_rng_state
from .checkpoint import (CheckpointError, CheckpointManager, checkpoint_name, load_checkpoint,
                         restore_training_state, schedule_changes)
from .preemption import PREEMPTED_FILE, Preempted


class Checkpointing:
    """Saving and resuming the whole training state (mixed into ``CrossModalEngine``)."""

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

    def save_training_checkpoint(self, epoch, iteration=0, best=False, policy=True):
        """Rank 0 writes; every rank waits for the file (others may read it: rollback,
        model selection). A failed write goes to ``train.on_write_error`` (``policy``
        False: it always raises)."""
        path = None
        if distributed.is_main():
            state = self.training_state(epoch, iteration)

            def write():
                return self.checkpoints.save(state, epoch, iteration, best=best)
            path = self.write_policy.write('checkpoint', write) if policy else write()
            if path:
                print('Checkpoint saved to "{}"{}'.format(path,
                                                         ' (best so far)' if best else ''))
        distributed.barrier()
        return path

    def _stop_requested(self):
        """Whether a pre-emption signal came (on any rank) while run() trains."""
        return self._preemption is not None and self._preemption.requested()

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
