"""Ranked-list images: a query, then its top-k gallery items under the protocol.

torchreid's ``visualize_ranked_results`` names each output after the query's file
name (SYSU-MM01 reuses ``0001.jpg`` in every folder, so outputs overwrite each
other) and greys out items by the same-pid-same-camera rule, not the protocol's.
Here every query gets a unique file name and the protocol's own removal rule
applies. Video items show their first frame.
"""
import os

import numpy as np
import torch
from PIL import Image, ImageOps

from ..data.io import read_image
from ..metrics import kept_mask

MATCH, MISS, BORDER, GAP = (0, 170, 0), (200, 0, 0), 4, 6


def _thumb(path, size, colour=None):
    img = read_image(path[0] if isinstance(path, (tuple, list)) else path)
    img = img.resize((size[1] - 2 * BORDER, size[0] - 2 * BORDER))
    return ImageOps.expand(img, BORDER, fill=colour or (255, 255, 255))


def save_ranked_lists(distmat, query, gallery, protocol, save_dir, topk=10, size=(128, 64)):
    """Write one ``<index>_pid<pid>_cam<cam>.jpg`` per query into ``save_dir``.

    distmat: (Q, G) distances; query/gallery: item tuples (path(s), pid, camid, ...);
    size: (height, width) of each thumbnail. Returns the number of images written.
    """
    os.makedirs(save_dir, exist_ok=True)
    dist = torch.as_tensor(np.asarray(distmat, dtype=np.float64))
    g_pids = torch.tensor([it[1] for it in gallery])
    g_cams = torch.tensor([it[2] for it in gallery])
    order = torch.sort(dist, dim=1, stable=True).indices
    h, w = size
    for qi, q in enumerate(query):
        keep = kept_mask(protocol, torch.tensor(q[1]), torch.tensor(q[2]), g_pids, g_cams)
        ranked = [int(g) for g in order[qi] if keep[g]][:topk]
        canvas = Image.new('RGB', (w * (len(ranked) + 1) + GAP * (len(ranked) + 1), h), 'white')
        canvas.paste(_thumb(q[0], size), (0, 0))
        for r, g in enumerate(ranked, 1):
            colour = MATCH if gallery[g][1] == q[1] else MISS
            canvas.paste(_thumb(gallery[g][0], size, colour), (r * (w + GAP) + GAP, 0))
        canvas.save(os.path.join(save_dir, '{:05d}_pid{}_cam{}.jpg'.format(qi, q[1], q[2] + 1)))
    return len(query)
