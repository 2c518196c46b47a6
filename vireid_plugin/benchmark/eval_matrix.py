"""Evaluation benchmark: the plugin's metric against the field's per-query loop.

Random features with the real test-set sizes and identity/camera layout of each
protocol (counts from the datasets' papers and the research notes):

* SYSU-MM01: 96 test ids; 3803 infrared queries (camera 3: 1883 images of 93 ids,
  camera 6: 1920 of 96 ids); visible gallery drawn per trial from cameras 1, 2
  (indoor: 56 ids, 112 (id, camera) folders) and 4, 5 (189 folders): single-shot
  one image per folder (301 all-search, 112 indoor), multi-shot 10 (3010, 1120);
  all/indoor x single/multi-shot x 10 trials, metric ``sysu``.
* RegDB: 206 ids x 10 visible and 10 thermal images, both directions, 10 trials
  (one per split), metric ``regdb``.
* HITSZ-VCM: 427 test ids, 4584 infrared and 5099 visible tracklets (after the
  12-frame filter), both directions, metric ``vcm``.

Which ids miss which camera and how the queries spread over ids are drawn at
random to those totals. Each trial's distance matrix is computed (untimed) from
the features, then scored by ``evaluate_rank_reference`` (numpy, CPU) and by
``evaluate_rank`` (on the device); the benchmark reports both times, their ratio
and the largest difference of any CMC value, mAP or mINP.
"""
from dataclasses import dataclass, field
from typing import List

import numpy as np
import torch

from ..metrics import compute_distance, evaluate_rank, evaluate_rank_reference
from .timing import timed

__all__ = ['EvalCase', 'sysu_cases', 'regdb_cases', 'vcm_cases', 'eval_cases', 'run_eval_case',
           'compare_metrics']

FEATURE_DIM = 256


@dataclass
class EvalCase:
    """One protocol row: a query set and one gallery per trial (indices into a pool)."""
    dataset: str
    name: str
    metric: str
    pids: np.ndarray          # pool labels
    cams: np.ndarray
    query: np.ndarray
    galleries: List[np.ndarray] = field(default_factory=list)


def _features(rng, pids, modality):
    """Identity centres plus a modality shift plus noise: ranks far from random."""
    dim = FEATURE_DIM
    centres = np.random.default_rng(12345).normal(size=(int(pids.max()) + 1, dim))
    shift = np.random.default_rng(54321).normal(size=(2, dim)) * 0.5
    x = centres[pids] + shift[modality] + rng.normal(size=(len(pids), dim)) * 2.0
    return torch.from_numpy(x.astype(np.float32))


