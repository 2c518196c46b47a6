"""MSEL: PMT's modality-shared enhancement loss, as MIP's released recipe uses it.

For every anchor a of modality m: intra(a) = mean distance to the other samples of
its identity and modality, cross(a) = mean distance to the samples of its
identity in the other modality (Euclidean, pre-BN features). The loss is
``1/2 [mean_{a in visible} (cross - intra)^2 + mean_{a in infrared} (cross - intra)^2]``:
it asks the cross-modal spread of an identity to equal its within-modality one.
With K samples per identity and modality (the cross-modal sampler) this is the
released ``MSEL_modal`` (which takes the top K-1 / K positive distances). It is
off before ``start_epoch`` (1-based, as the logs count; the released recipe: 10).
Anchors without both kinds of partner in the batch are left out.
"""
import torch

from ..registry import LOSSES
from .build import LossTerm
from .triplet import pairwise_euclidean

__all__ = ['ModalitySharedEnhancementLoss']


@LOSSES.register('msel')
class ModalitySharedEnhancementLoss(LossTerm):
    default_key = 'features'
    config = {'start_epoch': 10}

    def __init__(self, start_epoch=10, key=None):
        super().__init__(key)
        self.start_epoch = int(start_epoch)
        self.epoch = 0   # 0-based, set by the engine

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def forward(self, outputs, batch):
        heads = self.heads(outputs)
        if self.epoch + 1 < self.start_epoch:
            return heads[0].sum() * 0.
        pid, modality = self.label(batch), self.label(batch, 'modality')
        return self.reduce_heads([self.single(f, pid, modality) for f in heads], outputs)

    @staticmethod
    def single(feats, pid, modality):
        with torch.autocast(device_type=feats.device.type, enabled=False):
            dist = pairwise_euclidean(feats.float())
            same_id = pid[:, None] == pid[None, :]
            same_mod = modality[:, None] == modality[None, :]
            eye = torch.eye(len(pid), dtype=torch.bool, device=pid.device)
            intra_mask = (same_id & same_mod & ~eye).float()
            cross_mask = (same_id & ~same_mod).float()
            n_intra, n_cross = intra_mask.sum(1), cross_mask.sum(1)
            valid = (n_intra > 0) & (n_cross > 0)
            intra = (dist * intra_mask).sum(1) / n_intra.clamp(min=1)
            cross = (dist * cross_mask).sum(1) / n_cross.clamp(min=1)
            gap = (cross - intra).pow(2)
            # the mean over each modality's valid anchors, and the mean over the modalities
            # that have one: masked sums and counts, no host sync (no .any(), no indexing)
            total = gap.new_zeros(())
            present = gap.new_zeros(())
            for m in (0, 1):
                chosen = valid & (modality == m)
                count = chosen.sum()
                total = total + torch.where(chosen, gap, 0.).sum() / count.clamp(min=1)
                present = present + (count > 0).to(gap.dtype)
            return total / present.clamp(min=1)

    def extra_repr(self):
        return '{}, start_epoch={}'.format(super().extra_repr(), self.start_epoch)
