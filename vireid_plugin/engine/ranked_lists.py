"""``test.visrank``: one image per query, the query then its top-k gallery items.

Files ``<index>_pid<pid>_cam<cam>.jpg``: torchreid's ``visualize_ranked_results`` names
each output after the query's file name (SYSU-MM01 reuses ``0001.jpg`` in every folder, so
outputs overwrite each other) and greys out items by the same-pid-same-camera rule, not
the protocol's; here every query gets a unique file name and the protocol's own removal
rule applies (``metrics.rank_gallery``, the ranking the metric scores). Green borders
for the query's identity, red otherwise; video items show their first frame. The
figures of a finished run (``visualize/ranked.py``) draw the same ranking.
"""
import os

import numpy as np
import torch
from PIL import Image, ImageOps

from ..data.io import read_image
from ..metrics import kept_pairs, rank_gallery
from ..safe_paths import path_under, safe_component

__all__ = ['save_ranked_lists', 'MATCH', 'MISS', 'BORDER', 'GAP']

# border colours (RGB), border and gap widths (pixels)
MATCH, MISS, BORDER, GAP = (0, 170, 0), (200, 0, 0), 4, 6


def _bordered(path, size, colour=None):
    """The item's image (a clip: its first frame) resized into ``size`` with its border."""
    inner = (size[0] - 2 * BORDER, size[1] - 2 * BORDER)
    path = path[0] if isinstance(path, (tuple, list)) else path
    return ImageOps.expand(read_image(path).resize((inner[1], inner[0])), BORDER,
                           fill=colour or (255, 255, 255))


def save_ranked_lists(distmat, query, gallery, protocol, save_dir, topk=10, size=(128, 64)):
    """Write one ``<index>_pid<pid>_cam<cam>.jpg`` per query into ``save_dir``.

    distmat: (Q, G) distances; query/gallery: item tuples (path(s), pid, camid, ...);
    size: (height, width) of each thumbnail. Returns the number of images written.
    """
    os.makedirs(save_dir, exist_ok=True)
    labels = [torch.tensor([it[k] for it in items]) for items in (query, gallery) for k in (1, 2)]
    keep = kept_pairs(protocol, *labels)
    ranked = rank_gallery(np.asarray(distmat, dtype=np.float64), keep, topk)
    h, w = size
    for qi, (q, row) in enumerate(zip(query, ranked)):
        canvas = Image.new('RGB', (w * (len(row) + 1) + GAP * (len(row) + 1), h), 'white')
        canvas.paste(_bordered(q[0], size), (0, 0))
        for r, g in enumerate(row, 1):
            colour = MATCH if gallery[g][1] == q[1] else MISS
            canvas.paste(_bordered(gallery[g][0], size, colour), (r * (w + GAP) + GAP, 0))
        name = safe_component('{:05d}_pid{}_cam{}.jpg'.format(qi, q[1], q[2] + 1))
        canvas.save(path_under(save_dir, name))
    return len(query)
