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
    order pairs with the (k mod n)-th of the n items of (pid, 1 - m); itself if n = 0.

    Tensor operations on (B, B) masks only (no ``.tolist()``), so a compiled model
    traces through it without a graph break."""
    pid, modality = pid.reshape(-1), modality.reshape(-1)
    b = pid.numel()
    index = torch.arange(b, device=pid.device)
    same_id = pid[:, None] == pid[None, :]
    own = same_id & (modality[:, None] == modality[None, :])       # same (pid, m)
    other = same_id & (modality[None, :] == 1 - modality[:, None])  # (pid, 1 - m)
    earlier = index[None, :] < index[:, None]
    rank = (own & earlier).sum(1)                # k: earlier items of the same (pid, m)
    count = other.sum(1)                         # n
    wanted = rank % count.clamp(min=1)
    # each row has exactly one partner of rank k mod n among the other modality's items
    hit = other & (rank[None, :] == wanted[:, None])
    return torch.where(count > 0, hit.long().argmax(1), index)


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
