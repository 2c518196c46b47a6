"""SYSU-MM01 (Wu et al., ICCV 2017): 491 ids, RGB cams 1, 2, 4, 5 and IR cams 3, 6.

Protocol (official README/MATLAB kit, AGW's Python port):
- train: every image of the train (+ val) ids from all six cameras;
- query: every IR image (cams 3, 6) of the 96 test ids;
- gallery: per test id and RGB camera, 1 (single-shot) or 10 (multi-shot)
  images drawn per trial from cams 1, 2, 4, 5 (all-search) or 1, 2 (indoor).

Two gallery draws:
- 'seeded' (the field's common Python protocol, AGW ``process_gallery_sysu``):
  ``random.seed(trial)``, then over sorted ids x gallery cameras every existing
  (id, camera) folder gives ``random.choice(sorted(files))``. AGW never defined
  multi-shot; here it is ``rng.sample(sorted(files), min(shots, n))`` in the
  same order. A private ``random.Random(trial)`` gives the same numbers as
  seeding the module, without touching the global RNG.
- 'official': the kit's ``rand_perm_cam.mat``; trial t takes the first
  ``shots`` entries of row t of ``rand_perm_cam{cam}{id}`` as 1-based indices
  into the person's sorted files in that camera.

The test pool holds the queries followed by every image of the test ids in
cams 1, 2, 4, 5, so one feature extraction serves all/indoor x single/multi.
"""
import os.path as osp
import random
import re

import numpy as np

from ....registry import IMAGE_DATASETS
from ...eval_split import EvalMode
from ..base import INFRARED, VISIBLE, CrossModalImageDataset
from ..matfile import mat_variables
from ..common import (DatasetNotFoundError, dataset_error, list_images, locate_dataset,
                      print_modality_summary, unusable_links)
from ..options import dataset_option

NAME = 'SYSU-MM01'
CAMERAS = (1, 2, 3, 4, 5, 6)
IR_CAMS = (3, 6)
SEARCH_CAMS = {'all': (1, 2, 4, 5), 'indoor': (1, 2)}
MULTI_SHOT = 10
DRAWS = ('seeded', 'official')

LAYOUT = """\
  <root>/SYSU-MM01/   (or <root> itself)
    cam1/ ... cam6/   one folder per person id, e.g. cam3/0001/0001.jpg
                      (cams 1, 2, 4, 5 RGB; cams 3, 6 infrared)
    exp/train_id.txt  one line of comma-separated ids, e.g. 1,2,7,...
    exp/val_id.txt
    exp/test_id.txt"""
OBTAIN = ('SYSU-MM01 is distributed by its authors on request, see '
          'https://github.com/wuancong/SYSU-MM01; unzip SYSU-MM01.zip under <root>.')
PERM_LAYOUT = """\
  MATLAB file with variable rand_perm_cam: a cell of 6 (one per camera), each a
  cell per raw person id holding a 10 x n_images matrix of 1-based image
  indices (row = trial), n_images = the files in camK/<id>/"""
PERM_OBTAIN = ('evaluation/data_split/rand_perm_cam.mat of the official kit, '
               'https://github.com/wuancong/SYSU-MM01')


def _error(problem, path):
    return dataset_error(NAME, problem, path, LAYOUT, OBTAIN)


def _perm_error(problem, path):
    return dataset_error(NAME + ' rand_perm_cam.mat', problem, path, PERM_LAYOUT, PERM_OBTAIN)


def locate(root):
    """The SYSU-MM01 folder: ``<root>/SYSU-MM01`` (torchreid convention) or ``root`` itself."""
    found = locate_dataset(root, NAME, ('exp', 'cam1'))
    if found is None:
        raise _error('dataset folder not found (also looked at {})'.format(root),
                     osp.join(root, NAME))
    return found


def read_ids(path):
    """Sorted unique ids of an exp/*_id.txt file (one line, comma-separated)."""
    if not osp.isfile(path):
        raise _error('split file not found', path)
    try:
        with open(path, encoding='utf-8-sig') as f:   # a byte-order mark is not an id
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise _error('cannot read split file ({})'.format(exc), path) from exc
    # Separators are lenient (a trailing newline or comma is common); ids are not.
    tokens = [t for t in re.split(r'[,\s]+', text) if t]
    bad = [t for t in tokens if not t.isdigit()]
    if bad or not tokens:
        found = 'non-integer id {!r}'.format(bad[0]) if bad else 'no ids'
        raise _error('malformed split file ({}; expected one line of comma-separated '
                     'integers)'.format(found), path)
    return sorted({int(t) for t in tokens})


