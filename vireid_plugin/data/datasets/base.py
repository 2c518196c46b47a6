"""Base classes of the cross-modal datasets.

Items are 5-tuples ``(impath or tuple of frame paths, pid, camid, dsetid, modality)``
(torchreid's 4-tuple plus modality: 0 = visible, 1 = infrared). torchreid's
samplers and visualisation only index items, so they accept the fifth field;
the places of torchreid's ``Dataset`` that unpack exactly four fields
(``__add__``, ``combine_all``, ``__getitem__``) are overridden here.

A subclass builds ``train``/``query``/``gallery`` plus ``test_pool`` and
implements ``eval_modes`` (see ``vireid_plugin.data.eval_split``).
"""
import copy

import numpy as np
import torch

from ... import compat
from ...errors import DatasetNotFoundError
from ..clip_transform import transform_clip
from ...metrics import matched_queries
from ..eval_split import EvalMode
from ..frames import sample_frame_indices
from ..io import read_image

VISIBLE, INFRARED = 0, 1
MODALITY_NAMES = ('visible', 'infrared')


def with_modality(items, default=VISIBLE):
    """Pad torchreid 3/4-tuples to the plugin's 5-tuple (RGB-only datasets are visible)."""
    out = []
    for it in items:
        if len(it) == 3:
            it = (*it, 0)
        if len(it) == 4:
            it = (*it, default)
        out.append(tuple(it))
    return out


class CrossModalMixin:
    """What the image and video base classes share."""

    #: metric protocol of ``vireid_plugin.metrics.evaluate_rank``
    protocol = 'regdb'
    #: how result tables name the two modalities (RegDB says thermal)
    modality_names = MODALITY_NAMES

    def __init__(self, train, query, gallery, **kwargs):
        # torchreid's Dataset reads train[0], query[0], gallery[0]: an IndexError otherwise
        empty = [name for name, items in (('train', train), ('query', query),
                                          ('gallery', gallery)) if not len(items)]
        if empty:
            raise DatasetNotFoundError(
                '{} ({}): the {} set is empty: no {} item was found; check its list/split '
                'files and that the ids they name have images of both modalities'.format(
                    type(self).__name__, getattr(self, 'dataset_dir', '') or '?',
                    ' and '.join(empty), ' or '.join(empty)))
        super().__init__(train, query, gallery, **kwargs)

    def eval_modes(self, matrix=False):
        """The evaluation modes: the registered one, or with ``matrix`` every mode."""
        raise NotImplementedError

    def direction_modes(self, query_modalities):
        """One mode per query modality: its pool items searched among the other modality's."""
        modality = np.array([it[4] for it in self._test_pool])
        names = self.modality_names
        return [EvalMode(name='{}->{}'.format(names[q], names[1 - q]),
                         metric=self.protocol,
                         query=np.flatnonzero(modality == q).astype(np.int64),
                         galleries=(np.flatnonzero(modality != q).astype(np.int64),))
                for q in query_modalities]

    def matched_probes(self, mode, trial=0):
        """Which probes of one trial of ``mode`` keep a true match after its metric's
        removal rule (bool array); the metric skips the others."""
        pid, cam = (np.array([it[k] for it in self._test_pool]) for k in (1, 2))
        query, gallery = mode.query, mode.galleries[trial]
        return matched_queries(mode.metric, pid[query], cam[query], pid[gallery], cam[gallery])

    @property
    def test_pool(self):
        """Every item a query or gallery of any mode/trial is drawn from."""
        return self._test_pool

    def _append_train(self, other):
        """``self.train + other.train`` with pid/camid/dsetid offsets (torchreid's rule)."""
        train = copy.deepcopy(self.train)
        for it in with_modality(other.train):
            path, pid, camid, dsetid, modality = it
            train.append((path, pid + self.num_train_pids, camid + self.num_train_cams,
                          dsetid + self.num_datasets, modality))
        clone = copy.copy(self)
        clone.train = train
        clone.combineall = False
        clone.num_train_pids = clone.get_num_pids(train)
        clone.num_train_cams = clone.get_num_cams(train)
        clone.num_datasets = clone.get_num_datasets(train)
        if clone.mode == 'train':
            clone.data = train
        return clone

    def __add__(self, other):
        # torchreid's version unpacks 4 fields and returns a plain ImageDataset,
        # dropping modality; keep this class and its item format instead.
        return self._append_train(other)

    def combine_all(self):
        combined = copy.deepcopy(self.train)
        g_pids = sorted({it[1] for it in self.gallery} | {it[1] for it in self.query})
        pid2label = {pid: i + self.num_train_pids for i, pid in enumerate(g_pids)}
        seen = set()
        for it in list(self.query) + list(self.test_pool):
            if it[0] in seen:
                continue
            seen.add(it[0])
            combined.append((it[0], pid2label[it[1]], *it[2:]))
        self.train = combined
        self.num_train_pids = self.get_num_pids(self.train)

    def _item(self, index):
        return self.data[index]


class CrossModalImageDataset(CrossModalMixin, compat.ImageDataset):
    """Image dataset whose item dicts carry ``modality``."""

    def __getitem__(self, index):
        path, pid, camid, dsetid, modality = self.data[index]
        img = read_image(path)
        if self.transform is not None:
            img = self._transform_image(self.transform, self.k_tfm, img)
        return {'img': img, 'pid': pid, 'camid': camid, 'impath': path,
                'dsetid': dsetid, 'modality': modality}


class CrossModalVideoDataset(CrossModalMixin, compat.VideoDataset):
    """Tracklet dataset: ``img`` is (seq_len, C, H, W); frames chosen per ``frames.py``.

    Query/gallery items use the dataset authors' deterministic chunk rule
    whatever ``sample_method`` says (torchreid's default 'evenly' would differ);
    training items draw one random frame per chunk. ``sample_method='all'``
    returns every frame (batch size 1). ``frame_rule`` names the rule of
    ``frames.py`` (a dataset whose authors use another one sets it). The transform's
    random draws (flip, crop, erasing, ...) are made once per clip and shared by its
    frames (``clip_transform.transform_clip``).
    """

    frame_rule = 'chunk'

    def __getitem__(self, index):
        paths, pid, camid, dsetid, modality = self.data[index]
        if self.sample_method == 'all':
            idx = np.arange(len(paths))
        else:
            idx = sample_frame_indices(len(paths), self.seq_len, train=self.mode == 'train',
                                       rule=self.frame_rule)
        frames = [read_image(paths[int(i)]) for i in idx]
        if self.transform is not None:
            frames = transform_clip(self.transform, frames)
        return {'img': torch.stack(frames, 0), 'pid': pid, 'camid': camid,
                'impath': paths[int(idx[0])], 'dsetid': dsetid, 'modality': modality}
