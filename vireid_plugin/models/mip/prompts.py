"""MPL: the modality-aware prompt library of MIP.

A table of learnable prompts, (2 modalities x depth x num_tokens x dim): layer i
of an image of modality m gets ``Dropout(proj(table[m, i]))`` (one projection
shared by every layer and both modalities), inserted after the CLS token
(VPT-deep: each layer's prompts replace the previous layer's prompt outputs).
Initialisation is VPT's "xavier uniform" bound sqrt(6 / (3 * patch^2 + dim))
times MIP's ``PROMPT_SCALE`` (20): U(-1.25, 1.25) for ViT-B/16. ``naive=True``
gives every image the same (modality 0) prompts: the paper's modality-agnostic
ablation.
"""
import math

import torch
import torch.nn as nn

__all__ = ['ModalityPrompts', 'vpt_uniform_bound']


def vpt_uniform_bound(patch_size, dim, scale=1.0):
    """VPT's uniform initialisation bound, times ``scale``."""
    return math.sqrt(6. / float(3 * patch_size * patch_size + dim)) * scale


class ModalityPrompts(nn.Module):
    """``forward(layer, modality) -> (B, num_tokens, dim)`` prompts of that layer."""

    def __init__(self, depth, num_tokens, dim, patch_size=16, init_scale=20.0, dropout=0.1,
                 naive=False):
        super().__init__()
        self.num_tokens = num_tokens
        self.naive = naive
        self.table = nn.Parameter(torch.empty(2, depth, num_tokens, dim))
        bound = vpt_uniform_bound(patch_size, dim, init_scale)
        nn.init.uniform_(self.table, -bound, bound)
        self.proj = nn.Linear(dim, dim)
        nn.init.kaiming_normal_(self.proj.weight, a=0, mode='fan_out')
        self.dropout = nn.Dropout(dropout)

    def forward(self, layer, modality):
        if self.naive:
            modality = torch.zeros_like(modality)
        # project the two tables once, then pick per image (the same values as projecting
        # each image's prompts; dropout stays per image). clone(): a view of a parameter
        # made under no_grad trips torch's module tracker (FlopCounterMode) as an input.
        return self.dropout(self.proj(self.table[:, layer].clone())[modality])

    def extra_repr(self):
        return 'table={}, naive={}'.format(tuple(self.table.shape), self.naive)
