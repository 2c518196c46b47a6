"""Weighted-regularisation triplet loss (AGW, Ye et al., "Deep Learning for Person
Re-identification: A Survey and Outlook"): no margin, no hard mining.

For anchor i, positives P (other samples of its pid) and negatives N (other pids):
``d_p = sum_j softmax_P(d_ij) d_ij`` (far positives weigh more), ``d_n = sum_k
softmax_N(-d_ik) d_ik`` (close negatives weigh more), loss = mean over anchors of
``softplus(d_p - d_n)`` (PyTorch's SoftMarginLoss with target 1). Anchors without a
positive or a negative in the batch are left out; none left gives 0. Masked means of
fixed size: no step of it waits for the GPU (no ``.any()`` test, no boolean indexing).
"""
import torch
import torch.nn.functional as F

from ..registry import LOSSES
from .build import LossTerm
from .triplet import pairwise_euclidean

__all__ = ['WeightedRegularizationTriplet', 'wrt_triplet']


def _masked_softmax(x, mask):
    """Softmax over each row's ``mask``ed entries; 0 in rows without any (their gradient
    too: such a row is softmaxed over zeros and masked, never through NaN)."""
    x = torch.where(mask.any(1, keepdim=True), x.masked_fill(~mask, float('-inf')), 0.)
    return torch.softmax(x, dim=1) * mask


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
        # the mean over the anchors with both (none: 0), without a host sync
        valid = pos.any(1) & neg.any(1)
        per_anchor = torch.where(valid, F.softplus(d_p - d_n), 0.)
        return per_anchor.sum() / valid.sum().clamp(min=1)


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
