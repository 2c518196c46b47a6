"""IPG: MIP's instance-aware prompt generators (both variants of the released code).

Generation-based (the paper's choice): one transformer block, shared by every
layer, reads ``[queries ; that layer's patch tokens]``; its first ``num_tokens``
outputs are the layer's instance prompts. The block is randomly initialised (the
released code copies block 0 before the ImageNet weights are loaded). The
released code feeds zero queries; all of them then pass LayerNorm to the same
vector and the generated prompts are identical copies of one vector. The default
here is learnable queries (the released ``BUG_REFINE`` option); ``queries='zeros'``
reproduces the released forward.

Fusion-based: per layer, ``num_tokens`` softmax heads over a bank of
``bank_size`` learnable prompts, driven by the mean patch embedding at layer 0 and
by the current CLS token at deeper layers; prompts = Dropout(proj(weights @ bank)).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import trunc_normal_
from timm.models.vision_transformer import Block, init_weights_vit_timm

from .prompts import vpt_uniform_bound

__all__ = ['InstancePromptGenerator', 'InstancePromptFusion', 'QUERY_MODES']

QUERY_MODES = ('learnable', 'zeros')


class InstancePromptGenerator(nn.Module):
    """``forward(layer, cls, patches) -> (B, num_tokens, dim)``; ``layer`` is unused (shared)."""

    def __init__(self, dim, num_heads, num_tokens=16, mlp_ratio=4., qkv_bias=True,
                 norm_layer=None, queries='learnable'):
        super().__init__()
        if queries not in QUERY_MODES:
            raise ValueError('queries must be one of {}, got {!r}'.format(QUERY_MODES, queries))
        self.num_tokens = num_tokens
        kwargs = {'norm_layer': norm_layer} if norm_layer is not None else {}
        self.block = Block(dim, num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, **kwargs)
        self.block.apply(init_weights_vit_timm)   # trunc-normal(.02) linears, zero biases
        if queries == 'learnable':
            self.queries = nn.Parameter(torch.zeros(1, num_tokens, dim))
            trunc_normal_(self.queries, std=.02)
        else:
            self.queries = None

    def forward(self, layer, cls, patches):
        b = patches.shape[0]
        if self.queries is None:
            q = patches.new_zeros(b, self.num_tokens, patches.shape[-1])
        else:
            q = self.queries.expand(b, -1, -1).to(patches.dtype)
        return self.block(torch.cat([q, patches], dim=1))[:, :self.num_tokens]

    def extra_repr(self):
        return 'num_tokens={}, queries={}'.format(
            self.num_tokens, 'zeros' if self.queries is None else 'learnable')


class InstancePromptFusion(nn.Module):
    """``forward(layer, cls, patches) -> (B, num_tokens, dim)`` from a per-layer prompt bank."""

    def __init__(self, depth, dim, num_tokens=16, bank_size=64, patch_size=16, init_scale=20.0,
                 dropout=0.1, temperature=0.0):
        super().__init__()
        self.num_tokens = num_tokens
        self.bank_size = bank_size
        self.temperature = temperature
        self.bank = nn.Parameter(torch.empty(depth, bank_size, dim))
        bound = vpt_uniform_bound(patch_size, dim, init_scale)
        nn.init.uniform_(self.bank, -bound, bound)
        # num_tokens heads of Linear(dim -> bank_size) per layer, stacked into one Linear;
        # each head initialised as the released code does (kaiming normal, fan_out = bank_size)
        self.heads = nn.ModuleList(nn.Linear(dim, num_tokens * bank_size, bias=False)
                                   for _ in range(depth))
        for head in self.heads:
            nn.init.normal_(head.weight, std=(2.0 / bank_size) ** 0.5)
        self.proj = nn.Linear(dim, dim)
        nn.init.kaiming_normal_(self.proj.weight, a=0, mode='fan_out')
        self.dropout = nn.Dropout(dropout)

    def forward(self, layer, cls, patches):
        query = patches.mean(dim=1) if layer == 0 else cls[:, 0]
        logits = self.heads[layer](query).view(-1, self.num_tokens, self.bank_size)
        if self.temperature:
            logits = logits / self.temperature
        weights = F.softmax(logits, dim=-1)
        return self.dropout(self.proj(weights @ self.bank[layer].to(weights.dtype)))

    def extra_repr(self):
        return 'num_tokens={}, bank={}, temperature={}'.format(
            self.num_tokens, tuple(self.bank.shape), self.temperature)
