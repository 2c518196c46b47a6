"""t-SNE of features: colour = identity, marker = modality (the modality gap made visible).

A few identities present in both modalities are drawn (all of their pool items), so
the colours stay distinguishable; the same identities are used for every panel
(before / after training, features / MIP's instance prompts). scikit-learn's
``TSNE`` with PCA initialisation and a fixed seed.
"""
import numpy as np
from sklearn.manifold import TSNE

from .common import new_figure

__all__ = ['select_identities', 'tsne_points', 'tsne_figure', 'PANEL']

PANEL = (5.0, 5.0)   # inches per panel
MARKERS = {0: 'o', 1: '^'}
MODALITY = {0: 'visible', 1: 'infrared'}


def select_identities(pids, modalities, num_ids=10, seed=0, max_points=800):
    """Pool indices of ``num_ids`` identities seen in both modalities (at most
    ``max_points`` items, taken evenly from each identity)."""
    pids, modalities = np.asarray(pids), np.asarray(modalities)
    both = sorted(p for p in set(pids.tolist())
                  if {0, 1} <= set(modalities[pids == p].tolist()))
    if not both:
        both = sorted(set(pids.tolist()))
    rng = np.random.default_rng(seed)
    ids = np.sort(rng.choice(both, size=min(num_ids, len(both)), replace=False))
    per_id = max(2, max_points // max(1, len(ids)))
    chosen = []
    for p in ids:
        idx = np.flatnonzero(pids == p)
        if len(idx) > per_id:
            idx = idx[np.linspace(0, len(idx) - 1, per_id).round().astype(int)]
        chosen.append(idx)
    return np.concatenate(chosen)


def tsne_points(features, seed=0):
    """(N, 2) t-SNE embedding of (N, D) features (perplexity adapted to small N)."""
    x = np.asarray(features, dtype=np.float32)
    n = len(x)
    if n < 3:
        raise ValueError('t-SNE needs at least 3 points, got {}'.format(n))
    if float(np.ptp(x, axis=0).max()) < 1e-8:   # sklearn's TSNE crashes on identical points
        raise ValueError('t-SNE: all {} feature vectors are identical'.format(n))
    perplexity = float(min(30.0, max(1.0, (n - 1) / 3.0)))
    return TSNE(n_components=2, perplexity=perplexity, init='pca', random_state=seed,
                learning_rate='auto', max_iter=500).fit_transform(x)


def tsne_figure(panels, pids, modalities, seed=0, title=''):
    """panels: [(panel title, (N, D) features)] of the same N items (pids, modalities).
    Returns the figure (one panel per entry, side by side)."""
    pids, modalities = np.asarray(pids), np.asarray(modalities)
    fig, axes = new_figure(PANEL[0] * len(panels), PANEL[1], cols=len(panels))
    ids = sorted(set(pids.tolist()))
    colours = {p: 'C{}'.format(i % 10) for i, p in enumerate(ids)}
    for ax, (name, feats) in zip(axes[0], panels):
        pts = tsne_points(feats, seed)
        for p in ids:
            for m, marker in MARKERS.items():
                sel = (pids == p) & (modalities == m)
                if sel.any():
                    ax.scatter(pts[sel, 0], pts[sel, 1], c=colours[p], marker=marker, s=18,
                               alpha=0.8, linewidths=0)
        ax.set_title(name, fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    for m, marker in MARKERS.items():   # legend: the markers only (colours are identities)
        axes[0, 0].scatter([], [], c='grey', marker=marker, label=MODALITY[m])
    axes[0, 0].legend(fontsize=8, loc='best')
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig
