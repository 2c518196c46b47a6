"""SD (semantic diffusion): language features diffused into the visual tokens.

Every visual token (CLS and patches, each frame, visible and infrared alike)
cross-attends to a set of text features projected to the visual width, and the
result is added to it. The text set is the bank of identity text features
(modality-shared prompts, one per training identity): no label is needed, so
SD runs the same way at test on unseen identities. The label-injection variant
(``mode='label'``) instead gives each training clip its own identity's text
feature plus a learned generic prompt's, and only the generic one at test; the
model builds that set, this module only attends to what it is given.
"""
import torch.nn as nn

from .attention import CrossAttention

__all__ = ['SemanticDiffusion', 'SD_MODES']

SD_MODES = ('bank', 'label')


class SemanticDiffusion(nn.Module):
    """``forward(tokens, text)``: tokens (N, L, dim), text (N or 1, K, text_dim) -> tokens.

    The text projection and the attention have no biases, so an all-zero text set
    adds exactly zero (SD is then the identity).
    """

    def __init__(self, dim, text_dim, num_heads):
        super().__init__()
        self.text_proj = nn.Linear(text_dim, dim, bias=False)
        self.norm = nn.LayerNorm(dim)
        self.attn = CrossAttention(dim, num_heads, bias=False)

    def forward(self, tokens, text):
        return tokens + self.attn(self.norm(tokens), self.text_proj(text.to(tokens.dtype)))