def _spread(rng, total, ids):
    """``total`` items over ``ids`` (as even as possible, random remainder)."""
    base = np.full(len(ids), total // len(ids))
    base[rng.choice(len(ids), total % len(ids), replace=False)] += 1
    return np.repeat(ids, base)


def sysu_cases(rng, trials=10, query_scale=1.0, shots_pool=20):
    """SYSU-MM01 all/indoor x single/multi-shot (metric ``sysu``; 0-based camids)."""
    ids = np.arange(96)
    indoor_ids = rng.choice(ids, 56, replace=False)
    folders = [(p, c) for p in indoor_ids for c in (0, 1)]              # cams 1, 2
    outdoor = [(p, c) for p in ids for c in (3, 4)]                     # cams 4, 5
    drop = set(rng.choice(len(outdoor), 3, replace=False).tolist())
    folders += [f for i, f in enumerate(outdoor) if i not in drop]      # 112 + 189 = 301
    cam3_ids = rng.choice(ids, 93, replace=False)
    n3, n6 = int(round(1883 * query_scale)), int(round(1920 * query_scale))
    q_pids = np.concatenate([_spread(rng, n3, cam3_ids), _spread(rng, n6, ids)])
    q_cams = np.concatenate([np.full(n3, 2), np.full(n6, 5)])
    # gallery candidates: shots_pool images per (id, camera) folder
    g_pids = np.repeat([p for p, _ in folders], shots_pool)
    g_cams = np.repeat([c for _, c in folders], shots_pool)
    pids, cams = np.concatenate([q_pids, g_pids]), np.concatenate([q_cams, g_cams])
    query = np.arange(len(q_pids))
    cases = []
    for search, cam_set in (('all-search', (0, 1, 3, 4)), ('indoor-search', (0, 1))):
        for shots in (1, 10):
            case = EvalCase('sysu_mm01', '{} {}'.format(search, 'single-shot' if shots == 1
                                                        else 'multi-shot'), 'sysu', pids, cams,
                            query)
            for _ in range(trials):
                picks = [len(q_pids) + i * shots_pool
                         + rng.choice(shots_pool, shots, replace=False)
                         for i, (_, c) in enumerate(folders) if c in cam_set]
                case.galleries.append(np.sort(np.concatenate(picks)))
            cases.append(case)
    return cases


def regdb_cases(rng, trials=10, num_ids=206):
    """RegDB visible<->thermal, 10 images per id and modality, nothing removed."""
    vis = np.repeat(np.arange(num_ids), 10)
    pids = np.concatenate([vis, vis])
    cams = np.concatenate([np.zeros(len(vis), int), np.ones(len(vis), int)])
    v, t = np.arange(len(vis)), len(vis) + np.arange(len(vis))
    return [EvalCase('regdb', 'visible->thermal', 'regdb', pids, cams, v, [t] * trials),
            EvalCase('regdb', 'thermal->visible', 'regdb', pids, cams, t, [v] * trials)]


def vcm_cases(rng, scale=1.0, num_ids=427):
    """HITSZ-VCM infrared<->visible tracklets (12 cameras: 0-5 visible, 6-11 infrared)."""
    ids = np.arange(num_ids)
    n_ir, n_rgb = int(round(4584 * scale)), int(round(5099 * scale))
    ir, rgb = _spread(rng, n_ir, ids), _spread(rng, n_rgb, ids)
    pids = np.concatenate([ir, rgb])
    cams = np.concatenate([rng.integers(6, 12, n_ir), rng.integers(0, 6, n_rgb)])
    q, g = np.arange(n_ir), n_ir + np.arange(n_rgb)
    return [EvalCase('hitsz_vcm', 'infrared->visible', 'vcm', pids, cams, q, [g]),
            EvalCase('hitsz_vcm', 'visible->infrared', 'vcm', pids, cams, g, [q])]


def eval_cases(quick=False, seed=0):
    """Every case of the benchmark; ``quick``: 1/64 of the SYSU queries and of the HITSZ-VCM
    tracklets (24 ids), 12 RegDB ids, one trial each (SYSU's real gallery sizes kept)."""
    rng = np.random.default_rng(seed)
    if quick:
        return (sysu_cases(rng, trials=1, query_scale=1 / 64)
                + regdb_cases(rng, trials=1, num_ids=12) + vcm_cases(rng, scale=1 / 64, num_ids=24))
    return sysu_cases(rng) + regdb_cases(rng) + vcm_cases(rng)


def _modality(case):
    """0 visible / 1 infrared from the camera layout each case builder uses."""
    if case.dataset == 'sysu_mm01':
        return np.isin(case.cams, (2, 5)).astype(int)
    if case.dataset == 'hitsz_vcm':
        return (case.cams >= 6).astype(int)
    return case.cams.astype(int)


def run_eval_case(case, device, rng, max_rank=20, reference=True):
    """Score every trial of ``case`` with both metrics; returns a result dict."""
    feats = _features(rng, case.pids, _modality(case)).to(device)
    ref_s = fast_s = 0.0
    max_diff = 0.0
    cmc_sum, map_sum = np.zeros(max_rank), 0.0
    q = case.query
    for gallery in case.galleries:
        dist = compute_distance(feats[q], feats[gallery])
        args = (case.pids[q], case.pids[gallery], case.cams[q], case.cams[gallery],
                case.metric)
        fast, seconds = timed(lambda: evaluate_rank(dist, *args, max_rank=max_rank), device)
        fast_s += seconds
        cmc_sum += fast[0]
        map_sum += fast[1]
        if reference:
            dist_np = dist.cpu().numpy()
            ref, seconds = timed(lambda: evaluate_rank_reference(dist_np, *args,
                                                                max_rank=max_rank), 'cpu')
            ref_s += seconds
            max_diff = max(max_diff, float(np.abs(fast[0] - ref[0]).max()),
                           abs(fast[1] - ref[1]), abs(fast[2] - ref[2]))
    n = len(case.galleries)
    return {'dataset': case.dataset, 'mode': case.name, 'metric': case.metric,
            'queries': len(q), 'gallery': len(case.galleries[0]), 'trials': n,
            'reference_s': round(ref_s, 3) if reference else None,
            'fast_s': round(fast_s, 4),
            'speedup': round(ref_s / fast_s, 1) if reference and fast_s > 0 else None,
            'max_abs_diff': max_diff if reference else None,
            'rank1': round(float(cmc_sum[0] / n), 4), 'mAP': round(map_sum / n, 4)}


def compare_metrics(device, quick=False, reference=True, seed=0, progress=None):
    """Rows per case plus one total per dataset; ``identical`` = every |diff| < 1e-6."""
    rng = np.random.default_rng(seed + 1)
    rows = []
    cases = eval_cases(quick, seed)
    for case in cases:
        if progress:
            progress('eval {} {} ({} trial(s))'.format(case.dataset, case.name,
                                                       len(case.galleries)))
        rows.append(run_eval_case(case, device, rng, reference=reference))
    totals = []
    for dataset in dict.fromkeys(r['dataset'] for r in rows):
        part = [r for r in rows if r['dataset'] == dataset]
        ref = sum(r['reference_s'] for r in part) if reference else None
        fast = sum(r['fast_s'] for r in part)
        diffs = [r['max_abs_diff'] for r in part] if reference else []
        totals.append({'dataset': dataset, 'mode': 'all modes and trials',
                       'reference_s': round(ref, 3) if reference else None,
                       'fast_s': round(fast, 4),
                       'speedup': round(ref / fast, 1) if reference and fast else None,
                       'max_abs_diff': max(diffs) if diffs else None})
    identical = all(r['max_abs_diff'] < 1e-6 for r in rows) if reference else None
    return {'rows': rows, 'totals': totals, 'identical': identical}
