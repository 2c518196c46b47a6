"""The distance a run ranks with, for search: what its evaluation ranked by.

``test.dist_metric`` of the run's config, resolved as the engine resolves it
(``metrics.distance.resolve_ranking``): a named distance as is; ``'auto'`` (or absent)
the model's declared reference ranking (``TEST_DISTANCE``), else the one declared by
the protocol of the run's first target dataset, else Euclidean.
"""
from ..metrics.distance import resolve_ranking
from ..registry import IMAGE_DATASETS, VIDEO_DATASETS

__all__ = ['run_distance']


def _first_target(cfg):
    """The dataset class of the run's first target, or None."""
    data = getattr(cfg, 'data', None) if cfg is not None else None
    targets = list(getattr(data, 'targets', None) or []) if data is not None else []
    for registry in (IMAGE_DATASETS, VIDEO_DATASETS):
        if targets and targets[0] in registry:
            return registry.get(targets[0])
    return None


def run_distance(cfg, model):
    """'euclidean', 'cosine' or 'dot': what the run's evaluation ranked ``model``'s
    features by."""
    test = getattr(cfg, 'test', None) if cfg is not None else None
    metric = getattr(test, 'dist_metric', None) if test is not None else None
    return resolve_ranking(metric or 'auto', model, _first_target(cfg)).metric
