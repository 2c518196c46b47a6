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
time, with no per-query Python loop.
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

    if protocol in _DEDUP_CMC:
        # Contiguous pid ids so first occurrences fit in a (chunk, P) table.
        _, g_pid_ids = torch.unique(g_pids, return_inverse=True)
        num_pids = int(g_pid_ids.max()) + 1 if num_g else 0

    if chunk_size is None:
        chunk_size = max(1, _CHUNK_ELEMS // max(num_g, 1))
    ranks = torch.arange(1, max_rank + 1, device=device)
    cmc_sum = torch.zeros(max_rank, dtype=torch.float64, device=device)
    ap_sum = torch.zeros((), dtype=torch.float64, device=device)
    inp_sum = torch.zeros((), dtype=torch.float64, device=device)
    num_valid = torch.zeros((), dtype=torch.int64, device=device)

    for start in range(0, num_q, chunk_size):
        stop = min(start + chunk_size, num_q)
        order = torch.sort(dist[start:stop], dim=1, stable=True).indices
        qp = q_pids[start:stop, None]
        qc = q_camids[start:stop, None]
        gp, gc = g_pids[order], g_camids[order]
        match = gp == qp

        keep = kept_mask(protocol, qp, qc, gp, gc)

        hit = match & keep
        num_rel = hit.sum(1)
        valid = num_rel > 0
        # 1-based rank of every position within the ranking after removal.
        kept_rank = keep.long().cumsum(1)
        hit_rank = torch.where(hit, kept_rank, torch.zeros_like(kept_rank))
        nth_hit = hit.long().cumsum(1)  # k for the k-th true match

        rel = num_rel.clamp(min=1).double()  # invalid rows are masked below
        ap = (nth_hit.double() / kept_rank.clamp(min=1).double()
              * hit).sum(1) / rel
        inp = num_rel.double() / hit_rank.max(1).values.clamp(min=1).double()

        # Rank of the first true match: the smallest nonzero hit_rank.
        big = torch.full_like(hit_rank, num_g + 1)
        first_rank = torch.where(hit, hit_rank, big).min(1).values
        if protocol in _DEDUP_CMC:
            # After de-duplication the first true match sits behind one entry
            # per distinct pid whose first kept occurrence precedes it.
            pos = torch.arange(num_g, device=device).expand_as(order)
            kept_pos = torch.where(keep, pos, torch.full_like(pos, num_g))
            first_pos = torch.full((stop - start, num_pids), num_g,
                                   dtype=torch.int64, device=device)
            first_pos.scatter_reduce_(1, g_pid_ids[order], kept_pos,
                                      reduce='amin')
            first_hit_pos = torch.where(hit, pos, torch.full_like(pos, num_g)
                                        ).min(1).values
            first_rank = (first_pos < first_hit_pos[:, None]).sum(1) + 1

        # Plain and de-duplicated CMC are both 0/1 steps at first_rank, which
        # also covers rankings shorter than max_rank (value stays at 1).
        cmc = (first_rank[:, None] <= ranks) & valid[:, None]
        cmc_sum += cmc.double().sum(0)
        ap_sum += torch.where(valid, ap, torch.zeros_like(ap)).sum()
        inp_sum += torch.where(valid, inp, torch.zeros_like(inp)).sum()
        num_valid += valid.sum()

    n = int(num_valid)
    if n == 0:
        raise ValueError('no valid query: no query has a true match in the '
                         'gallery after {!r} removal'.format(protocol))
    return ((cmc_sum / n).cpu().numpy(), float(ap_sum) / n,
            float(inp_sum) / n)


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
