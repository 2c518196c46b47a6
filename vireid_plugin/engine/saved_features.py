"""The pool features of an evaluation, saved in the run directory (one safetensors file).

Every evaluation of ``CrossModalEngine`` writes ``features.safetensors`` (the
untrained model's, with ``test.eval_before_train``, go to
``features-untrained.safetensors``) holding, per test pool, the features exactly as
they were scored, the pool's labels and item paths, and each target's modes (query
and gallery indices of every trial). Figures and re-scoring read this file instead
of extracting the features again. Tensors only, plus a JSON header in the
safetensors metadata: no pickle, nothing to trust.

Layout: tensors ``pool<k>/features`` (N, D) float32, ``pool<k>/pids``,
``pool<k>/camids``, ``pool<k>/modalities`` (N,) int64, ``pool<k>/paths`` uint8 (the
UTF-8 bytes of the JSON list of item paths); ``target/<name>/mode<i>/query`` and
``target/<name>/mode<i>/gallery<t>`` int64 indices into the pool. Metadata key
``vireid`` (JSON): format, stage, epoch, per pool how its dataset read an item, per
target its pool and its modes' names and metrics. Targets that share a pool
(``sysu_mm01`` and ``sysu_mm01_indoor``) share one stored copy.

The paths are a tensor, not metadata: safetensors refuses a header over 100 MB, which
the paths of a large video pool (every frame of every tracklet) exceed. Format 1 files
(paths in the metadata, written before 2026-12) are still read.
"""
import json
import os
from dataclasses import dataclass
from typing import Dict, List

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save as save_bytes

from ..checkpoint_io import atomic_write
from ..data.eval_split import EvalMode
from ..errors import UserError

__all__ = ['FEATURES_FILE', 'UNTRAINED_FEATURES_FILE', 'SavedPool', 'SavedFeatures',
           'save_features', 'load_features', 'features_path', 'FeaturesFileError']

FEATURES_FILE = 'features.safetensors'
UNTRAINED_FEATURES_FILE = 'features-untrained.safetensors'
FORMAT = 2


class FeaturesFileError(UserError, ValueError):
    """A features file cannot be read (missing, foreign, truncated) or written."""


def features_path(save_dir, stage):
    """Where the features of an evaluation at ``stage`` ('untrained' or other) go."""
    return os.path.join(save_dir, UNTRAINED_FEATURES_FILE if stage == 'untrained'
                        else FEATURES_FILE)


@dataclass
class SavedPool:
    """One target's pool: features as scored, labels, item paths and its modes."""
    name: str
    features: torch.Tensor          # (N, D) float32
    pids: np.ndarray
    camids: np.ndarray
    modalities: np.ndarray
    paths: List                     # str, or a tuple of frame paths for a video item
    modes: List[EvalMode]
    reader: Dict                    # how the dataset read an item: seq_len, frame_rule

    def items(self):
        """The pool as item tuples (path(s), pid, camid, dsetid, modality)."""
        return [(p, int(i), int(c), 0, int(m)) for p, i, c, m in
                zip(self.paths, self.pids, self.camids, self.modalities)]


@dataclass
class SavedFeatures:
    stage: str
    epoch: int
    targets: Dict[str, SavedPool]


def _paths(pool):
    return [list(it[0]) if isinstance(it[0], (tuple, list)) else it[0] for it in pool]


