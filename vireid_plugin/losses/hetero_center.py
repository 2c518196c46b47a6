"""Cross-modal hetero-centre alignment (modality-level loss for discriminability).

Per identity present in the batch, the centre (mean feature) of its visible
sequences and the centre of its infrared sequences. Each centre of an identity
that has both is an anchor: its other-modality centre is the positive, the
nearest centre of any other identity (either modality) the negative, and the
loss is ``mean relu(d_pos - d_neg + margin)`` (hetero-centre triplet, Liu et al.
2020). The two modalities of an identity are pulled together and pushed from
the other identities' centres. Computed with one row per sample (its group's centre)
and each group counted once: fixed sizes, no host sync on a GPU (no ``torch.unique``,
``bincount``, ``.any()`` test or boolean indexing).
"""
import torch
import torch.nn.functional as F

from ..registry import LOSSES
from .build import LossTerm

__all__ = ['HeteroCenterLoss', 'hetero_center_loss', 'sample_centres']


def sample_centres(feats, pid, modality):
    """(B, D) the centre of each sample's (pid, modality) group, and (B,) whether the sample
    is its group's first (one representative per group). Fixed sizes: no host sync. Each
    group's sum is accumulated at its first sample's row, in sample order."""
    same = (pid[:, None] == pid[None, :]) & (modality[:, None] == modality[None, :])
    group = same.to(torch.uint8).argmax(1)          # the first sample of each one's group
    first = group == torch.arange(len(pid), device=pid.device)
    sums = torch.zeros_like(feats).index_add_(0, group, feats)
    counts = same.sum(1).to(feats.dtype)
    return sums[group] / counts[:, None], first


def hetero_center_loss(feats, pid, modality, margin=0.3, normalize_feature=False):
    with torch.autocast(device_type=feats.device.type, enabled=False):
        x = feats.float()
        if normalize_feature:
            x = F.normalize(x, dim=1)
        # one row per sample, its group's centre; each group is counted once (its first
        # sample) in the mean, and max/min over duplicates equal those over groups
        centres, first = sample_centres(x, pid, modality)
        # (B, B) rows, not (G, G): the exact pairwise form at every size (the matmul
        # form torch picks above 25 rows differs in rounding)
        dist = torch.cdist(centres, centres, compute_mode='donot_use_mm_for_euclid_dist')
        same_id = pid[:, None] == pid[None, :]
        pos = same_id & (modality[:, None] != modality[None, :])
        neg = ~same_id
        valid = pos.any(1) & neg.any(1) & first
        d_pos = dist.masked_fill(~pos, float('-inf')).amax(1)
        d_neg = dist.masked_fill(~neg, float('inf')).amin(1)
        per_anchor = torch.where(valid, F.relu(d_pos - d_neg + margin), 0.)
        return per_anchor.sum() / valid.sum().clamp(min=1)


@LOSSES.register('hetero_center')
class HeteroCenterLoss(LossTerm):
    """``hetero_center_loss`` of ``outputs[key]`` (default: the CMI features)."""

    default_key = 'cmi_features'
    config = {'margin': 0.3, 'normalize_feature': False, 'key': 'cmi_features'}

    def __init__(self, margin=0.3, normalize_feature=False, key=None):
        super().__init__(key)
        self.margin = float(margin)
        self.normalize_feature = bool(normalize_feature)

    def forward(self, outputs, batch):
        pid, modality = self.label(batch), self.label(batch, 'modality')
        return self.reduce_heads([hetero_center_loss(f, pid, modality, self.margin,
                                                     self.normalize_feature)
                                  for f in self.heads(outputs)], outputs)
