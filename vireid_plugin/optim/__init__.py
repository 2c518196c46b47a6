"""Optimizers and LR schedules: parameter groups declared by the model, built by name.

``build_optimizer([model, criterion], optim='sgd', lr=...)`` (timm's optimizer
factory over the groups of :func:`param_groups`) and
``build_lr_scheduler(optimizer, iters_per_epoch, name=...)``; the names live in
``vireid_plugin.registry.OPTIMIZERS`` / ``SCHEDULERS``.
"""
from .optimizers import build_optimizer
from .param_groups import param_groups
from .schedulers import EpochScheduler, WarmupCosineLR, build_lr_scheduler
from .warmup_step import WarmupMultiStepLR  # noqa: F401  (registers warmup_multi_step)

__all__ = ['build_optimizer', 'param_groups', 'build_lr_scheduler', 'EpochScheduler',
           'WarmupCosineLR']