def save_features(path, entries, stage='evaluation', epoch=0):
    """Write ``entries`` ({target name: (features, pool items, modes[, reader])}) to
    ``path``; ``reader`` ({'seq_len': .., 'frame_rule': ..}) says how a video dataset picked
    the frames of an item. Targets whose features are the same tensor object share one
    stored pool.
    """
    tensors, pools, targets = {}, [], {}
    by_tensor = {}
    for name, entry in entries.items():
        feats, pool, modes = entry[:3]
        reader = dict(entry[3]) if len(entry) > 3 and entry[3] else {}
        k = by_tensor.get(id(feats))
        if k is None:
            k = by_tensor[id(feats)] = len(pools)
            pools.append({'reader': reader})
            prefix = 'pool{}/'.format(k)
            text = json.dumps(_paths(pool)).encode('utf-8')   # ASCII: \u escapes
            tensors[prefix + 'paths'] = torch.frombuffer(bytearray(text), dtype=torch.uint8)
            tensors[prefix + 'features'] = feats.detach().float().cpu().contiguous()
            for field, col in (('pids', 1), ('camids', 2), ('modalities', 4)):
                tensors[prefix + field] = torch.tensor([int(it[col]) for it in pool],
                                                       dtype=torch.int64)
        targets[name] = {'pool': k, 'modes': [{'name': m.name, 'metric': m.metric}
                                              for m in modes]}
        for i, m in enumerate(modes):
            prefix = 'target/{}/mode{}/'.format(name, i)
            # copies: modes may share one index array (safetensors refuses shared memory)
            tensors[prefix + 'query'] = torch.tensor(np.asarray(m.query), dtype=torch.int64)
            for t, g in enumerate(m.galleries):
                tensors[prefix + 'gallery{}'.format(t)] = torch.tensor(np.asarray(g),
                                                                       dtype=torch.int64)
    meta = {'format': FORMAT, 'stage': stage, 'epoch': int(epoch), 'pools': pools,
            'targets': targets}
    try:
        data = save_bytes(tensors, metadata={'vireid': json.dumps(meta)})
    except Exception as exc:   # safetensors' own limits: not a write error of the disk
        raise FeaturesFileError('cannot write the pool features to {} ({}: {})'.format(
            path, type(exc).__name__, str(exc)[:200])) from None
    return atomic_write(path, lambda f: f.write(data))


def load_features(path):
    """Read a file written by :func:`save_features` (either format); a missing, foreign or
    malformed file is one ``FeaturesFileError`` (a ``ValueError``) naming it."""
    if not os.path.isfile(path):
        raise FeaturesFileError('saved features not found: {} (an evaluation of the plugin\'s '
                                'engine writes it; run scripts/main.py with test.evaluate True '
                                'to make one)'.format(path))
    try:
        with safe_open(path, framework='pt') as f:
            meta = json.loads((f.metadata() or {})['vireid'])
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        return _decode(meta, tensors)
    except Exception as exc:   # truncated, not safetensors, no header: all the same to a user
        raise FeaturesFileError('{} is not a features file written by vireid_plugin ({}: '
                                '{})'.format(path, type(exc).__name__, str(exc)[:200])) from None


def _pool_paths(meta, tensors, k):
    """The item paths of pool ``k``: a uint8 tensor of JSON (format 2) or metadata (1)."""
    key = 'pool{}/paths'.format(k)
    if key in tensors:
        paths = json.loads(bytes(tensors[key].numpy()).decode('utf-8'))
    else:
        paths = meta['pools'][k]['paths']
    return [tuple(p) if isinstance(p, list) else p for p in paths]


def _decode(meta, tensors):
    targets = {}
    for name, spec in meta['targets'].items():
        prefix = 'pool{}/'.format(spec['pool'])
        modes = []
        for i, m in enumerate(spec['modes']):
            mp = 'target/{}/mode{}/'.format(name, i)
            n_trials = sum(1 for k in tensors if k.startswith(mp + 'gallery'))
            modes.append(EvalMode(m['name'], m['metric'], tensors[mp + 'query'].numpy(),
                                  tuple(tensors[mp + 'gallery{}'.format(t)].numpy()
                                        for t in range(n_trials))))
        targets[name] = SavedPool(name, tensors[prefix + 'features'],
                                  tensors[prefix + 'pids'].numpy(),
                                  tensors[prefix + 'camids'].numpy(),
                                  tensors[prefix + 'modalities'].numpy(),
                                  _pool_paths(meta, tensors, spec['pool']), modes,
                                  meta['pools'][spec['pool']].get('reader') or {})
    return SavedFeatures(meta.get('stage', ''), int(meta.get('epoch', 0)), targets)
