"""Vectorised cross-modal ranking metrics: CMC, mAP and mINP.

Protocols (camids are 0-based):

* ``'sysu'``  -- official SYSU-MM01 evaluation (AGW ``eval_sysu``): a query
  from camera 3 (camid 2) drops every gallery item from camera 2 (camid 1),
  whatever its identity, because the two cameras share a room. CMC is taken
  on the identity-de-duplicated ranking (first occurrence of each gallery pid
  kept); mAP / mINP on the full ranking after removal.
* ``'regdb'`` -- nothing removed; plain CMC, AP, INP.
* ``'vcm'``   -- HITSZ-VCM / Market-1501 evaluation: gallery items sharing
  both pid and camid with the query are removed; plain CMC, AP, INP.
* ``'llcm'``  -- LLCM (DEEN ``eval_llcm``): the ``'vcm'`` removal (visible and
  infrared share the camera numbering, so a same-camera cross-modal positive
  goes) with the ``'sysu'`` identity-de-duplicated CMC; mAP / mINP on the full
  ranking after removal.
* ``'llcm_transposed'`` -- what LLCM's official ``test.py`` computes in its
  "VIS to IR" mode: the ``'llcm'`` metric of the transposed matrix, i.e. the
  gallery items are the probes and the queries the gallery.

Everything runs in torch on ``distmat``'s device, a chunk of queries at a
time, with no per-query Python loop and no sort of a whole row.
``vireid_plugin.metrics.reference`` holds the field's per-query loop, the
definition these numbers are checked against.
"""
import math

import numpy as np
import torch

__all__ = ['evaluate_rank', 'kept_mask', 'kept_pairs', 'rank_gallery', 'matched_queries',
           'PROTOCOLS']

PROTOCOLS = ('sysu', 'regdb', 'vcm', 'llcm', 'llcm_transposed')
# protocols whose CMC is taken on the identity-de-duplicated ranking
_DEDUP_CMC = ('sysu', 'llcm')
# protocol -> the protocol it scores on the transposed matrix
_TRANSPOSED = {'llcm_transposed': 'llcm'}

# Elements of a (chunk, G) block; bounds the several int64/bool temporaries.
_CHUNK_ELEMS = 1 << 22
# Distance buckets per query: only items sharing a bucket with a true match are
# compared with the matches one by one.
_BUCKETS = 1024


def kept_mask(protocol, q_pids, q_camids, g_pids, g_camids):
    """Which gallery items a query may be ranked against, by the protocol's removal rule.

    Broadcasts: (Q, 1) query labels against (Q, G) or (G,) gallery labels.
    """
    if protocol == 'sysu':
        # cameras 2 and 3 share a room: a camera-3 query skips all of camera 2
        return ~((q_camids == 2) & (g_camids == 1))
    if protocol in ('vcm', 'llcm', 'llcm_transposed'):   # symmetric in query and gallery
        return ~((g_pids == q_pids) & (g_camids == q_camids))
    return torch.ones(torch.broadcast_shapes(q_pids.shape, g_pids.shape), dtype=torch.bool,
                      device=g_pids.device)


def kept_pairs(protocol, q_pids, q_camids, g_pids, g_camids):
    """(Q, G) mask of the gallery items each query is ranked against ((Q,) and (G,)
    labels)."""
    keep = kept_mask(protocol, q_pids[:, None], q_camids[:, None], g_pids[None],
                     g_camids[None])
    return keep.expand(len(q_pids), len(g_pids))


def rank_gallery(dist, keep, topk):
    """The ranked lists the metric scores: per query row of ``dist`` (Q, G), the gallery
    indices nearest first (stable: ties keep gallery order), only those ``keep`` (Q, G)
    allows, at most ``topk``."""
    order = torch.sort(torch.as_tensor(dist), dim=1, stable=True).indices
    return [[int(g) for g in order[i] if keep[i, g]][:topk] for i in range(order.shape[0])]


def _as_tensor(x, device):
    return torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x,
                           device=device)


def evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, protocol,
                  max_rank=20, chunk_size=None, buckets=_BUCKETS):
    """Return ``(cmc, mAP, mINP)`` for a (Q, G) distance matrix.

    Inputs may be numpy arrays or torch tensors. ``cmc`` is a float64 numpy
    array of length ``max_rank``; ``mAP`` and ``mINP`` are floats in [0, 1].
    All three average over valid queries only (those with at least one true
    match left after removal). Ranking sorts by ascending distance, stably, so
    ties keep gallery order. ``chunk_size`` (queries per block) defaults to a
    value that keeps each block around 4M elements. ``buckets`` (> 0) sets the
    distance histogram's resolution (speed only; 0 compares every candidate).

    No row is sorted: only the true matches' ranks matter (and, for the
    de-duplicated CMC, which identities come before the first true match). Each
    query's matches are sorted (they are few); every distance falls in one of
    ``buckets`` equal-width buckets, so a kept non-match in a bucket without a match
    counts ahead of exactly the matches in higher buckets (a histogram), and only
    the items sharing a bucket with a match are compared with the matches by
    (distance, gallery index). The result is exact; ``metrics.reference`` holds the
    per-query loop it is tested against.
    """
    if protocol not in PROTOCOLS:
        raise ValueError('unknown protocol {!r}; accepted: {}'.format(
            protocol, ', '.join(repr(p) for p in PROTOCOLS)))
    if int(max_rank) < 1:
        raise ValueError('max_rank must be >= 1, got {}'.format(max_rank))
    max_rank = int(max_rank)
    if protocol in _TRANSPOSED:
        return evaluate_rank(_as_tensor(distmat, None).t(), g_pids, q_pids, g_camids,
                             q_camids, _TRANSPOSED[protocol], max_rank, chunk_size,
                             buckets)

    dist = _as_tensor(distmat, None).detach()
    device = dist.device
    if dist.dim() != 2:
        raise ValueError('distmat must be 2-D, got shape {}'.format(
            tuple(dist.shape)))
    if not dist.is_floating_point():
        dist = dist.double()
    num_q, num_g = dist.shape
    q_pids, g_pids, q_camids, g_camids = (
        _as_tensor(x, device).reshape(-1).long()
        for x in (q_pids, g_pids, q_camids, g_camids))
    if len(q_pids) != num_q or len(q_camids) != num_q:
        raise ValueError('q_pids / q_camids must have {} entries'.format(num_q))
    if len(g_pids) != num_g or len(g_camids) != num_g:
        raise ValueError('g_pids / g_camids must have {} entries'.format(num_g))
    dedup = protocol in _DEDUP_CMC
    if dedup:
        # Contiguous pid ids: (row, identity) pairs encode as row * num_pids + id.
        _, g_pid_ids = torch.unique(g_pids, return_inverse=True)
        num_pids = int(g_pid_ids.max()) + 1 if num_g else 0

    if chunk_size is None:
        chunk_size = max(1, _CHUNK_ELEMS // max(num_g, 1))
    ranks = torch.arange(1, max_rank + 1, device=device)
    cmc_sum = torch.zeros(max_rank, dtype=torch.float64, device=device)
    ap_sum = torch.zeros((), dtype=torch.float64, device=device)
    inp_sum = torch.zeros((), dtype=torch.float64, device=device)
    num_valid = 0

    for start in range(0, num_q, chunk_size):
        stop = min(start + chunk_size, num_q)
        qp = q_pids[start:stop, None]
        keep = kept_mask(protocol, qp, q_camids[start:stop, None], g_pids, g_camids)
        keep = keep.expand(stop - start, num_g)
        hit = (g_pids == qp) & keep
        num_rel = hit.sum(1)
        valid = num_rel > 0
        n_valid = int(valid.sum())
        if n_valid == 0:
            continue
        if n_valid < stop - start:   # score valid queries only
            rows = valid.nonzero().squeeze(1)
            d, keep, hit, num_rel = (dist[start:stop][rows], keep[rows], hit[rows],
                                     num_rel[rows])
        else:
            d = dist[start:stop].contiguous()   # a transposed matrix: rows contiguous
        num_valid += n_valid
        max_rel = int(num_rel.max())
        hit_rank, ahead_ids = _match_ranks(d, keep, hit, num_rel, max_rel,
                                           g_pid_ids if dedup else None,
                                           num_pids if dedup else 0, buckets)
        m = torch.arange(1, max_rel + 1, device=device)
        is_match = m <= num_rel[:, None]
        ap = (m.double() / hit_rank * is_match).sum(1) / num_rel
        inp = num_rel.double() / hit_rank.gather(1, (num_rel - 1)[:, None]).squeeze(1)
        # After de-duplication the first match sits behind one entry per identity with
        # a kept item ahead of it.
        first_rank = ahead_ids + 1 if dedup else hit_rank[:, 0]

        # Plain and de-duplicated CMC are both 0/1 steps at first_rank, which
        # also covers rankings shorter than max_rank (value stays at 1).
        cmc_sum += (first_rank[:, None] <= ranks).sum(0)
        ap_sum += ap.sum()
        inp_sum += inp.sum()

    if num_valid == 0:
        raise ValueError('no valid query: no query has a true match in the '
                         'gallery after {!r} removal'.format(protocol))
    return ((cmc_sum / num_valid).cpu().numpy(), float(ap_sum) / num_valid,
            float(inp_sum) / num_valid)


def _sorted_matches(dist, hit, num_rel, max_rel):
    """Each row's true matches in ranking order: (n, max_rel) distances and gallery indices,
    padded with +inf and G. Ranking order = by distance, ties by gallery index."""
    n, num_g = dist.shape
    rows, cols = hit.nonzero(as_tuple=True)   # row-major: cols ascending per row
    slot = torch.arange(len(rows), device=dist.device) - (num_rel.cumsum(0) - num_rel)[rows]
    pos_d = torch.full((n, max_rel), float('inf'), dtype=dist.dtype, device=dist.device)
    pos_i = torch.full((n, max_rel), num_g, dtype=torch.int64, device=dist.device)
    pos_d[rows, slot] = dist[rows, cols]
    pos_i[rows, slot] = cols
    pos_d, perm = pos_d.sort(dim=1, stable=True)   # stable: equal distances stay in index order
    return pos_d, pos_i.gather(1, perm)


def _match_ranks(d, keep, hit, num_rel, max_rel, pid_ids, num_pids, buckets):
    """(rank after removal of each row's m-th true match (n, max_rel), and with ``pid_ids``
    the number of other identities with a kept item ahead of the first match (n,))."""
    n = len(d)
    device = d.device
    pos_d, pos_i = _sorted_matches(d, hit, num_rel, max_rel)
    neg = keep & ~hit
    lo, hi = (float(v) for v in torch.aminmax(d))
    buckets = min(buckets, d.shape[1])   # tables no larger than the block
    if buckets > 0 and math.isfinite(lo) and math.isfinite(hi) and hi > lo:
        # Bucket of every distance (non-decreasing in the distance, so equal distances
        # share one); a kept non-match outside the matches' buckets ranks ahead of a
        # match exactly when its bucket is lower. The others (candidates) are compared.
        scale = buckets / (hi - lo)

        def bucket_of(x):   # the same operations for items and matches
            return (x * scale).sub_(lo * scale).clamp_(0, buckets - 1).long()

        bucket = bucket_of(d)
        pos_b = bucket_of(pos_d.nan_to_num(posinf=hi))
        real = torch.arange(max_rel, device=device) < num_rel[:, None]
        hot = torch.zeros(n, buckets, dtype=torch.bool, device=device)
        hot[torch.arange(n, device=device)[:, None].expand_as(pos_b)[real], pos_b[real]] = True
        cand = neg & hot.gather(1, bucket)
        rest = neg & ~cand
        per_bucket = torch.zeros(n, buckets, dtype=torch.int32, device=device)
        per_bucket.scatter_add_(1, bucket, rest.int())
        below = (per_bucket.cumsum(1) - per_bucket).gather(1, pos_b)
    else:   # non-finite or constant distances: every kept non-match up to the last match
        cand = neg & (d <= pos_d.gather(1, (num_rel - 1)[:, None]))
        below = torch.zeros(n, max_rel, dtype=torch.int64, device=device)
    rows, cols = cand.nonzero(as_tuple=True)
    ahead = _matches_ahead(d[rows, cols], cols, pos_d, pos_i, rows)
    # rank of the m-th match = m + non-candidates in lower buckets + candidates with
    # fewer than m matches ahead of them
    cand_hist = torch.zeros(n, max_rel + 1, dtype=torch.int64, device=device)
    cand_hist.index_put_((rows, ahead), torch.ones_like(ahead), accumulate=True)
    m = torch.arange(1, max_rel + 1, device=device)
    hit_rank = cand_hist.cumsum(1)[:, :max_rel] + below + m
    if pid_ids is None:
        return hit_rank, None
    # identities ahead of the first match: non-candidates in a lower bucket than the
    # first match (none without buckets), candidates with no match ahead
    seen = torch.zeros(n, num_pids, dtype=torch.int32, device=device)
    if below.any():
        first_b = pos_b[:, :1]
        seen.scatter_add_(1, pid_ids.expand(n, -1), (rest & (bucket < first_b)).int())
    first = ahead == 0
    seen.index_put_((rows[first], pid_ids[cols[first]]),
                    torch.ones(int(first.sum()), dtype=torch.int32, device=device),
                    accumulate=True)
    return hit_rank, (seen > 0).sum(1)


def _matches_ahead(d, idx, pos_d, pos_i, rows):
    """For items (row ``rows``, distance ``d``, gallery index ``idx``): how many of their
    row's true matches rank ahead, blocked to bound the (items, max_rel) comparison."""
    out = torch.empty(len(d), dtype=torch.int64, device=d.device)
    step = max(1, _CHUNK_ELEMS // max(pos_d.shape[1], 1))
    for s in range(0, len(d), step):
        r, x, i = rows[s:s + step], d[s:s + step, None], idx[s:s + step, None]
        pd, pi = pos_d[r], pos_i[r]
        out[s:s + step] = ((pd < x) | ((pd == x) & (pi < i))).sum(1)
    return out


def matched_queries(protocol, q_pids, q_camids, g_pids, g_camids):
    """Which probes keep a true match after the protocol's removal (bool numpy array).

    The metric skips the others. For a transposed protocol the probes are the
    gallery items, so the array has one entry per gallery item.
    """
    if protocol not in PROTOCOLS:
        raise ValueError('unknown protocol {!r}'.format(protocol))
    if protocol in _TRANSPOSED:
        return matched_queries(_TRANSPOSED[protocol], g_pids, g_camids, q_pids, q_camids)
    q_pids, q_camids, g_pids, g_camids = (torch.as_tensor(np.asarray(x)).reshape(-1).long()
                                          for x in (q_pids, q_camids, g_pids, g_camids))
    hit = (g_pids == q_pids[:, None]) & kept_mask(protocol, q_pids[:, None], q_camids[:, None],
                                                  g_pids, g_camids)
    return hit.any(1).numpy()
