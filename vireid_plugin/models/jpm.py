"""TransReID's heads on top of a ViT: the last-block global head and the JPM local branch.

Both are copies of the backbone's last pretrained block plus its final norm
(TransReID's ``b1`` / ``b2``), run on the token sequence ``[CLS; patches]`` the
backbone's earlier blocks produced; the feature of each is the CLS output.

JPM (jigsaw patch module): the patch tokens are shifted and shuffled, cut into
``num_parts`` groups, and each group, with the CLS token in front, goes through
the head on its own: one local feature per part. The shuffle follows TransReID's
``shuffle_unit`` exactly: its ``shift`` counts positions in the sequence that
still holds CLS, so ``shift=5`` rotates the patch sequence by 4; when the patch
count does not divide into ``groups``, the second-to-last token is repeated
once; each part has ``num_patches // num_parts`` tokens (the remainder is dropped).
"""
import copy

import torch
import torch.nn as nn

__all__ = ['LastBlockHead', 'JigsawPatchHead', 'jigsaw_shuffle']


def jigsaw_shuffle(patches, shift=5, groups=2):
    """TransReID's patch shift + group shuffle of (B, N, D) patch tokens."""
    b, n, d = patches.shape
    k = shift - 1  # TransReID's shift is counted with the CLS token in front
    x = torch.cat([patches[:, k:], patches[:, :k]], dim=1)
    if n % groups:
        x = torch.cat([x, x[:, -2:-1]], dim=1)
    return x.view(b, groups, -1, d).transpose(1, 2).reshape(b, -1, d)


class LastBlockHead(nn.Module):
    """A copy of a transformer block + a norm; ``forward(tokens) -> (B, D)`` CLS feature."""

    def __init__(self, block, norm):
        super().__init__()
        self.block = copy.deepcopy(block)
        self.norm = copy.deepcopy(norm)

    def reset_from(self, block, norm):
        """Copy the weights of ``block`` / ``norm`` (after the backbone got pretrained ones)."""
        self.block.load_state_dict(block.state_dict())
        self.norm.load_state_dict(norm.state_dict())

    def forward(self, tokens):
        return self.norm(self.block(tokens))[:, 0]


class JigsawPatchHead(LastBlockHead):
    """TransReID's JPM branch: ``forward(tokens) -> [num_parts x (B, D)]`` local features."""

    def __init__(self, block, norm, num_parts=4, shift=5, groups=2, rearrange=True):
        super().__init__(block, norm)
        if num_parts < 1 or groups < 1 or shift < 1:
            raise ValueError('JPM needs num_parts, groups and shift >= 1, got {}, {}, {}'.format(
                num_parts, groups, shift))
        self.num_parts = num_parts
        self.shift = shift
        self.groups = groups
        self.rearrange = rearrange

    def forward(self, tokens):
        cls, patches = tokens[:, :1], tokens[:, 1:]
        b, n, d = patches.shape
        length = n // self.num_parts
        if length < 1:
            raise ValueError('JPM: {} patch tokens cannot make {} parts'.format(n, self.num_parts))
        x = jigsaw_shuffle(patches, self.shift, self.groups) if self.rearrange else patches
        parts = x[:, :length * self.num_parts].reshape(b, self.num_parts, length, d)
        # all parts through the head in one batch: (B * parts, 1 + length, D)
        seq = torch.cat([cls.unsqueeze(1).expand(-1, self.num_parts, -1, -1), parts], dim=2)
        feats = super().forward(seq.reshape(b * self.num_parts, 1 + length, d))
        return list(feats.view(b, self.num_parts, d).unbind(1))

    def extra_repr(self):
        return 'num_parts={}, shift={}, groups={}, rearrange={}'.format(
            self.num_parts, self.shift, self.groups, self.rearrange)
