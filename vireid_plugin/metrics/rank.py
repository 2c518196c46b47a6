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
import numpy as np
import torch

__all__ = ['evaluate_rank', 'kept_mask', 'matched_queries', 'PROTOCOLS']

PROTOCOLS = ('sysu', 'regdb', 'vcm', 'llcm', 'llcm_transposed')
# protocols whose CMC is taken on the identity-de-duplicated ranking
_DEDUP_CMC = ('sysu', 'llcm')
# protocol -> the protocol it scores on the transposed matrix
_TRANSPOSED = {'llcm_transposed': 'llcm'}

# Elements of a (chunk, G) block; bounds the several int64/bool temporaries.
_CHUNK_ELEMS = 1 << 22


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


def _as_tensor(x, device):
    return torch.as_tensor(np.asarray(x) if not torch.is_tensor(x) else x,
                           device=device)


def evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, protocol,
                  max_rank=20, chunk_size=None):
    """Return ``(cmc, mAP, mINP)`` for a (Q, G) distance matrix.

    Inputs may be numpy arrays or torch tensors. ``cmc`` is a float64 numpy
    array of length ``max_rank``; ``mAP`` and ``mINP`` are floats in [0, 1].
    All three average over valid queries only (those with at least one true
    match left after removal). Ranking sorts by ascending distance, stably, so
    ties keep gallery order. ``chunk_size`` (queries per block) defaults to a
    value that keeps each block around 4M elements.

    No row is sorted: only the true matches' ranks matter (and, for the
    de-duplicated CMC, which identities come before the first true match), so
    each gallery item is placed among the query's few true matches by a binary
    search of its (distance, index) key (see ``_before_positives``).
    """
    if protocol not in PROTOCOLS:
        raise ValueError('unknown protocol {!r}; accepted: {}'.format(
            protocol, ', '.join(repr(p) for p in PROTOCOLS)))
    if int(max_rank) < 1:
        raise ValueError('max_rank must be >= 1, got {}'.format(max_rank))
    max_rank = int(max_rank)
    if protocol in _TRANSPOSED:
        return evaluate_rank(_as_tensor(distmat, None).t(), g_pids, q_pids, g_camids,
                             q_camids, _TRANSPOSED[protocol], max_rank, chunk_size)

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
    # float32 (and anything float32 holds exactly) takes the packed-key path
    exact32 = dist.dtype != torch.float64 or bool((dist.float().double() == dist).all())

    dedup = protocol in _DEDUP_CMC
    if dedup:
        # Contiguous pid ids so "identity seen before the first match" fits a (chunk, P) table.
        _, g_pid_ids = torch.unique(g_pids, return_inverse=True)
        num_pids = int(g_pid_ids.max()) + 1 if num_g else 0

    if chunk_size is None:
        chunk_size = max(1, _CHUNK_ELEMS // max(num_g, 1))
    ranks = torch.arange(1, max_rank + 1, device=device)
    cmc_sum = torch.zeros(max_rank, dtype=torch.float64, device=device)
    ap_sum = torch.zeros((), dtype=torch.float64, device=device)
    inp_sum = torch.zeros((), dtype=torch.float64, device=device)
    num_valid = 0
    g_index = torch.arange(num_g, device=device)

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
        # before[i, k] = how many of row i's true matches rank ahead of item k
        before = _before_positives(d, hit, num_rel, max_rel, exact32, g_index)
        # rank (1-based, after removal) of the m-th true match = kept items with
        # before <= m - 1 (the match itself and the m - 1 earlier ones included)
        hist = torch.zeros(len(d), max_rel + 1, dtype=torch.int64, device=device)
        hist.scatter_add_(1, before, keep.long())
        hit_rank = hist.cumsum(1)[:, :max_rel]
        m = torch.arange(1, max_rel + 1, device=device, dtype=torch.float64)
        is_match = m <= num_rel[:, None]
        ap = (m / hit_rank * is_match).sum(1) / num_rel
        last_rank = hit_rank.gather(1, (num_rel - 1)[:, None]).squeeze(1)
        inp = num_rel.double() / last_rank
        if dedup:
            # After de-duplication the first true match sits behind one entry per
            # identity with a kept item ahead of it (before == 0, not a match).
            ahead = (keep & (before == 0) & ~hit).int()
            seen = torch.zeros(len(d), num_pids, dtype=torch.int32, device=device)
            seen.scatter_add_(1, g_pid_ids.expand(len(d), num_g), ahead)
            first_rank = (seen > 0).sum(1) + 1
        else:
            first_rank = hit_rank[:, 0]

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


def _order_keys(dist, g_index):
    """int64 keys ordering a float32 block by (distance, gallery index), like a stable sort.

    The float's bits, made monotone as a signed int32 (negatives flipped), in the
    high half and the gallery index in the low half.
    """
    bits = (dist.float() + 0.0).view(torch.int32)   # + 0.0: -0.0 -> +0.0 (they tie)
    bits = torch.where(bits < 0, bits ^ 0x7FFFFFFF, bits)
    return (bits.long() << 32) + g_index


def _before_positives(dist, hit, num_rel, max_rel, exact32, g_index):
    """(n, G) int64: per row, how many true matches rank strictly ahead of each item.

    Ranking is by (distance, gallery index). The true matches' keys go, sorted, into a
    (n, max_rel) table padded with +inf keys; each item is located in it by binary
    search (float32 distances) or by comparing with each match (float64 distances
    that float32 cannot hold exactly, the chunk split further to bound memory).
    """
    n, num_g = dist.shape
    rows, cols = hit.nonzero(as_tuple=True)   # row-major: cols ascending per row
    offsets = num_rel.cumsum(0) - num_rel
    slot = torch.arange(len(rows), device=dist.device) - offsets[rows]
    if exact32:
        keys = _order_keys(dist, g_index)
        table = torch.full((n, max_rel), torch.iinfo(torch.int64).max, dtype=torch.int64,
                           device=dist.device)
        table[rows, slot] = keys[rows, cols]
        return torch.searchsorted(table.sort(1).values, keys)
    # float64: (distance, index) pairs; matches sorted by distance, stably (index order)
    pos_d = torch.full((n, max_rel), float('inf'), dtype=dist.dtype, device=dist.device)
    pos_i = torch.full((n, max_rel), num_g, dtype=torch.int64, device=dist.device)
    pos_d[rows, slot] = dist[rows, cols]
    pos_i[rows, slot] = cols
    before = torch.empty(n, num_g, dtype=torch.int64, device=dist.device)
    step = max(1, _CHUNK_ELEMS // max(num_g * max_rel, 1))
    for s in range(0, n, step):
        d = dist[s:s + step, :, None]
        pd, pi = pos_d[s:s + step, None, :], pos_i[s:s + step, None, :]
        ahead = (pd < d) | ((pd == d) & (pi < g_index[:, None]))
        before[s:s + step] = ahead.sum(2)
    return before


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
