"""Weighted-regularisation triplet loss (AGW, Ye et al., "Deep Learning for Person
Re-identification: A Survey and Outlook"): no margin, no hard mining.

For anchor i, positives P (other samples of its pid) and negatives N (other pids):
``d_p = sum_j softmax_P(d_ij) d_ij`` (far positives weigh more), ``d_n = sum_k
softmax_N(-d_ik) d_ik`` (close negatives weigh more), loss = mean over anchors of
``softplus(d_p - d_n)`` (PyTorch's SoftMarginLoss with target 1). Anchors without a
positive or a negative in the batch are left out; none left gives 0.
"""
import torch
import torch.nn.functional as F

from ..registry import LOSSES
from .build import LossTerm
from .triplet import pairwise_euclidean

__all__ = ['WeightedRegularizationTriplet', 'wrt_triplet']


def _masked_softmax(x, mask):
    x = x.masked_fill(~mask, float('-inf'))
    w = torch.softmax(x, dim=1)
    return torch.nan_to_num(w, nan=0.0)  # rows without any candidate


def wrt_triplet(feats, pid, normalize_feature=False):
    """The loss of one (B, D) feature tensor (computed in fp32, autocast off)."""
    with torch.autocast(device_type=feats.device.type, enabled=False):
        x = feats.float()
        if normalize_feature:
            x = F.normalize(x, dim=1)
        dist = pairwise_euclidean(x)
        same = pid[:, None] == pid[None, :]
        eye = torch.eye(len(pid), dtype=torch.bool, device=pid.device)
        pos, neg = same & ~eye, ~same
        d_p = (_masked_softmax(dist, pos) * dist).sum(1)
        d_n = (_masked_softmax(-dist, neg) * dist).sum(1)
        valid = pos.any(1) & neg.any(1)
        if not valid.any():
            return x.sum() * 0.
        return F.softplus(d_p[valid] - d_n[valid]).mean()


@LOSSES.register('wrt_triplet')
class WeightedRegularizationTriplet(LossTerm):
    """``wrt_triplet`` of ``outputs[key]`` (a (B, D) tensor or a list of them, averaged)."""

    default_key = 'features'
    config = {'normalize_feature': False}

    def __init__(self, normalize_feature=False, key=None):
        super().__init__(key)
        self.normalize_feature = bool(normalize_feature)

    def forward(self, outputs, batch):
        pid = self.label(batch)
        return self.reduce_heads([wrt_triplet(f, pid, self.normalize_feature)
                                  for f in self.heads(outputs)], outputs)
