"""Multi-head cross-attention on PyTorch's fused ``scaled_dot_product_attention``.

Shared by SD (visual tokens -> text features) and CMI (one sequence's tokens ->
its partner's). It returns the attention output only; the callers add it to
their input (residual). The output projection starts at zero, so a freshly
added module leaves the pretrained CLIP features unchanged until it has learnt
something (the zero-initialised residual branch of adapters / LoRA).
"""
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['CrossAttention']


class CrossAttention(nn.Module):
    """``forward(x, context)``: x (N, Lq, dim) queries, context (N or 1, Lk, dim) keys/values.

    With ``bias=False`` every projection is linear, so an all-zero context gives
    zero values and a zero output (what makes "SD with a zero bank" the identity).
    """

    def __init__(self, dim, num_heads, bias=True, zero_init=True):
        super().__init__()
        if dim % num_heads:
            raise ValueError('attention width {} is not a multiple of {} heads'.format(
                dim, num_heads))
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=bias)
        self.k = nn.Linear(dim, dim, bias=bias)
        self.v = nn.Linear(dim, dim, bias=bias)
        self.out = nn.Linear(dim, dim, bias=bias)
        if zero_init:
            nn.init.zeros_(self.out.weight)
            if bias:
                nn.init.zeros_(self.out.bias)

    def _heads(self, x, n):
        b, length, d = x.shape
        return x.reshape(b, length, self.num_heads, d // self.num_heads).transpose(1, 2).expand(
            n, -1, -1, -1)

    def forward(self, x, context):
        n, length, d = x.shape
        q = self._heads(self.q(x), n)
        k = self._heads(self.k(context), n)
        v = self._heads(self.v(context), n)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.out(y.transpose(1, 2).reshape(n, length, d))
