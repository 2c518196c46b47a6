"""CMI (cross-modal interaction): paired visible/infrared sequences attend to each other.

The cross-modal sampler puts K visible and K infrared tracklets of each identity
in a batch; ``pair_partners`` pairs the k-th visible with the k-th infrared one of
the same identity. Each sequence's tokens then attend to its partner's tokens
(``attention='cross'``) or to the union of both (``'joint'``, self-attention over
the concatenated pair), with one set of weights for both directions, and the
result is added to them (residual). A sequence with no partner in the batch (or
at test, where every sequence is alone) is paired with itself.
"""
import torch
import torch.nn as nn

from .attention import CrossAttention

__all__ = ['CrossModalInteraction', 'pair_partners', 'CMI_ATTENTION']

CMI_ATTENTION = ('cross', 'joint')


def pair_partners(pid, modality):
    """(B,) index of each item's partner: the k-th item of (pid, modality m) in batch
    order pairs with the (k mod n)-th of the n items of (pid, 1 - m); itself if n = 0."""
    pid, modality = pid.tolist(), modality.tolist()
    groups = {}
    for i, key in enumerate(zip(pid, modality)):
        groups.setdefault(key, []).append(i)
    partner = list(range(len(pid)))
    for (p, m), items in groups.items():
        others = groups.get((p, 1 - m))
        if others:
            for k, i in enumerate(items):
                partner[i] = others[k % len(others)]
    return torch.tensor(partner, dtype=torch.long)


class CrossModalInteraction(nn.Module):
    """``forward(tokens, partner)``: tokens (B, L, dim) per sequence, partner (B,) long."""

    def __init__(self, dim, num_heads, attention='cross'):
        super().__init__()
        if attention not in CMI_ATTENTION:
            raise ValueError('CMI attention must be one of {}, got {!r}'.format(
                CMI_ATTENTION, attention))
        self.attention = attention
        self.norm = nn.LayerNorm(dim)
        self.attn = CrossAttention(dim, num_heads, bias=True)

    def forward(self, tokens, partner):
        x = self.norm(tokens)
        context = x[partner.to(x.device)]
        if self.attention == 'joint':
            context = torch.cat([x, context], 1)
        return tokens + self.attn(x, context)

    def extra_repr(self):
        return 'attention={!r}'.format(self.attention)
