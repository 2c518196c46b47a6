"""Cross-modal evaluation: one feature extraction, every mode and trial scored from it.

The pool (queries plus every gallery candidate) is extracted once; each mode and
each gallery trial is then an index into the pool's features, scored on the
features' device (the GPU when there is one) with the protocol's metric.
"""
import contextlib
import copy
import json
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from tabulate import tabulate

from .. import compat, distributed
from ..checkpoint_io import atomic_write
from ..metrics import compute_distance, evaluate_rank
from ..progress import progress

RESULTS_FILE = 'results.json'


@torch.no_grad()
def extract_pool_features(feature_fn, dataset, batch_size, workers, device, autocast, pool=None,
                          transform=None, shard=None, flip_average=False):
    """Features (float32, on ``device``) of ``pool`` (default ``dataset.test_pool``) in pool
    order, read by ``dataset`` (with ``transform`` instead of its own when given).
    ``flip_average`` (``test.flip_average``): the mean of the features of each image and
    of its horizontal flip (CAJ's ``testa.py``).

    ``shard=(rank, world_size)`` (several processes): this rank extracts its contiguous
    part of the pool, then the parts are gathered, so every rank returns the whole pool.
    """
    pool_set = copy.copy(dataset)
    pool_set.data = dataset.test_pool if pool is None else pool
    num_items = len(pool_set.data)
    if shard is not None:
        if num_items < shard[1]:
            raise ValueError('{} pool items cannot be shared by {} processes'.format(
                num_items, shard[1]))
        lo, hi = distributed.shard_range(num_items, *shard)
        pool_set.data = pool_set.data[lo:hi]
    if transform is not None:
        pool_set.transform = transform
    loader = torch.utils.data.DataLoader(pool_set, batch_size=batch_size, shuffle=False,
                                         num_workers=workers,
                                         pin_memory=torch.device(device).type == 'cuda')
    feats = []
    for data in progress(loader, 'extracting features of {} items'.format(len(pool_set.data))):
        imgs = data['img'].to(device, non_blocking=True)
        modality = data['modality'].to(device)
        camid = data['camid'].to(device)
        with autocast():
            f = feature_fn(imgs, modality, camid)
            if flip_average:
                f = (f.float() + feature_fn(imgs.flip(-1), modality, camid).float()) / 2
        feats.append(f.float())
    feats = torch.cat(feats, 0)
    return distributed.all_gather_rows(feats, num_items) if shard is not None else feats


def trial_distance(feats, query, gallery, dist_metric='euclidean', rerank=False):
    """Query x gallery distances of one trial (pool indices), optionally k-reciprocal
    re-ranked with torchreid's ``re_ranking`` (which works on numpy, on the CPU)."""
    qf = feats[torch.as_tensor(query, device=feats.device)]
    gf = feats[torch.as_tensor(gallery, device=feats.device)]
    distmat = compute_distance(qf, gf, dist_metric)
    if not rerank:
        return distmat
    return compat.utils.re_ranking(distmat.cpu().numpy(),
                                   compute_distance(qf, qf, dist_metric).cpu().numpy(),
                                   compute_distance(gf, gf, dist_metric).cpu().numpy())


def score_modes(feats, pool, modes, dist_metric='euclidean', normalize_feature=False,
                ranks=(1, 5, 10, 20), rerank=False):
    """One result row per mode: CMC at ``ranks``, mAP, mINP (percent), averaged over trials."""
    if normalize_feature:
        feats = F.normalize(feats, dim=1)
    pids = np.asarray([it[1] for it in pool])
    camids = np.asarray([it[2] for it in pool])
    max_rank = max(ranks)
    # one progress bar over every trial of every mode
    trials = [(i, gallery) for i, mode in enumerate(modes) for gallery in mode.galleries]
    scored = [[] for _ in modes]
    for i, gallery in progress(trials, 'scoring {} trial(s)'.format(len(trials))):
        mode = modes[i]
        distmat = trial_distance(feats, mode.query, gallery, dist_metric, rerank)
        scored[i].append(evaluate_rank(distmat, pids[mode.query], pids[gallery],
                                       camids[mode.query], camids[gallery],
                                       protocol=mode.metric, max_rank=max_rank))
    rows = []
    for mode, results in zip(modes, scored):
        cmcs, maps, minps = zip(*results)
        cmc = np.mean(cmcs, 0)
        row = {'mode': mode.name, 'trials': mode.num_trials,
               'queries': int(len(mode.query)),
               'gallery': int(np.mean([len(g) for g in mode.galleries]))}
        row.update({'R{}'.format(r): 100.0 * float(cmc[r - 1]) for r in ranks})
        row.update(mAP=100.0 * float(np.mean(maps)), mINP=100.0 * float(np.mean(minps)))
        rows.append(row)
    return rows


