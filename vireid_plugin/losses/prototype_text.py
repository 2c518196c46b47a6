"""Modality-prototype-to-language contrastive loss (modality-level, for unseen identities).

Each identity's per-modality prototype (mean feature of its visible, resp.
infrared, sequences in the batch, in CLIP's joint space) must pick its own
identity's text feature out of the whole bank: cross-entropy over the cosine
similarities to every identity's text feature divided by ``temperature``,
averaged over the prototypes. Both modalities are tied to one modality-free
language anchor per identity.
"""
import torch
import torch.nn.functional as F

from ..registry import LOSSES
from .build import LossTerm
from .hetero_center import group_means
from .image_text import text_logits

__all__ = ['PrototypeTextLoss', 'prototype_text_loss']


def prototype_text_loss(feats, text, pid, modality, temperature=0.07):
    with torch.autocast(device_type=feats.device.type, enabled=False):
        # prototypes in batch-size slots, the empty ones masked: no host sync
        protos, p_pid, _, used = group_means(feats.float(), pid, modality)
        logits = text_logits(protos, text, normalize=True, scale=1.0 / temperature)
        per_row = F.cross_entropy(logits, p_pid, reduction='none')
        return torch.where(used, per_row, 0.).sum() / used.sum().clamp(min=1)


@LOSSES.register('proto_text')
class PrototypeTextLoss(LossTerm):
    """``prototype_text_loss`` of ``outputs[key]`` against ``outputs['text_features']``."""

    default_key = 'cmi_proj'
    config = {'temperature': 0.07, 'key': 'cmi_proj'}

    def __init__(self, temperature=0.07, key=None, text_key='text_features'):
        super().__init__(key)
        if temperature <= 0:
            raise ValueError('proto_text temperature must be > 0, got {}'.format(temperature))
        self.temperature = float(temperature)
        self.text_key = text_key

    def forward(self, outputs, batch):
        text = self._fetch(outputs, self.text_key, 'outputs')
        pid, modality = self.label(batch), self.label(batch, 'modality')
        return self.reduce_heads([prototype_text_loss(f, text, pid, modality, self.temperature)
                                  for f in self.heads(outputs)], outputs)
