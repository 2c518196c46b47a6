"""LR schedules by name (``train.lr_scheduler``).

- ``warmup_cosine``: per iteration, linear warmup from ``warmup_factor`` x lr, then
  cosine to ``min_lr_factor`` x lr, both relative to each group's own LR (so
  multipliers keep their ratio all the way; timm's schedulers take an absolute
  floor, which is why this one is written here).
- ``cosine_restarts``: timm's ``CosineLRScheduler`` stepped once per epoch, the
  MIP / TransReID recipe: cycles of ``cycle_epochs`` whose peaks decay by
  ``cycle_decay``, warmup of ``warmup_epochs`` from ``warmup_factor`` x lr, floor
  ``min_lr_factor`` x lr (absolute, as theirs).
- torchreid's ``single_step``, ``multi_step``, ``cosine`` (per epoch).
"""
import math

import torch
from timm.scheduler import CosineLRScheduler

from .. import compat
from ..registry import SCHEDULERS

__all__ = ['WarmupCosineLR', 'EpochScheduler', 'build_lr_scheduler']


class WarmupCosineLR(torch.optim.lr_scheduler.LambdaLR):
    """Linear warmup from ``warmup_factor`` x lr, then cosine to ``min_lr_factor`` x lr."""

    per_iteration = True

    def __init__(self, optimizer, total_iters, warmup_iters=0, warmup_factor=0.01,
                 min_lr_factor=0.01, last_epoch=-1, iters_per_epoch=None):
        #: the epoch length the schedule was built for: the engine places it at
        #: ``e * iters_per_epoch + done * iters_per_epoch / n`` after ``done`` of the ``n``
        #: steps of epoch ``e`` (``step_to``), so every epoch covers one epoch of it
        self.iters_per_epoch = int(iters_per_epoch) if iters_per_epoch else None
        self.total_iters = max(1, int(total_iters))
        self.warmup_iters = max(0, min(int(warmup_iters), self.total_iters))
        self.warmup_factor = warmup_factor
        self.min_lr_factor = min_lr_factor
        super().__init__(optimizer, self._factor, last_epoch=last_epoch)

    def step_to(self, position):
        """Set every group's LR to the schedule's value at ``position`` (iterations, may be
        fractional), as ``step()`` does for the next integer one."""
        self.last_epoch = position
        values = [base * self._factor(position) for base in self.base_lrs]
        for group, lr in zip(self.optimizer.param_groups, values):
            group['lr'] = lr
        self._last_lr = [group['lr'] for group in self.optimizer.param_groups]

    def _factor(self, it):
        if it < self.warmup_iters:
            alpha = it / self.warmup_iters
            return self.warmup_factor + (1.0 - self.warmup_factor) * alpha
        span = max(1, self.total_iters - self.warmup_iters)
        progress = min(1.0, (it - self.warmup_iters) / span)
        cosine = 0.5 * (1 + math.cos(math.pi * progress))
        return self.min_lr_factor + (1 - self.min_lr_factor) * cosine


class EpochScheduler:
    """A timm scheduler driven by the engine's epochs.

    ``begin_epoch(e)`` (0-based, called by the engine before epoch e's first step)
    sets the LR of ``t = e + 1``: TransReID and MIP call ``scheduler.step(epoch)``
    at the top of epochs numbered from 1, so epoch e trains at their t = e + 1.
    ``step()`` (torchreid's end-of-epoch call) does nothing.
    """

    per_iteration = False

    def __init__(self, scheduler):
        self.scheduler = scheduler
        self.optimizer = scheduler.optimizer

    def begin_epoch(self, epoch):
        self.scheduler.step(epoch + 1)

    def step(self):
        pass

    def lr_at(self, epoch):
        """The base (first group) LR of 0-based ``epoch``, without changing anything."""
        return self.scheduler._get_lr(epoch + 1)[0]

    def get_last_lr(self):
        return [g['lr'] for g in self.optimizer.param_groups]

    def state_dict(self):
        return self.scheduler.state_dict()

    def load_state_dict(self, state):
        self.scheduler.load_state_dict(state)


@SCHEDULERS.register('warmup_cosine')
def _warmup_cosine(optimizer, iters_per_epoch, max_epoch, warmup_epochs=5.0,
                   warmup_factor=0.01, min_lr_factor=0.01, **_):
    return WarmupCosineLR(optimizer, total_iters=max_epoch * iters_per_epoch,
                          warmup_iters=round(warmup_epochs * iters_per_epoch),
                          warmup_factor=warmup_factor, min_lr_factor=min_lr_factor,
                          iters_per_epoch=iters_per_epoch)


@SCHEDULERS.register('cosine_restarts')
def _cosine_restarts(optimizer, iters_per_epoch, max_epoch, lr, warmup_epochs=5.0,
                     warmup_factor=0.01, min_lr_factor=0.01, cycle_epochs=0, cycle_decay=0.1,
                     **_):
    base_lr = lr  # the floor and warmup start are absolute, from the base LR (as MIP's)
    cycle = int(cycle_epochs) or int(max_epoch)
    return EpochScheduler(CosineLRScheduler(
        optimizer, t_initial=cycle, lr_min=min_lr_factor * base_lr, cycle_decay=cycle_decay,
        # as many cycles as start inside the run: after the last one the floor holds (TransReID's
        # cycle_limit=1 with one cycle), so a cycle that divides max_epoch ends at the floor,
        # not at the peak of a cycle that never runs
        cycle_limit=max(1, math.ceil(max_epoch / cycle)), warmup_t=int(round(warmup_epochs)),
        warmup_lr_init=warmup_factor * base_lr, t_in_epochs=True))


def _torchreid(name):
    def build(optimizer, iters_per_epoch, max_epoch, stepsize=(20,), gamma=0.1, **_):
        return compat.optim.build_lr_scheduler(optimizer, lr_scheduler=name,
                                               stepsize=list(stepsize), gamma=gamma,
                                               max_epoch=max_epoch)
    return build


for _name in ('single_step', 'multi_step', 'cosine'):
    SCHEDULERS.register(_name, _torchreid(_name))


def build_lr_scheduler(optimizer, iters_per_epoch, name='warmup_cosine', **kwargs):
    """The scheduler ``name`` for ``optimizer`` (kwargs: see ``config.scheduler_kwargs``)."""
    return SCHEDULERS.get(name)(optimizer, iters_per_epoch, **kwargs)
