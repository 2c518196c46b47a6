"""RegDB (Nguyen et al., Sensors 2017): 412 ids, 10 visible + 10 thermal images each.

Layout, under ``<root>/RegDB/`` or ``<root>`` itself::

    Visible/<id>/*.bmp
    Thermal/<id>/*.bmp
    idx/{train,test}_{visible,thermal}_{1..10}.txt   lines "<path relative to RegDB/> <label>"

Trial t = split_id + 1 is one fixed 206/206-id train/test split. The field
trains one model per trial and averages the ten results
(mangye16/Cross-Modal-Re-ID-baseline test.py), so an instance scores one
gallery: all test images of the other modality, no camera filtering.
"""
import os.path as osp

import numpy as np

from ....registry import IMAGE_DATASETS
from ....safe_paths import entry_path
from ..base import INFRARED, VISIBLE, CrossModalImageDataset
from ..common import (ExistingFiles, dataset_error, line_error, locate_dataset,
                     print_modality_summary, open_text)

NUM_TRIALS = 10
MODALITY_NAMES = ('visible', 'thermal')
FOLDER_NAMES = ('visible', 'thermal')   # as in the idx file names

LAYOUT = ('  <root>/RegDB/Visible/<id>/*.bmp   (or <root> = the RegDB folder)\n'
          '  <root>/RegDB/Thermal/<id>/*.bmp\n'
          '  <root>/RegDB/idx/{train,test}_{visible,thermal}_{1..10}.txt  '
          '(lines "<path relative to RegDB/> <label>")')
OBTAIN = ('request RegDB ("DBPerson-Recog-DB1") from Dongguk University; the idx split '
          'files come with https://github.com/mangye16/Cross-Modal-Re-ID-baseline. '
          'A RegDB-shaped synthetic demo: '
          'python scripts/main.py --config-file configs/demo_regdb.yaml')


@IMAGE_DATASETS.register('regdb')
class RegDB(CrossModalImageDataset):
    """RegDB, visible queries searched in the thermal gallery (the default direction)."""

    #: the protocol's reference ranking, for models that declare none (metrics/distance.py)
    TEST_DISTANCE = 'cosine'
    TEST_DISTANCE_SOURCE = ('AGW test.py (the protocol code): inner product of '
                            'L2-normalised features')

    dataset_dir = 'RegDB'
    modality_names = MODALITY_NAMES
    protocol = 'regdb'
    query_modality = VISIBLE

    def __init__(self, root='datasets', split_id=0, **kwargs):
        if not isinstance(split_id, (int, np.integer)) or not 0 <= split_id < NUM_TRIALS:
            raise ValueError('RegDB split_id must be an integer in 0..{} (trial = split_id + 1), '
                             'got {!r}'.format(NUM_TRIALS - 1, split_id))
        self.trial = int(split_id) + 1
        self.root = osp.abspath(osp.expanduser(root))
        self.dataset_dir = self._locate(self.root)
        self._exists = ExistingFiles()

        files = {(part, mod): osp.join(self.dataset_dir, 'idx', '{}_{}_{}.txt'.format(
            part, FOLDER_NAMES[mod], self.trial))
            for part in ('train', 'test') for mod in (VISIBLE, INFRARED)}
        for path in files.values():
            if not osp.isfile(path):
                raise dataset_error('RegDB', 'index file not found', path, LAYOUT, OBTAIN)
        rows = {key: self._read_idx(path) for key, path in files.items()}

        # Labels are 0..205 already; relabel anyway so a subset or a differently
        # numbered copy still gives torchreid's contiguous 0..N-1 classes.
        train_rows = [(img, label, mod) for mod in (VISIBLE, INFRARED)
                      for img, label, _ in rows['train', mod]]
        relabel = {label: i for i, label in enumerate(sorted({r[1] for r in train_rows}))}
        # camid = modality: the two sensors are the two cameras, and distinct
        # query/gallery camids make same-camera removal a no-op (eval_regdb).
        train = [(img, relabel[label], mod, 0, mod) for img, label, mod in train_rows]

        self._check_ids_match(files, rows)
        tests = {mod: [(img, label, mod, 0, mod) for img, label, _ in rows['test', mod]]
                 for mod in (VISIBLE, INFRARED)}
        self._test_pool = tests[VISIBLE] + tests[INFRARED]
        query, gallery = tests[self.query_modality], tests[1 - self.query_modality]
        super().__init__(train, query, gallery, **kwargs)

    @classmethod
    def _locate(cls, root):
        """``<root>/RegDB``, or ``root`` itself when it is the RegDB folder."""
        found = locate_dataset(root, cls.dataset_dir, ('idx',))
        if found is None:
            raise dataset_error('RegDB', 'dataset folder not found',
                                osp.join(root, cls.dataset_dir), LAYOUT, OBTAIN)
        return found

    def _read_idx(self, path):
        """[(absolute image path, label, line number)] of one idx file."""
        rows = []
        with open_text(path) as f:
            for lineno, line in enumerate(f, 1):
                fields = line.split()
                if not fields:   # blank (e.g. trailing) lines carry no entry
                    continue
                if len(fields) != 2 or not fields[1].isdigit():
                    raise line_error(path, lineno, 'expected "<relative image path> '
                                     '<non-negative integer label>", got {!r}'.format(
                                         line.rstrip('\n')))
                # Paths are relative to the RegDB root (AGW joins them the same way, so a
                # leading '/' is dropped); one that leaves the folder is refused.
                img = entry_path(self.dataset_dir, fields[0].lstrip('/'),
                                 '{}, line {}'.format(path, lineno))
                if not self._exists(img):
                    raise line_error(path, lineno, 'listed image does not exist: ' + img)
                rows.append((img, int(fields[1]), lineno))
        if not rows:
            raise line_error(path, 1, 'the file lists no images')
        return rows

    @staticmethod
    def _check_ids_match(files, rows):
        """Every test id must have images in both modalities (each side queries the other)."""
        labels = {mod: {label for _, label, _ in rows['test', mod]} for mod in (VISIBLE, INFRARED)}
        for mod in (VISIBLE, INFRARED):
            for _, label, lineno in rows['test', mod]:
                if label not in labels[1 - mod]:
                    raise line_error(
                        files['test', mod], lineno, 'id {} has no image in {}, so its query '
                        'would have no match'.format(label, files['test', 1 - mod]))

    def eval_modes(self, matrix=False):
        """The registered direction, or with ``matrix`` both in paper order (V->T, T->V)."""
        return self.direction_modes((VISIBLE, INFRARED) if matrix else (self.query_modality,))

    def show_summary(self):
        super().show_summary()
        print_modality_summary(self)
        print('  trial {} of {} (split_id {}); query {}, gallery {}'.format(
            self.trial, NUM_TRIALS, self.trial - 1, MODALITY_NAMES[self.query_modality],
            MODALITY_NAMES[1 - self.query_modality]))


@IMAGE_DATASETS.register('regdb_t2v')
class RegDBThermalToVisible(RegDB):
    """RegDB, thermal queries searched in the visible gallery (AGW's --tvsearch)."""

    query_modality = INFRARED