def scan(dataset_dir, ids):
    """{(pid, cam): sorted file names} for the wanted ids; missing folders are absent.
    Entries that lead nowhere (dangling or looping symbolic links, as folders or images)
    are left out with one counted line."""
    files, unusable = {}, []
    for cam in CAMERAS:
        cam_dir = osp.join(dataset_dir, 'cam{}'.format(cam))
        if not osp.isdir(cam_dir):
            raise _error('camera folder not found', cam_dir)
        for pid in ids:
            folder = osp.join(cam_dir, '{:04d}'.format(pid))
            if osp.isdir(folder):
                names = list_images(folder, unusable)
                if names:  # an empty folder draws nothing, like a missing one
                    files[(pid, cam)] = names
            elif osp.lexists(folder):
                unusable.append(folder)
    unusable_links(NAME, unusable)
    return files


def load_rand_perm(path):
    """The kit's permutations: ``perm[cam - 1][pid - 1]`` is an int64 (trials, n_images) array."""
    import scipy.io  # only the 'official' draw needs scipy

    if not path:
        raise _perm_error("sysu.gallery_draw 'official' needs sysu.perm_file", '(empty path)')
    if not osp.isfile(path):
        raise _perm_error('file not found', path)
    try:
        # names, shapes and classes first (the header only): a large variable is refused
        # before its data is decompressed (a 190 KB zeros(5000, 5000) would cost 1.35 GB)
        found = {name: (shape, cls) for name, shape, cls in mat_variables(path) or ()}
        if found and 'rand_perm_cam' not in found:
            raise _perm_error('no variable rand_perm_cam (found {})'.format(
                sorted(found)[:10]), path)
        shape, cls = found.get('rand_perm_cam', ((len(CAMERAS), 1), 'cell'))
        if cls != 'cell' or int(np.prod(shape)) != len(CAMERAS):
            raise _perm_error('rand_perm_cam is a {} {} array, expected a cell array of {} '
                              'cameras'.format('x'.join(map(str, shape)), cls, len(CAMERAS)),
                              path)
        mat = scipy.io.loadmat(path, variable_names=['rand_perm_cam'])
    except DatasetNotFoundError:
        raise
    # scipy raises many types (ValueError, MatReadError, NotImplementedError for v7.3, ...)
    except Exception as exc:
        raise _perm_error('cannot read ({}: {})'.format(type(exc).__name__, exc), path) from exc
    top = np.asarray(mat['rand_perm_cam'], dtype=object).ravel()
    if len(top) != len(CAMERAS):
        raise _perm_error('rand_perm_cam has {} camera cells, expected 6'.format(len(top)), path)
    perm = []
    for cam, cell in zip(CAMERAS, top):
        entries = []
        for i, entry in enumerate(np.asarray(cell, dtype=object).ravel()):
            a = np.asarray(entry)
            if a.size == 0:
                entries.append(np.zeros((0, 0), np.int64))
                continue
            if a.ndim != 2 or not np.issubdtype(a.dtype, np.number):
                raise _perm_error('rand_perm_cam{{{}}}{{{}}} is {} {}, expected a 2-D numeric '
                                  'trials x n_images matrix'.format(cam, i + 1, a.dtype, a.shape),
                                  path)
            if not np.array_equal(a, np.round(a)):   # NaN included: never equal
                raise _perm_error('rand_perm_cam{{{}}}{{{}}} holds non-integer indices (e.g. '
                                  '{}); expected 1-based image numbers'.format(
                                      cam, i + 1, a[a != np.round(a)].ravel()[0]), path)
            entries.append(a.astype(np.int64))
        perm.append(entries)
    return perm


