"""Query-gallery distance matrices for ranking."""
import torch
import torch.nn.functional as F

__all__ = ['compute_distance']

_METRICS = ('euclidean', 'cosine')


def compute_distance(qf, gf, metric='euclidean'):
    """Return the (Q, G) distance matrix between query and gallery features.

    Computed in float32 on ``qf``'s device. ``'euclidean'`` is the true
    (not squared) L2 distance, ``sqrt(max(|q|^2 + |g|^2 - 2 q.g, 0))``;
    ``'cosine'`` is ``1 - cos(q, g)`` of the L2-normalised features.
    """
    if metric not in _METRICS:
        raise ValueError('unknown metric {!r}; accepted: {}'.format(
            metric, ', '.join(_METRICS)))
    qf = torch.as_tensor(qf).detach().float()
    gf = torch.as_tensor(gf).detach().float().to(qf.device)
    if qf.dim() != 2 or gf.dim() != 2 or qf.size(1) != gf.size(1):
        raise ValueError('expected 2-D features with equal width, got {} and {}'
                         .format(tuple(qf.shape), tuple(gf.shape)))
    if metric == 'cosine':
        return 1 - F.normalize(qf, dim=1) @ F.normalize(gf, dim=1).t()
    sq = (qf.pow(2).sum(1, keepdim=True) + gf.pow(2).sum(1)
          - 2 * qf @ gf.t())
    # The expansion can dip slightly below 0 by rounding; clamp before sqrt.
    return sq.clamp_(min=0).sqrt_()
