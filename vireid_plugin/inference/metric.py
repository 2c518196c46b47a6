"""The distance a run ranks with: the one place that resolves it (point it elsewhere here).

``test.dist_metric`` of the run's config; when it is ``'auto'`` or absent, the model's
declaration (class attribute ``TEST_DISTANCE``), else ``'euclidean'``.
"""

__all__ = ['run_distance']


def run_distance(cfg, model):
    """'euclidean', 'cosine' (or whatever the model declares) for ranking with ``model``."""
    test = getattr(cfg, 'test', None) if cfg is not None else None
    metric = getattr(test, 'dist_metric', None) if test is not None else None
    if metric in (None, '', 'auto'):
        metric = getattr(model, 'TEST_DISTANCE', 'euclidean')
    return metric