@IMAGE_DATASETS.register('sysu_mm01')
class SYSUMM01(CrossModalImageDataset):
    """SYSU-MM01, all-search gallery (cams 1, 2, 4, 5).

    Keywords left None take the configured value (``datasets/options.py``): train_with_val
    (sysu.train_with_val), shots (sysu.shots), gallery_draw (sysu.gallery_draw),
    perm_file (sysu.perm_file), num_trials (test.num_trials). ``split_id`` is the
    trial whose gallery torchreid's ``gallery`` attribute holds.
    """

    #: the protocol's reference ranking, for models that declare none (metrics/distance.py)
    TEST_DISTANCE = 'cosine'
    TEST_DISTANCE_SOURCE = ('AGW test.py (the protocol code): inner product of '
                            'L2-normalised features')

    dataset_dir = NAME
    protocol = 'sysu'
    search = 'all'
    #: the config keys this dataset reads (``datasets/options.py``)
    config_keys = ('sysu.train_with_val', 'sysu.shots', 'sysu.gallery_draw', 'sysu.perm_file',
                   'test.num_trials')

    def __init__(self, root='', split_id=0, train_with_val=None, shots=None,
                 gallery_draw=None, perm_file=None, num_trials=None, **kwargs):
        self.root = osp.abspath(osp.expanduser(root))
        self.train_with_val = bool(dataset_option('sysu.train_with_val', train_with_val))
        self.shots = int(dataset_option('sysu.shots', shots))
        self.gallery_draw = dataset_option('sysu.gallery_draw', gallery_draw)   # one of DRAWS
        self.perm_file = dataset_option('sysu.perm_file', perm_file)
        self.num_trials = int(dataset_option('test.num_trials', num_trials))
        self.split_id = int(split_id)
        if self.shots < 1 or self.num_trials < 1 or self.split_id < 0:
            raise ValueError('need sysu.shots >= 1, test.num_trials >= 1, split_id >= 0; got '
                             '{}, {}, {}'.format(self.shots, self.num_trials, self.split_id))

        self.dataset_dir = locate(self.root)
        exp = osp.join(self.dataset_dir, 'exp')
        ids = {s: read_ids(osp.join(exp, s + '_id.txt')) for s in ('train', 'val', 'test')}
        train_ids = sorted(set(ids['train']) | set(ids['val'] if self.train_with_val else ()))
        self.test_ids = ids['test']
        self.val_ids = [] if self.train_with_val else ids['val']
        self._files = scan(self.dataset_dir, sorted(set(train_ids) | set(self.test_ids) |
                                                    set(self.val_ids)))
        for split in ('train', 'val', 'test'):
            for pid in ids[split]:
                if not any((pid, cam) in self._files for cam in CAMERAS):
                    raise _error('id {} listed in exp/{}_id.txt has no images in any camera '
                                 '(looked for cam1..cam6/{:04d}/)'.format(pid, split, pid),
                                 self.dataset_dir)

        label = {pid: i for i, pid in enumerate(train_ids)}
        train = [it for pid in train_ids for cam in CAMERAS
                 for it in self._items(pid, cam, label[pid])]
        query, self._test_pool, self._num_query, self._slots = self._pool(self.test_ids)
        if self.val_ids:
            # SYSU-MM01's official validation ids, held out of training: scored like the test
            # set (model selection, test.select_on val)
            _, self.val_pool, self._num_val_query, self._val_slots = self._pool(self.val_ids)

        self._perm = None
        if self.gallery_draw == 'official':
            self._perm = load_rand_perm(self.perm_file)
            self._check_perm(max(self.num_trials, self.split_id + 1))
        gallery = [self._test_pool[i] for i in self._draw(self.search, self.shots, self.split_id)]
        super().__init__(train, query, gallery, **kwargs)

    def _pool(self, ids):
        """(queries, pool, number of queries, slots) of a set of ids: the pool is the
        queries then every candidate gallery image; slots map (pid, cam) to the pool
        indices of its sorted files, so gallery draws are indexing."""
        query = [it for pid in ids for cam in IR_CAMS for it in self._items(pid, cam)]
        pool, slots = list(query), {}
        for pid in ids:
            for cam in SEARCH_CAMS['all']:
                items = self._items(pid, cam)
                if items:
                    slots[(pid, cam)] = list(range(len(pool), len(pool) + len(items)))
                    pool.extend(items)
        return query, pool, len(query), slots

    def val_modes(self):
        """All-search single-shot on the validation ids, ``num_trials`` seeded draws."""
        query = np.arange(self._num_val_query, dtype=np.int64)
        return [EvalMode(name='validation ' + mode_name('all', 1), metric=self.protocol,
                         query=query,
                         galleries=tuple(self._draw('all', 1, t, self.val_ids, self._val_slots)
                                         for t in range(self.num_trials)))]

    def _items(self, pid, cam, label=None):
        """Items of one (id, camera) folder in sorted file order."""
        folder = osp.join(self.dataset_dir, 'cam{}'.format(cam), '{:04d}'.format(pid))
        modality = INFRARED if cam in IR_CAMS else VISIBLE
        return [(osp.join(folder, name), pid if label is None else label, cam - 1, 0, modality)
                for name in self._files.get((pid, cam), ())]

    def _check_perm(self, trials):
        """The official indices must fit the files on disk, for every trial used."""
        for pid in self.test_ids:
            for cam in SEARCH_CAMS['all']:
                n_disk = len(self._slots.get((pid, cam), ()))
                cell = self._perm[cam - 1]
                p = cell[pid - 1] if pid <= len(cell) else np.zeros((0, 0), np.int64)
                folder = osp.join(self.dataset_dir, 'cam{}'.format(cam), '{:04d}'.format(pid))
                if p.shape[1] != n_disk:
                    raise _perm_error('rand_perm_cam{{{}}}{{{}}} permutes {} images but {} holds '
                                      '{} (a different copy of the dataset?)'.format(
                                          cam, pid, p.shape[1], folder, n_disk), self.perm_file)
                if n_disk and (p.shape[0] < trials or p.min() < 1 or p.max() > n_disk):
                    raise _perm_error('rand_perm_cam{{{}}}{{{}}} has {} trials with indices in '
                                      '[{}, {}]; need {} trials of indices in [1, {}]'.format(
                                          cam, pid, p.shape[0], p.min(), p.max(), trials, n_disk),
                                      self.perm_file)

    def _draw(self, search, shots, trial, ids=None, slots=None):
        """Pool indices of the gallery of one (search mode, shots, trial) of the test ids
        (or of ``ids`` with their ``slots``: the validation pool, always seeded)."""
        out = []
        rng = random.Random(trial)
        perm = self._perm if ids is None else None
        for pid in self.test_ids if ids is None else ids:
            for cam in SEARCH_CAMS[search]:
                slot = (self._slots if slots is None else slots).get((pid, cam))
                if slot is None:  # person absent from this camera: draws nothing
                    continue
                if perm is not None:
                    out.extend(slot[i - 1] for i in self._perm[cam - 1][pid - 1][trial, :shots])
                elif shots == 1:
                    out.append(rng.choice(slot))  # same draw as choice(sorted(files))
                else:
                    out.extend(rng.sample(slot, min(shots, len(slot))))
        return np.asarray(out, dtype=np.int64)

    def eval_modes(self, matrix=False):
        """The registered mode, or with ``matrix`` the four of the papers' table.

        Every mode queries all IR test images; indoor queries whose id has no
        cam1/cam2 image have no match and are skipped by the 'sysu' metric.
        """
        if matrix:
            combos = [(s, k) for s in ('all', 'indoor') for k in (1, MULTI_SHOT)]
        else:
            combos = [(self.search, self.shots)]
        query = np.arange(self._num_query, dtype=np.int64)
        return [EvalMode(name=mode_name(s, k), metric=self.protocol, query=query,
                         galleries=tuple(self._draw(s, k, t) for t in range(self.num_trials)))
                for s, k in combos]

    def show_summary(self):
        super().show_summary()
        print_modality_summary(self)
        print('  gallery: {}, {} draw, trial {}; test pool {} images'.format(
            mode_name(self.search, self.shots), self.gallery_draw, self.split_id,
            len(self._test_pool)))


@IMAGE_DATASETS.register('sysu_mm01_indoor')
class SYSUMM01Indoor(SYSUMM01):
    """SYSU-MM01, indoor-search gallery (cams 1, 2)."""

    search = 'indoor'


def mode_name(search, shots):
    shot = {1: 'single-shot', MULTI_SHOT: 'multi-shot'}.get(shots, '{}-shot'.format(shots))
    return '{}-search {}'.format(search, shot)
