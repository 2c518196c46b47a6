"""Cross-modal ranked lists: a query, then its top-k gallery items under the protocol.

One ranking (``metrics.rank_gallery``): gallery items by ascending distance, stably (ties
keep gallery order), without the items the protocol removes for that query (SYSU's
camera-2 items for a camera-3 query, same-id same-camera items for VCM/LLCM), as the
metric ranks them. Drawn two ways:

- :func:`ranked_list_figure` (``scripts/visualize.py``): one figure per evaluation
  mode, on the mode's first gallery trial: a row per sampled query (the query first,
  then its top-k), green borders for the query's identity, red otherwise. Only
  queries that keep a true match are sampled. For LLCM's transposed reference metric
  (``llcm_transposed``) the probes are the mode's gallery items, so the figure ranks
  that way round too.
- ``save_ranked_lists`` (``test.visrank``: one image per query, written by the engine,
  ``engine/ranked_lists.py``; named here too).

Video items show their first frame.
"""
import numpy as np
import torch

from ..engine.ranked_lists import BORDER, GAP, MATCH, MISS, save_ranked_lists
from ..metrics import compute_distance, kept_pairs, rank_gallery
from .common import new_figure, thumbnail

__all__ = ['rank_gallery', 'ranked_lists', 'ranked_list_figure', 'ranked_figure_size',
           'save_ranked_lists', 'MATCH_COLOUR', 'MISS_COLOUR', 'MATCH', 'MISS', 'BORDER',
           'GAP']

MATCH_COLOUR, MISS_COLOUR, QUERY_COLOUR = '#00aa00', '#cc0000', '#000000'
CELL = (0.8, 1.7)   # inches per thumbnail: width, height (title included)
# the per-query images (engine/ranked_lists.py): MATCH, MISS, BORDER, GAP


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
    keep = kept_pairs(metric, q_p, torch.as_tensor(camids[query]), g_p,
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
