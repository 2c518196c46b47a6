"""Attention maps of the last attention block: where the CLS token looks.

The models run fused ``scaled_dot_product_attention``, which returns no weights, and
training keeps it. Here a forward pre-hook on the chosen attention module reads the
module's input and recomputes ``softmax(q k^T / sqrt(d))`` from the module's own
projections (timm ``Attention``: ``qkv``, ``q_norm``, ``k_norm``, ``scale``;
``nn.MultiheadAttention`` of open_clip: ``in_proj_weight``/``in_proj_bias``), averaged
over heads. The forward itself is unchanged.

Which block and how its tokens are laid out, each model declares with
``model.attention_spec()`` -> {'module', 'grid', 'groups', 'video'} (the fields of
:class:`AttentionLayout`):

- ViT baseline (``ViTReID``, ``TemporalAvgReID``): the backbone's last block,
  tokens ``[CLS; patches]``;
- MIP: the last block the backbone runs, tokens ``[CLS; modality prompts; instance
  prompts; patches]`` (the prompts are part of what the CLS token attends to: the
  paper's Figure 4); the share of attention each group receives is reported too;
- LSMRL: the image tower's last block, per frame (with temporal patch shift there,
  patch position p of frame f holds a token of a neighbouring frame: the map shows
  positions); a grouped block (frames concatenated) is split back per frame.
"""
from dataclasses import dataclass, field
from typing import Dict, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['AttentionProbe', 'attention_probabilities', 'AttentionLayout', 'attention_layout',
           'has_attention_layout', 'attention_maps']


def attention_probabilities(module, x):
    """Head-averaged softmax attention (B, N, N) that ``module`` computes on input ``x``."""
    if isinstance(module, nn.MultiheadAttention):
        if not module.batch_first:
            x = x.transpose(0, 1)
        b, n, d = x.shape
        heads = module.num_heads
        w_q, w_k, _ = module.in_proj_weight.chunk(3)
        b_q, b_k = (module.in_proj_bias.chunk(3)[:2] if module.in_proj_bias is not None
                    else (None, None))
        q = F.linear(x, w_q, b_q).view(b, n, heads, d // heads).transpose(1, 2)
        k = F.linear(x, w_k, b_k).view(b, n, heads, d // heads).transpose(1, 2)
        scale = (d // heads) ** -0.5
    elif hasattr(module, 'qkv') and hasattr(module, 'num_heads'):   # timm Attention
        b, n, _ = x.shape
        qkv = module.qkv(x).reshape(b, n, 3, module.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k = module.q_norm(qkv[0]), module.k_norm(qkv[1])
        scale = module.scale
    else:
        raise TypeError('attention maps: cannot read the attention of {}'.format(
            type(module).__name__))
    probs = ((q.float() * scale) @ k.float().transpose(-2, -1)).softmax(dim=-1)
    return probs.mean(1)


class AttentionProbe:
    """``with AttentionProbe(module) as probe: model(x)`` -> ``probe.probs`` (B, N, N)."""

    def __init__(self, module):
        self.module = module
        self.probs = None
        self._handle = None

    def _hook(self, module, args, kwargs):
        x = args[0] if args else kwargs.get('x', kwargs.get('query'))
        with torch.no_grad():
            self.probs = attention_probabilities(module, x).cpu()

    def __enter__(self):
        self._handle = self.module.register_forward_pre_hook(self._hook, with_kwargs=True)
        return self

    def __exit__(self, *exc):
        self._handle.remove()
        return False


@dataclass
class AttentionLayout:
    """The probed module, the patch grid (h, w), and the token groups before the patches."""
    module: nn.Module
    grid: Tuple[int, int]
    groups: Dict[str, int] = field(default_factory=lambda: {'CLS': 1})
    video: bool = False

    @property
    def num_prefix(self):
        return sum(self.groups.values())


def has_attention_layout(model):
    return callable(getattr(model, 'attention_spec', None))


def attention_layout(model):
    """Where ``model``'s last attention is and how its tokens are ordered, as the model
    declares it (``attention_spec()``)."""
    if not has_attention_layout(model):
        raise TypeError('attention maps: {} declares no attention_spec() (the attention '
                        'module, patch grid and token groups: see vireid_plugin.visualize.'
                        'attention)'.format(type(model).__name__))
    return AttentionLayout(**model.attention_spec())


@torch.no_grad()
def attention_maps(model, inputs, modality, camid):
    """CLS attention over the patch grid for a batch.

    inputs: (B, C, H, W) images or (B, T, C, H, W) clips. Returns (maps, shares):
    maps (B, T, h, w) float numpy (T = 1 for images), each frame's CLS-to-patch
    attention renormalised to sum 1; shares {group: (B,) fraction of the CLS attention
    it receives} for the prefix groups (MIP's prompts) and 'patches'.
    """
    layout = attention_layout(model)
    model.eval()
    with AttentionProbe(layout.module) as probe:
        model(inputs, modality=modality, camid=camid)
    probs = probe.probs                               # (M, N, N)
    h, w = layout.grid
    length = layout.num_prefix + h * w
    b = inputs.shape[0]
    m, n = probs.shape[:2]
    if n % length:
        raise ValueError('attention maps: {} tokens do not fit {} prefix tokens + a {}x{} '
                         'grid'.format(n, layout.num_prefix, h, w))
    per = n // length                                 # frames concatenated in one sequence
    # CLS row of each frame (the first token of each frame's run), over that frame's tokens
    rows = torch.stack([probs[:, j * length, j * length:(j + 1) * length]
                        for j in range(per)], 1).reshape(m * per, length)
    frames = rows.shape[0] // b
    rows = rows.reshape(b, frames, length)
    patches = rows[..., layout.num_prefix:]
    shares, start = {}, 0
    for group, size in layout.groups.items():
        shares[group] = rows[..., start:start + size].sum(-1).mean(1).numpy()
        start += size
    shares['patches'] = patches.sum(-1).mean(1).numpy()
    maps = patches / patches.sum(-1, keepdim=True).clamp_min(1e-12)
    return maps.reshape(b, frames, h, w).numpy(), shares


def upsample(att, size):
    """(h, w) attention -> (H, W), bilinear, scaled to [0, 1]."""
    t = torch.as_tensor(np.asarray(att, dtype=np.float32))[None, None]
    up = F.interpolate(t, size=size, mode='bilinear', align_corners=False)[0, 0].numpy()
    lo, hi = up.min(), up.max()
    return (up - lo) / (hi - lo) if hi > lo else np.zeros_like(up)


def attention_figure(images, maps, labels, shares=None, title=''):
    """Overlays of CLS attention on the inputs.

    images: per sample a list of (H, W, 3) uint8 frames (one for an image model);
    maps: (B, T, h, w) from :func:`attention_maps`; labels: one string per sample;
    shares: optional {group: (B,)} shown under each sample (MIP's prompt groups).
    Images: one column per sample, the image above its overlay. Clips: one row per
    clip, one overlay per frame.
    """
    from .common import new_figure
    b, t = maps.shape[:2]
    video = t > 1
    height = 2.1 * b if video else (4.6 if shares else 4.2)
    if video:
        fig, axes = new_figure(1.0 * t, height, rows=b, cols=t)
    else:
        fig, axes = new_figure(1.1 * b, height, rows=2, cols=b)
    for ax in axes.flat:
        ax.axis('off')
    for i in range(b):
        for f in range(t):
            img = images[i][min(f, len(images[i]) - 1)]
            heat = upsample(maps[i, f], img.shape[:2])
            ax = axes[i, f] if video else axes[1, i]
            ax.imshow(img)
            ax.imshow(heat, cmap='jet', alpha=0.5)
            if video:
                ax.set_title('{} f{}'.format(labels[i], f) if f == 0 else 'f{}'.format(f),
                             fontsize=6)
        if not video:
            axes[0, i].imshow(images[i][0])
            axes[0, i].set_title(labels[i], fontsize=6)
            if shares:
                axes[1, i].set_title('\n'.join('{} {:.0%}'.format(_short(g), float(v[i]))
                                               for g, v in shares.items() if g != 'patches'),
                                     fontsize=5, y=-0.02 - 0.08 * (len(shares) - 1),
                                     verticalalignment='top')
    if title:
        fig.suptitle(title, fontsize=8)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.35 / height if shares else 0.02,
                        top=1 - 0.45 / height,
                        wspace=0.1, hspace=0.25)
    return fig


def _short(group):
    return {'modality prompts': 'mod. prompts', 'instance prompts': 'inst. prompts'}.get(
        group, group)
