"""Cross-modal hetero-centre alignment (modality-level loss for discriminability).

Per identity present in the batch, the centre (mean feature) of its visible
sequences and the centre of its infrared sequences. Each centre of an identity
that has both is an anchor: its other-modality centre is the positive, the
nearest centre of any other identity (either modality) the negative, and the
loss is ``mean relu(d_pos - d_neg + margin)`` (hetero-centre triplet, Liu et al.
2020). The two modalities of an identity are pulled together and pushed from
the other identities' centres.
"""
import torch
import torch.nn.functional as F

from ..registry import LOSSES
from .build import LossTerm

__all__ = ['HeteroCenterLoss', 'hetero_center_loss', 'group_means']


def group_means(feats, pid, modality):
    """Mean feature of every (pid, modality) present: (G, D), (G,) pids, (G,) modalities."""
    keys = torch.stack([pid, modality], 1)
    uniq, inverse = torch.unique(keys, dim=0, return_inverse=True)
    sums = torch.zeros(len(uniq), feats.shape[1], dtype=feats.dtype, device=feats.device)
    sums.index_add_(0, inverse, feats)
    counts = torch.bincount(inverse, minlength=len(uniq)).to(feats.dtype)
    return sums / counts[:, None], uniq[:, 0], uniq[:, 1]


def hetero_center_loss(feats, pid, modality, margin=0.3, normalize_feature=False):
    with torch.autocast(device_type=feats.device.type, enabled=False):
        x = feats.float()
        if normalize_feature:
            x = F.normalize(x, dim=1)
        centres, c_pid, c_mod = group_means(x, pid, modality)
        dist = torch.cdist(centres, centres)
        same_id = c_pid[:, None] == c_pid[None, :]
        pos = same_id & (c_mod[:, None] != c_mod[None, :])
        neg = ~same_id
        valid = pos.any(1) & neg.any(1)
        if not valid.any():
            return x.sum() * 0.
        d_pos = dist.masked_fill(~pos, float('-inf')).amax(1)
        d_neg = dist.masked_fill(~neg, float('inf')).amin(1)
        return F.relu(d_pos[valid] - d_neg[valid] + margin).mean()


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
