"""``warmup_multi_step``: the AGW / CAJ schedule (mangye16/Cross-Modal-Re-ID-baseline
``adjust_learning_rate``), per epoch (0-based e): ``lr x (e + 1) / warmup_epochs`` while
``e < warmup_epochs``, then ``lr x gamma^k`` with k the number of ``stepsize`` milestones
``<= e``. Theirs: warm-up 10, milestones 20 and 50, gamma 0.1 (LR x 0.1 from epoch 20,
x 0.01 from epoch 50). Each parameter group scales its own LR, so the multipliers
(their backbone at 0.1 x LR) keep their ratio; stepped at the end of each epoch, as
torchreid's schedulers."""
import bisect

import torch

from ..registry import SCHEDULERS

__all__ = ['WarmupMultiStepLR', 'warmup_multi_step_factor']


def warmup_multi_step_factor(epoch, warmup_epochs, milestones, gamma):
    """The LR factor of 0-based ``epoch``."""
    warm = (epoch + 1) / warmup_epochs if epoch < warmup_epochs else 1.0
    return warm * gamma ** bisect.bisect_right(sorted(milestones), epoch)


class WarmupMultiStepLR(torch.optim.lr_scheduler.LambdaLR):
    per_iteration = False

    def __init__(self, optimizer, warmup_epochs=10, milestones=(20, 50), gamma=0.1):
        self.warmup_epochs, self.milestones, self.gamma = \
            int(warmup_epochs), [int(m) for m in milestones], float(gamma)
        super().__init__(optimizer, lambda e: warmup_multi_step_factor(
            e, self.warmup_epochs, self.milestones, self.gamma))


@SCHEDULERS.register('warmup_multi_step')
def _warmup_multi_step(optimizer, iters_per_epoch, max_epoch, warmup_epochs=10, stepsize=(20,),
                       gamma=0.1, **_):
    return WarmupMultiStepLR(optimizer, warmup_epochs=warmup_epochs, milestones=stepsize,
                             gamma=gamma)