@torch.no_grad()
def evaluate_for_torchreid_engine(engine, name, dataset, query_loader, dist_metric='euclidean',
                                  normalize_feature=False, ranks=(1, 5, 10, 20), save_dir='',
                                  rerank=False):
    """What torchreid's own engines run on a plugin dataset (``compat`` installs it):
    features of the dataset's pool through ``engine.extract_features`` (torchreid's
    signature: images only), scored with the dataset's cross-modal protocol. Returns
    (rank1, mAP) as fractions, as torchreid's ``_evaluate`` does."""
    device = next(engine.model.parameters()).device
    start = time.time()
    feats = extract_pool_features(lambda imgs, modality, camid: engine.extract_features(imgs),
                                  dataset, query_loader.batch_size, query_loader.num_workers,
                                  device, contextlib.nullcontext)
    if normalize_feature:
        feats = F.normalize(feats, dim=1)
    modes = dataset.eval_modes()
    rows = score_modes(feats, dataset.test_pool, modes, dist_metric, ranks=ranks, rerank=rerank)
    print(format_table(name, rows, note='cross-modal protocol {!r} from vireid_plugin, not '
                                        "torchreid's single-modal metric".format(modes[0].metric)))
    print('(features of {} pool items extracted once; {} trial(s) scored in {:.1f}s)'.format(
        len(dataset.test_pool), sum(m.num_trials for m in modes), time.time() - start))
    # torchreid's engines test after epoch ``engine.epoch`` (0-based): record it 1-based
    append_results(save_dir, {'dataset': name, 'epoch': int(getattr(engine, 'epoch', 0)) + 1,
                              'stage': 'torchreid engine', 'distance': dist_metric,
                              'distance_source': "torchreid engine's dist_metric",
                              'rows': rows})
    return rows[0]['R1'] / 100, rows[0]['mAP'] / 100


def format_table(dataset_name, rows, note=''):
    headers = list(rows[0].keys())
    body = [[('{:.2f}'.format(v) if isinstance(v, float) else v) for v in r.values()]
            for r in rows]
    title = '** {} **{}'.format(dataset_name, ' ({})'.format(note) if note else '')
    return '{}\n{}'.format(title, tabulate(body, headers=headers, tablefmt='github'))


#: ``record['epoch_base']`` of records that count epochs as the tables and checkpoint names
#: do (1: after the first epoch; 0: the untrained model). Records without it (written before
#: 2026-12) counted evaluations 0-based; :func:`completed_epochs` reads both.
EPOCH_BASE = 1


def completed_epochs(record):
    """How many epochs the model of a results.json record had trained (the number in the
    tables and in ``model.pth.tar-N``), for records of either numbering."""
    epoch = int(record.get('epoch', 0))
    if record.get('epoch_base') == EPOCH_BASE:
        return epoch
    stage = record.get('stage')
    # the old files: validation records and select_on test's 'selected' record already
    # counted whole epochs, the untrained record said 0; every other evaluation was 0-based
    if stage in ('validation', 'untrained') or (stage == 'selected' and
                                                record.get('selection') == 'test'):
        return epoch
    return epoch + 1


def _read_records(path):
    """The list of records of a results.json; ValueError (one line) when it is not one."""
    with open(path, encoding='utf-8') as f:
        records = json.load(f)
    if not isinstance(records, list):
        raise ValueError('holds a JSON {}, not the list of evaluation records the plugin '
                         'writes'.format(type(records).__name__))
    return records


