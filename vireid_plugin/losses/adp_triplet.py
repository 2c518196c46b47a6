"""CAJ's triplet with adaptive weights and an enhanced squared difference
(``TripletLoss_ADP(alpha, gamma, square)`` of mangye16/Cross-Modal-Re-ID-baseline
``ICCV21_CAJ/loss.py``), computed as theirs:

- ``d`` Euclidean distances (``sqrt(max(d^2, 1e-12))``); the positives of anchor i are
  the samples of its pid **including i itself** (distance 1e-6), the negatives the others;
- weights ``w = exp(s - m) * mask / (sum(exp(s - m) * mask) + 1e-6)`` with ``m`` the row
  maximum of ``s * mask`` (their ``softmax_weights``): ``s = alpha d`` on the positives,
  ``s = -alpha d`` on the negatives. For the negatives ``m`` is 0 (the masked zeros win),
  not the largest score, so in fp32 the weights underflow when every negative is farther
  than about 87 / alpha (a quirk of theirs, kept);
- ``d_p = sum(w_p d)`` (far positives weigh more), ``d_n = sum(w_n d)`` (close negatives);
- ``square`` False: ``softplus(gamma (d_p - d_n))`` (SoftMarginLoss with target 1); with
  ``alpha = gamma = 1`` that is exactly their AGW ``TripletLoss_WRT``;
- ``square`` True: ``x = min(gamma (d_p - d_n)^2, 88)``, ``softplus(x)`` where
  ``d_p > d_n`` and ``softplus(-x)`` elsewhere (SoftMarginLoss with target
  ``-1`` / ``+1``);
- mean over the anchors.
The plugin's ``wrt_triplet`` leaves the anchor out of its positives and uses a true
softmax, so it is close to, but not, their ``TripletLoss_WRT``.
"""
import torch
import torch.nn.functional as F

from ..registry import LOSSES
from .build import LossTerm
from .triplet import pairwise_euclidean

__all__ = ['AdaptiveTriplet', 'adp_triplet', 'adaptive_weights']


def adaptive_weights(scores, mask):
    """Their ``softmax_weights(scores, mask)`` (see the module doc)."""
    top = (scores * mask).max(dim=1, keepdim=True)[0]
    e = torch.exp(scores - top) * mask
    return e / (e.sum(dim=1, keepdim=True) + 1e-6)


def adp_triplet(feats, pid, alpha=1.0, gamma=1.0, square=True, normalize_feature=False):
    """The loss of one (B, D) feature tensor (computed in fp32, autocast off)."""
    with torch.autocast(device_type=feats.device.type, enabled=False):
        x = feats.float()
        if normalize_feature:
            x = x / (x.norm(dim=1, keepdim=True) + 1e-12)   # their normalize()
        dist = pairwise_euclidean(x)
        pos = (pid[:, None] == pid[None, :]).float()
        neg = 1. - pos
        d_ap, d_an = dist * pos, dist * neg
        d_p = (d_ap * adaptive_weights(d_ap * alpha, pos)).sum(1)
        d_n = (d_an * adaptive_weights(-d_an * alpha, neg)).sum(1)
        if not square:
            return F.softplus(gamma * (d_p - d_n)).mean()
        x2 = (gamma * (d_p - d_n).pow(2)).clamp(max=88)
        sign = torch.where(d_p > d_n, 1., -1.)
        return F.softplus(sign * x2).mean()


@LOSSES.register('adp_triplet')
class AdaptiveTriplet(LossTerm):
    """``adp_triplet`` of ``outputs[key]`` (a (B, D) tensor or a list of them, averaged)."""

    default_key = 'features'
    config = {'alpha': 1.0, 'gamma': 1.0, 'square': True, 'normalize_feature': False}

    def __init__(self, alpha=1.0, gamma=1.0, square=True, normalize_feature=False, key=None):
        super().__init__(key)
        self.alpha, self.gamma = float(alpha), float(gamma)
        self.square, self.normalize_feature = bool(square), bool(normalize_feature)

    def forward(self, outputs, batch):
        pid = self.label(batch)
        return self.reduce_heads([adp_triplet(f, pid, self.alpha, self.gamma, self.square,
                                              self.normalize_feature)
                                  for f in self.heads(outputs)], outputs)

    def extra_repr(self):
        return 'key={!r}, alpha={}, gamma={}, square={}'.format(self.key, self.alpha,
                                                                  self.gamma, self.square)
