"""The field's per-query evaluation loop, the definition ``evaluate_rank`` is checked against.

``evaluate_rank_reference`` follows the structure of the reference code the field
publishes: AGW's ``eval_sysu`` / ``eval_regdb`` (Cross-Modal-Re-ID-baseline), DEEN's
``eval_llcm`` and torchreid's ``eval_market1501`` (the ``vcm`` removal): argsort every
row of the distance matrix, then for each query in a Python loop drop the removed
gallery items, take the first occurrence of each identity with ``np.unique`` and a
list comprehension for the de-duplicated CMC, cumulative sums for CMC / mINP and a
per-position Python list of precisions for AP. It is written here (not copied), with
the plugin's semantics where the published loops differ, so both give the same
numbers:

* the sort is stable (``kind='stable'``): ties keep gallery order (AGW's default
  quicksort orders ties arbitrarily);
* every curve is averaged over valid queries only (AGW's ``eval_sysu`` appends the
  de-duplicated CMC of queries without a match too, then divides by the valid count);
* camids are 0-based (SYSU's camera 3 is camid 2);
* a ranking shorter than ``max_rank`` keeps its last value (AGW shortens ``max_rank``);
* sums are float64 (AGW sums the CMC in float32).

It is slow by construction (the benchmark measures how slow); use ``evaluate_rank``.
"""
import numpy as np

from .rank import PROTOCOLS

__all__ = ['evaluate_rank_reference']


def evaluate_rank_reference(distmat, q_pids, g_pids, q_camids, g_camids, protocol,
                            max_rank=20):
    """``(cmc, mAP, mINP)`` by the per-query loop; same arguments as ``evaluate_rank``."""
    if protocol not in PROTOCOLS:
        raise ValueError('unknown protocol {!r}'.format(protocol))
    distmat = np.asarray(distmat)
    q_pids, g_pids, q_camids, g_camids = (np.asarray(x).reshape(-1)
                                          for x in (q_pids, g_pids, q_camids, g_camids))
    if protocol == 'llcm_transposed':   # LLCM test.py's "VIS to IR": gallery items probe
        distmat, q_pids, g_pids, q_camids, g_camids = (distmat.T, g_pids, q_pids,
                                                       g_camids, q_camids)
        protocol = 'llcm'
    num_q = distmat.shape[0]
    indices = np.argsort(distmat, axis=1, kind='stable')
    pred_label = g_pids[indices]
    matches = (pred_label == q_pids[:, np.newaxis]).astype(np.int32)

    all_cmc, all_ap, all_inp = [], [], []
    for q_idx in range(num_q):
        q_pid, q_camid = q_pids[q_idx], q_camids[q_idx]
        order = indices[q_idx]
        if protocol == 'sysu':          # camera 3 and camera 2 share a room
            remove = (q_camid == 2) & (g_camids[order] == 1)
        elif protocol in ('vcm', 'llcm'):   # same identity seen by the same camera
            remove = (g_pids[order] == q_pid) & (g_camids[order] == q_camid)
        else:
            remove = np.zeros(len(order), dtype=bool)
        keep = np.invert(remove)

        orig_cmc = matches[q_idx][keep]   # 1 where the kept item is a true match
        if not np.any(orig_cmc):
            continue                      # no true match left: not a valid query

        if protocol in ('sysu', 'llcm'):
            # CMC on the ranking with each identity at its first occurrence only
            labels = pred_label[q_idx][keep]
            first = np.unique(labels, return_index=True)[1]
            labels = [labels[index] for index in sorted(first)]
            cmc = (np.asarray(labels) == q_pid).astype(np.int32).cumsum()
        else:
            cmc = orig_cmc.cumsum()
            cmc[cmc > 1] = 1
        cmc = cmc[:max_rank]
        all_cmc.append(np.pad(cmc, (0, max_rank - len(cmc)), mode='edge'))

        # mINP: matches found / rank of the last one
        tmp = orig_cmc.cumsum()
        last = np.max(np.where(orig_cmc == 1))
        all_inp.append(tmp[last] / (last + 1.0))

        # AP: mean precision at the rank of each true match
        num_rel = orig_cmc.sum()
        precision = [x / (i + 1.0) for i, x in enumerate(tmp)]
        all_ap.append((np.asarray(precision) * orig_cmc).sum() / num_rel)

    if not all_cmc:
        raise ValueError('no valid query: no query has a true match in the '
                         'gallery after {!r} removal'.format(protocol))
    return (np.asarray(all_cmc, dtype=np.float64).mean(0), float(np.mean(all_ap)),
            float(np.mean(all_inp)))