def append_results(save_dir, record):
    """Add one evaluation record to ``save_dir/results.json`` (rewritten atomically).

    A file that cannot hold the records (not JSON, not UTF-8, not a list) is never
    destroyed: it is moved aside to ``results.json.corrupt-<time>`` with one line saying
    so, and a new file is started."""
    if not save_dir:
        return None
    os.makedirs(save_dir, exist_ok=True)
    path = os.path.join(save_dir, RESULTS_FILE)
    records = []
    if os.path.isfile(path):
        try:
            records = _read_records(path)
        except ValueError as exc:   # UnicodeDecodeError and JSONDecodeError included
            # never destroy what a user has: keep the unreadable file aside
            aside = path + '.corrupt-{}'.format(int(time.time()))
            os.replace(path, aside)
            print('(results file {} {}: moved to {}; a new one is started)'.format(
                path, str(exc).splitlines()[0][:200], aside))
    records.append(dict(record, epoch_base=EPOCH_BASE) if 'epoch' in record else record)
    return atomic_write(path, lambda f: json.dump(records, f, indent=2), mode='w')


def recorded_distance(save_dir, dataset):
    """The distance the last evaluation of ``dataset`` recorded in ``save_dir``'s
    results.json ranked by, or None (no file, no record, or a record written before
    records named their distance)."""
    try:
        records = _read_records(os.path.join(save_dir, RESULTS_FILE))
    except (OSError, ValueError):
        return None
    found = None
    for rec in records:
        if isinstance(rec, dict) and rec.get('dataset') == dataset and rec.get('distance'):
            found = rec['distance']
    return found


def final_rows(path):
    """{(dataset, mode): row} of the last evaluation per dataset in one results.json."""
    try:
        records = _read_records(path)
    except (OSError, ValueError) as exc:
        raise ValueError('cannot read results file {}: {}'.format(
            path, str(exc).splitlines()[0][:200])) from None
    last = {}
    try:
        for rec in records:
            if rec.get('stage') != 'untrained' and 'rows' in rec:
                last[rec['dataset']] = rec['rows']
        rows = {(ds, row['mode']): row for ds, rows in last.items() for row in rows}
    except (AttributeError, KeyError, TypeError) as exc:
        raise ValueError('results file {} holds a malformed record ({}: {}); expected '
                         'records with dataset, stage and rows of mode and metrics'.format(
                             path, type(exc).__name__, str(exc)[:80])) from None
    if not last:
        raise ValueError('{} holds no evaluation of a trained model'.format(path))
    return rows


def average_runs(paths):
    """Mean and standard deviation of each metric over runs (e.g. RegDB's 10 trials).

    Returns rows {'dataset', 'mode', 'runs', metric: mean, metric + '_std': std}; a
    (dataset, mode) must be present in every file, else the runs are not comparable.
    """
    runs = [final_rows(p) for p in paths]
    keys = list(runs[0])
    for path, run in zip(paths, runs):
        if set(run) != set(keys):
            raise ValueError('{} scores {} but {} scores {}; average runs of the same '
                             'datasets and modes'.format(paths[0], sorted(keys), path, sorted(run)))
    out = []
    for key in keys:
        rows = [run[key] for run in runs]
        metrics = [k for k in rows[0] if k.startswith('R') or k in ('mAP', 'mINP')]
        row = {'dataset': key[0], 'mode': key[1], 'runs': len(rows)}
        for m in metrics:
            values = np.array([r[m] for r in rows], dtype=float)
            row[m] = float(values.mean())
            row[m + '_std'] = float(values.std())
        out.append(row)
    return out


def pool_key(dataset):
    """What decides a pool's features: its items and how the dataset reads them (class,
    transform, clip length and frame rule). Two targets with equal keys (``sysu_mm01`` and
    ``sysu_mm01_indoor``, ``regdb`` and ``regdb_t2v``, ...) share one extraction."""
    # the reading code (not the class: sysu_mm01_indoor is a subclass that reads alike)
    return (type(dataset).__getitem__, tuple(dataset.test_pool), repr(dataset.transform),
            getattr(dataset, 'seq_len', None), getattr(dataset, 'sample_method', None),
            getattr(dataset, 'frame_rule', None))


def tag_safe(text):
    """A TensorBoard-safe tag component: 'infrared->visible [corrected]' ->
    'infrared_to_visible_corrected'."""
    text = text.replace('->', '_to_')
    out = ''.join(c if c.isalnum() or c in '-_.' else '_' for c in text)
    while '__' in out:
        out = out.replace('__', '_')
    return out.strip('_')


def scalar_tags(name, rows):
    """(tag, value) of every row's R1, mAP and mINP: ``Test/<dataset>/<mode>/<metric>``
    (percent, as printed)."""
    return [('Test/{}/{}/{}'.format(name, tag_safe(row['mode']), metric), float(row[metric]))
            for row in rows for metric in ('R1', 'mAP', 'mINP') if metric in row]
