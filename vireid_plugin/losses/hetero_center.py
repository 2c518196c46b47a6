"""Cross-modal hetero-centre alignment (modality-level loss for discriminability).

Per identity present in the batch, the centre (mean feature) of its visible
sequences and the centre of its infrared sequences. Each centre of an identity
that has both is an anchor: its other-modality centre is the positive, the
nearest centre of any other identity (either modality) the negative, and the
loss is ``mean relu(d_pos - d_neg + margin)`` (hetero-centre triplet, Liu et al.
2020). The two modalities of an identity are pulled together and pushed from
the other identities' centres. The centres sit in batch-size slots (sorted as
``torch.unique`` sorts them, empty slots masked): fixed sizes, no host sync on a GPU
(no ``torch.unique``, ``bincount``, ``.any()`` test or boolean indexing).
"""
import torch
import torch.nn.functional as F

from ..registry import LOSSES
from .build import LossTerm

__all__ = ['HeteroCenterLoss', 'hetero_center_loss', 'group_means', 'group_slots']


def group_slots(pid, modality):
    """Fixed-size group layout of a batch: (B,) each sample's slot, (B,) whether a slot
    holds a group. Group (pid, modality) takes slot k when k groups have a smaller
    (pid, modality) (``torch.unique``'s sorted order); slots past the last group are
    empty. No host sync: every size is the batch size."""
    key = pid * 2 + modality
    n = len(key)
    index = torch.arange(n, device=key.device)
    same = key[:, None] == key[None, :]
    first = ~(same & (index[None, :] < index[:, None])).any(1)   # a group's first sample
    smaller = first[None, :] & (key[None, :] < key[:, None])
    slot = smaller.sum(1)                          # distinct groups with a smaller key
    used = index < first.sum()
    return slot, used


def group_means(feats, pid, modality):
    """Mean feature of every (pid, modality) group in sorted order, padded to the batch
    size: (B, D) centres (empty slots 0), (B,) pids, (B,) modalities, (B,) slot used.
    Each group's sum accumulates its samples in batch order (as ``index_add_``)."""
    slot, used = group_slots(pid, modality)
    sums = torch.zeros_like(feats).index_add_(0, slot, feats)
    counts = torch.zeros(len(pid), dtype=feats.dtype, device=feats.device).index_add_(
        0, slot, torch.ones_like(pid, dtype=feats.dtype))
    c_pid = torch.zeros_like(pid).index_put_((slot,), pid)
    c_mod = torch.zeros_like(modality).index_put_((slot,), modality)
    return sums / counts.clamp(min=1)[:, None], c_pid, c_mod, used


def hetero_center_loss(feats, pid, modality, margin=0.3, normalize_feature=False):
    with torch.autocast(device_type=feats.device.type, enabled=False):
        x = feats.float()
        if normalize_feature:
            x = F.normalize(x, dim=1)
        centres, c_pid, c_mod, used = group_means(x, pid, modality)
        # the exact pairwise form at every size (the matmul form torch picks above 25 rows
        # rounds differently)
        dist = torch.cdist(centres, centres, compute_mode='donot_use_mm_for_euclid_dist')
        both = used[:, None] & used[None, :]
        same_id = c_pid[:, None] == c_pid[None, :]
        pos = both & same_id & (c_mod[:, None] != c_mod[None, :])
        neg = both & ~same_id
        valid = pos.any(1) & neg.any(1)
        d_pos = dist.masked_fill(~pos, float('-inf')).amax(1)
        d_neg = dist.masked_fill(~neg, float('inf')).amin(1)
        per_centre = torch.where(valid, F.relu(d_pos - d_neg + margin), 0.)
        return per_centre.sum() / valid.sum().clamp(min=1)


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
