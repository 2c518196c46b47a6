"""Query-gallery distance matrices for ranking, and which one a run ranks by.

The one distance function of the package (:func:`compute_distance`), and
:func:`resolve_ranking`: ``test.dist_metric auto`` (the default) ranks as the model's
reference code does (a model class declares ``TEST_DISTANCE`` and
``TEST_DISTANCE_SOURCE``), else as the protocol's reference code does (a dataset class
declares the same two), else by Euclidean distance (torchreid's default).
"""
from collections import namedtuple

import torch
import torch.nn.functional as F

__all__ = ['compute_distance', 'resolve_ranking', 'Ranking', 'DISTANCES', 'DIST_METRICS']

#: the distances :func:`compute_distance` computes
DISTANCES = ('euclidean', 'cosine', 'dot')
#: the values of ``test.dist_metric``: a distance, or 'auto' (the reference's)
DIST_METRICS = ('auto',) + DISTANCES

#: what a run ranks by: ``metric`` (one of DISTANCES) and ``source`` (why: the reference
#: code it follows, or the config key that chose it)
Ranking = namedtuple('Ranking', 'metric source')


def compute_distance(qf, gf, metric='euclidean'):
    """Return the (Q, G) distance matrix between query and gallery features.

    Computed in float32 on ``qf``'s device; smaller is closer. ``'euclidean'`` is the
    true (not squared) L2 distance, ``sqrt(max(|q|^2 + |g|^2 - 2 q.g, 0))``;
    ``'cosine'`` is ``1 - cos(q, g)`` of the L2-normalised features; ``'dot'`` is the
    negated raw inner product ``-q.g`` of the features as they are (VLD ranks by the
    dot product of un-normalised features; AGW by that of L2-normalised ones, which
    ranks as ``'cosine'``).
    """
    if metric not in DISTANCES:
        raise ValueError('unknown metric {!r}; accepted: {}'.format(
            metric, ', '.join(DISTANCES)))
    qf = torch.as_tensor(qf).detach().float()
    gf = torch.as_tensor(gf).detach().float().to(qf.device)
    if qf.dim() != 2 or gf.dim() != 2 or qf.size(1) != gf.size(1):
        raise ValueError('expected 2-D features with equal width, got {} and {}'
                         .format(tuple(qf.shape), tuple(gf.shape)))
    if metric == 'cosine':
        return 1 - F.normalize(qf, dim=1) @ F.normalize(gf, dim=1).t()
    if metric == 'dot':
        return -(qf @ gf.t())
    sq = (qf.pow(2).sum(1, keepdim=True) + gf.pow(2).sum(1)
          - 2 * qf @ gf.t())
    # The expansion can dip slightly below 0 by rounding; clamp before sqrt.
    return sq.clamp_(min=0).sqrt_()


def declared_ranking(obj):
    """The ``Ranking`` a model or dataset (instance or class) declares, or None."""
    obj = getattr(obj, 'module', obj)   # a DDP / compiled wrapper: the model inside
    obj = getattr(obj, '_orig_mod', obj)
    metric = getattr(obj, 'TEST_DISTANCE', None)
    if metric is None:
        return None
    if metric not in DISTANCES:
        raise ValueError('{}.TEST_DISTANCE must be one of {}, got {!r}'.format(
            type(obj).__name__, DISTANCES, metric))
    return Ranking(metric, getattr(obj, 'TEST_DISTANCE_SOURCE', '') or type(obj).__name__)


def resolve_ranking(setting, model=None, dataset=None):
    """What to rank by: ``setting`` (``test.dist_metric``) when it names a distance, for
    'auto' (or None) the model's declaration, else the dataset's (its protocol's
    reference code), else Euclidean (torchreid's default)."""
    if setting in DISTANCES:
        return Ranking(setting, 'test.dist_metric {}'.format(setting))
    if setting not in (None, 'auto'):
        raise ValueError('test.dist_metric must be one of {}, got {!r}'.format(
            DIST_METRICS, setting))
    for obj in (model, dataset):
        declared = declared_ranking(obj) if obj is not None else None
        if declared is not None:
            return declared
    return Ranking('euclidean', "torchreid's default (neither the model nor the protocol "
                                'declares a reference distance)')
