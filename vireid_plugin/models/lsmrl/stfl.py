"""STFL: spatial-temporal feature learning on CLIP's own blocks, with no new weights.

The image tower's blocks are split in three consecutive runs (the abstract's
"basic vision encoder, spatial-temporal grouped encoder, temporal patch shift
encoder"):

- **basic**: the first blocks, frame by frame, unchanged;
- **grouped**: each frame's tokens attend to every token of the frames in its
  temporal group (``group_size`` consecutive frames): the group's token sequences
  are concatenated and the block runs once on the longer sequence, through its own
  fused attention and MLP;
- **tps**: Temporal Patch Shift (Xiang et al., ECCV 2022): inside every 3x3 cell of
  the patch grid, eight positions take their token from another frame before the
  attention and are shifted back after it; the centre and the CLS token stay.

Every mode reuses the pretrained weights as they are: STFL adds no parameter.
"""
import torch
import torch.nn as nn
from open_clip.transformer import ResidualAttentionBlock

__all__ = ['TPS_SHIFTS', 'temporal_patch_shift', 'grouped_block_forward', 'tps_block_forward',
           'STFL', 'stfl_layout']

#: (row % 3, col % 3) of a patch -> its temporal shift (TPS's pattern; centre 0)
TPS_SHIFTS = {(0, 0): -4, (0, 1): 1, (1, 0): -1, (0, 2): 2, (2, 0): -2, (1, 2): 3, (2, 1): -3,
              (2, 2): 4, (1, 1): 0}


def _source_frames(t, grid, reverse, device):
    """(t, h*w) index: frame each output token is taken from (cyclic, as torch.roll)."""
    h, w = grid
    rows = torch.arange(h, device=device).repeat_interleave(w) % 3
    cols = torch.arange(w, device=device).repeat(h) % 3
    shift = torch.zeros(h * w, dtype=torch.long, device=device)
    for (r, c), s in TPS_SHIFTS.items():
        shift[(rows == r) & (cols == c)] = s
    if reverse:
        shift = -shift
    frames = torch.arange(t, device=device)[:, None]
    return (frames - shift[None, :]) % t


def temporal_patch_shift(x, t, grid, reverse=False):
    """Shift patch tokens along time: x (B*T, 1 + h*w, D) -> same shape.

    Output frame f, patch p takes the token of frame (f - s_p) mod T, with s_p from
    ``TPS_SHIFTS`` by p's position in its 3x3 cell (``torch.roll`` by s_p along time);
    ``reverse`` applies the opposite shifts, so it undoes the forward shift exactly.
    T = 1 leaves x unchanged. The CLS token (index 0) is never moved.
    """
    n, length, d = x.shape
    h, w = grid
    if length != 1 + h * w:
        raise ValueError('temporal_patch_shift: {} tokens do not match a {}x{} grid + CLS'.format(
            length, h, w))
    if t == 1:
        return x
    b = n // t
    patches = x[:, 1:].reshape(b, t, h * w, d)
    src = _source_frames(t, grid, reverse, x.device)
    pos = torch.arange(h * w, device=x.device).expand(t, -1)
    shifted = patches[:, src, pos]  # (b, t, h*w, d)
    return torch.cat([x[:, :1], shifted.reshape(n, h * w, d)], 1)


def grouped_block_forward(block, x, t, group_size):
    """Run ``block`` with each frame attending to all tokens of its temporal group.

    x: (B*T, L, D), frames of a clip consecutive. Groups are ``group_size``
    consecutive frames of the same clip (a shorter last group when T is not a
    multiple). group_size 1 is the plain frame-wise block.
    """
    n, length, d = x.shape
    g = max(1, min(int(group_size), t))
    if g == 1:
        return block(x)
    b = n // t
    if t % g == 0:
        return block(x.reshape(b * t // g, g * length, d)).reshape(n, length, d)
    frames = x.reshape(b, t, length, d)
    out = []
    for start in range(0, t, g):
        k = min(g, t - start)
        chunk = frames[:, start:start + k].reshape(b, k * length, d)
        out.append(block(chunk).reshape(b, k, length, d))
    return torch.cat(out, 1).reshape(n, length, d)


def tps_block_forward(block, x, t, grid):
    """open_clip's ``ResidualAttentionBlock.forward`` with the patch shift around its
    attention: shift after ``ln_1``, shift back before the residual add."""
    y = temporal_patch_shift(block.ln_1(x), t, grid)
    y = temporal_patch_shift(block.attention(q_x=y), t, grid, reverse=True)
    x = x + block.ls_1(y)
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def stfl_layout(depth, grouped_blocks, tps_blocks, enabled=True):
    """Mode of each block: 'basic' first, then 'grouped', then 'tps' (counted from the end)."""
    grouped_blocks, tps_blocks = int(grouped_blocks), int(tps_blocks)
    if not enabled:
        return ['basic'] * depth
    if grouped_blocks < 0 or tps_blocks < 0 or grouped_blocks + tps_blocks > depth:
        raise ValueError('STFL: {} grouped + {} temporal-patch-shift blocks do not fit in the '
                         '{} blocks of the image encoder'.format(grouped_blocks, tps_blocks, depth))
    basic = depth - grouped_blocks - tps_blocks
    return ['basic'] * basic + ['grouped'] * grouped_blocks + ['tps'] * tps_blocks


class STFL(nn.Module):
    """Runs an image tower's blocks on the frames of clips, per ``stfl_layout``.

    Holds no parameters and no reference to the blocks (they stay the image
    tower's): ``forward(blocks, x, t)`` with x (B*T, L, D), frames of a clip consecutive.
    """

    def __init__(self, depth, grid, grouped_blocks=2, tps_blocks=2, group_size=3, enabled=True):
        super().__init__()
        self.layout = stfl_layout(depth, grouped_blocks, tps_blocks, enabled)
        self.grid = tuple(grid)
        self.group_size = int(group_size)
        if self.group_size < 1:
            raise ValueError('STFL group size must be >= 1, got {}'.format(group_size))

    def check_blocks(self, blocks):
        if 'tps' in self.layout and not all(isinstance(b, ResidualAttentionBlock) for b in blocks):
            raise TypeError('temporal patch shift needs open_clip ResidualAttentionBlock blocks')

    def forward(self, blocks, x, t):
        for block, mode in zip(blocks, self.layout):
            if mode == 'grouped':
                x = grouped_block_forward(block, x, t, self.group_size)
            elif mode == 'tps':
                x = tps_block_forward(block, x, t, self.grid)
            else:
                x = block(x)
        return x

    def extra_repr(self):
        counts = {m: self.layout.count(m) for m in ('basic', 'grouped', 'tps')}
        return 'blocks={}, group_size={}, grid={}'.format(counts, self.group_size, self.grid)
