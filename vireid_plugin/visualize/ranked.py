"""Cross-modal ranked lists: a query, then its top-k gallery items under the protocol.

One ranking (:func:`rank_gallery`): gallery items by ascending distance, stably (ties
keep gallery order), without the items the protocol removes for that query (SYSU's
camera-2 items for a camera-3 query, same-id same-camera items for VCM/LLCM), as the
metric ranks them. Drawn two ways:

- :func:`ranked_list_figure` (``scripts/visualize.py``): one figure per evaluation
  mode, on the mode's first gallery trial: a row per sampled query (the query first,
  then its top-k), green borders for the query's identity, red otherwise. Only
  queries that keep a true match are sampled. For LLCM's transposed reference metric
  (``llcm_transposed``) the probes are the mode's gallery items, so the figure ranks
  that way round too.
- :func:`save_ranked_lists` (``test.visrank``, the engine): one image per query,
  ``<index>_pid<pid>_cam<cam>.jpg``. torchreid's ``visualize_ranked_results`` names each
  output after the query's file name (SYSU-MM01 reuses ``0001.jpg`` in every folder, so
  outputs overwrite each other) and greys out items by the same-pid-same-camera rule,
  not the protocol's; here every query gets a unique file name and the protocol's own
  removal rule applies.

Video items show their first frame.
"""
import os

import numpy as np
import torch
from PIL import Image, ImageOps

from ..metrics import compute_distance, kept_mask
from ..safe_paths import path_under, safe_component
from .common import new_figure, thumbnail

__all__ = ['rank_gallery', 'ranked_lists', 'ranked_list_figure', 'ranked_figure_size',
           'save_ranked_lists', 'MATCH_COLOUR', 'MISS_COLOUR']

MATCH_COLOUR, MISS_COLOUR, QUERY_COLOUR = '#00aa00', '#cc0000', '#000000'
CELL = (0.8, 1.7)   # inches per thumbnail: width, height (title included)
# the per-query images: border colours (RGB), border and gap widths (pixels)
MATCH, MISS, BORDER, GAP = (0, 170, 0), (200, 0, 0), 4, 6


def _kept(metric, q_pids, q_camids, g_pids, g_camids):
    """(Q, G) mask of the gallery items each query is ranked against."""
    keep = kept_mask(metric, q_pids[:, None], q_camids[:, None], g_pids[None], g_camids[None])
    return keep.expand(len(q_pids), len(g_pids))


def rank_gallery(dist, keep, topk):
    """Per query row of ``dist`` (Q, G): the gallery indices nearest first (stable), only
    those ``keep`` (Q, G) allows, at most ``topk``."""
    order = torch.sort(torch.as_tensor(dist), dim=1, stable=True).indices
    return [[int(g) for g in order[i] if keep[i, g]][:topk] for i in range(order.shape[0])]


# ---- the figure of sampled queries (scripts/visualize.py) --------------------------------
def ranked_figure_size(rows, topk):
    """(width, height) in inches of a figure with ``rows`` queries and ``topk`` columns."""
    return CELL[0] * (topk + 1), CELL[1] * rows


def _roles(mode):
    query, gallery = mode.query, mode.galleries[0]
    if mode.metric == 'llcm_transposed':
        return gallery, query, 'llcm'
    return query, gallery, mode.metric


def ranked_lists(features, pids, camids, mode, num_queries=6, topk=10, seed=0,
                 dist_metric='euclidean'):
    """[(query pool index, [(gallery pool index, correct), ...])] for sampled queries."""
    query, gallery, metric = _roles(mode)
    query, gallery = np.asarray(query), np.asarray(gallery)
    q_p, g_p = torch.as_tensor(pids[query]), torch.as_tensor(pids[gallery])
    keep = _kept(metric, q_p, torch.as_tensor(camids[query]), g_p,
                 torch.as_tensor(camids[gallery]))
    matched = ((q_p[:, None] == g_p[None]) & keep).any(1).numpy()
    candidates = np.flatnonzero(matched)
    rng = np.random.default_rng(seed)
    chosen = np.sort(rng.choice(candidates, size=min(num_queries, len(candidates)),
                                replace=False))
    feats = torch.as_tensor(features)
    dist = compute_distance(feats[torch.as_tensor(query[chosen])],
                            feats[torch.as_tensor(gallery)], dist_metric)
    ranked = rank_gallery(dist, keep[torch.as_tensor(chosen)], topk)
    return [(int(query[qi]), [(int(gallery[g]), bool(g_p[g] == q_p[qi])) for g in row])
            for qi, row in zip(chosen, ranked)]


def ranked_list_figure(features, pids, camids, paths, mode, num_queries=6, topk=10, seed=0,
                       dist_metric='euclidean', thumb=(128, 64), title=''):
    """The figure of one mode (matplotlib ``Figure``) and its ranked lists."""
    lists = ranked_lists(features, pids, camids, mode, num_queries, topk, seed, dist_metric)
    rows = max(1, len(lists))
    fig, axes = new_figure(*ranked_figure_size(rows, topk), rows=rows, cols=topk + 1)
    for ax in axes.flat:
        ax.axis('off')
    for r, (q, ranked) in enumerate(lists):
        _cell(axes[r, 0], thumbnail(paths[q], thumb), QUERY_COLOUR,
              'query\nid {}'.format(int(pids[q])))
        for c, (g, correct) in enumerate(ranked, 1):
            _cell(axes[r, c], thumbnail(paths[g], thumb), MATCH_COLOUR if correct else MISS_COLOUR,
                  '{}\nid {}'.format(c, int(pids[g])))
    fig.suptitle(title or '{} (trial 0)'.format(mode.name), fontsize=9)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.55 / (CELL[1] * rows),
                        wspace=0.08, hspace=0.35)
    return fig, lists


def _cell(ax, img, colour, label):
    ax.axis('on')
    ax.imshow(img)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(colour)
        spine.set_linewidth(3)
    ax.set_title(label, fontsize=6, color=colour, pad=2)


# ---- one image per query (test.visrank) --------------------------------------------------
def _bordered(path, size, colour=None):
    inner = (size[0] - 2 * BORDER, size[1] - 2 * BORDER)
    return ImageOps.expand(Image.fromarray(thumbnail(path, inner)), BORDER,
                           fill=colour or (255, 255, 255))


def save_ranked_lists(distmat, query, gallery, protocol, save_dir, topk=10, size=(128, 64)):
    """Write one ``<index>_pid<pid>_cam<cam>.jpg`` per query into ``save_dir``.

    distmat: (Q, G) distances; query/gallery: item tuples (path(s), pid, camid, ...);
    size: (height, width) of each thumbnail. Returns the number of images written.
    """
    os.makedirs(save_dir, exist_ok=True)
    labels = [torch.tensor([it[k] for it in items]) for items in (query, gallery) for k in (1, 2)]
    keep = _kept(protocol, *labels)
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
