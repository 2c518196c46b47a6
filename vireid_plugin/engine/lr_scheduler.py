"""Learning-rate schedules.

``warmup_cosine`` steps every iteration (ViT recipes warm up over a few hundred
iterations; torchreid's schedulers step once per epoch). torchreid's own
per-epoch schedulers remain available under their names.
"""
import math

import torch

from .. import compat


class WarmupCosineLR(torch.optim.lr_scheduler.LambdaLR):
    """Linear warmup from ``warmup_factor`` x lr, then cosine to ``min_lr_factor`` x lr."""

    per_iteration = True

    def __init__(self, optimizer, total_iters, warmup_iters=0, warmup_factor=0.01,
                 min_lr_factor=0.01, last_epoch=-1):
        self.total_iters = max(1, int(total_iters))
        self.warmup_iters = max(0, min(int(warmup_iters), self.total_iters))
        self.warmup_factor = warmup_factor
        self.min_lr_factor = min_lr_factor
        super().__init__(optimizer, self._factor, last_epoch=last_epoch)

    def _factor(self, it):
        if it < self.warmup_iters:
            alpha = it / self.warmup_iters
            return self.warmup_factor + (1.0 - self.warmup_factor) * alpha
        span = max(1, self.total_iters - self.warmup_iters)
        progress = min(1.0, (it - self.warmup_iters) / span)
        return self.min_lr_factor + (1 - self.min_lr_factor) * 0.5 * (1 + math.cos(math.pi * progress))


def build_lr_scheduler(cfg, optimizer, iters_per_epoch):
    name = cfg.train.lr_scheduler
    if name == 'warmup_cosine':
        return WarmupCosineLR(optimizer,
                              total_iters=cfg.train.max_epoch * iters_per_epoch,
                              warmup_iters=round(cfg.train.warmup_epochs * iters_per_epoch),
                              warmup_factor=cfg.train.warmup_factor,
                              min_lr_factor=cfg.train.min_lr_factor)
    return compat.optim.build_lr_scheduler(
        optimizer, lr_scheduler=name, stepsize=list(cfg.train.stepsize),
        gamma=cfg.train.gamma, max_epoch=cfg.train.max_epoch)
