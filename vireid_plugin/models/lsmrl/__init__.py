"""LSMRL (arXiv 2601.12062) on open_clip: one concept per module.

clip_towers (open_clip towers and weights), stfl (parameter-free spatial-temporal
blocks), prompts (modality-shared identity prompts), attention (SDPA
cross-attention), sd (semantic diffusion), cmi (cross-modal interaction),
model (the ReID model), builder (``lsmrl`` config section, registered names).
"""
from .builder import LSMRL_ARCHS, build_lsmrl
from .model import LSMRL

__all__ = ['LSMRL', 'LSMRL_ARCHS', 'build_lsmrl']
