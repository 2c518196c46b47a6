"""LLCM (Zhang & Wang, CVPR 2023, "DEEN"): low-light visible-infrared images, 1,064 ids.

Layout, under ``<root>/LLCM/`` or ``<root>`` itself::

    idx/train_vis.txt, train_nir.txt, test_vis.txt, test_nir.txt
        one image a line: "<vis|nir>/<pid4>/<pid4>_c<cc>_s<hhmmss>_f<frame>_<vis|nir>.jpg <label>"
    idx/test_id.txt   one line of comma-separated zero-padded test ids
    vis/<pid4>/*.jpg, nir/<pid4>/*.jpg
    test_vis/cam<K>/<pid4>/, test_nir/cam<K>/<pid4>/   copies of the test images (not read)

The camera is the ``_c<cc>_`` field of the file name (cameras 1-9 record both
modalities, there is no infrared camera 3); camid = cc - 1. Test ids keep their
raw number (0 is one of them); training ids are relabelled 0..N-1 in ascending
pid order (the label column, numbered by first appearance, is not used).

Reference protocol (ZYK100/LLCM DEEN/test.py with data_manager.py; AGW/ the same):
queries are every test image of one modality; the gallery of trial t holds one
image per (id, camera) of the other modality, drawn by ``random.seed(t)`` then
``random.choice(sorted(files))`` over sorted ids x cameras, for t = 0..9,
averaged. The metric (``eval_llcm``) drops gallery items of the query's id and
camera and takes CMC on the identity-de-duplicated ranking: protocol 'llcm'.

Two protocols (``llcm.protocol``), named in every result row:
- 'corrected' (default): infrared->visible as above, and visible->infrared the
  way the paper describes it, visible queries against the per-trial infrared
  gallery;
- 'reference': infrared->visible the same; visible->infrared as test.py's
  ``test_mode = [2, 1]`` computes it: the matrix is transposed, so the drawn
  infrared images are the probes and every visible test image the gallery
  (metric 'llcm_transposed'). The README's updated VIS->IR figures come from it.
"""
import os.path as osp
import random
import re

import numpy as np

from ....registry import IMAGE_DATASETS
from ....safe_paths import entry_path
from ...eval_split import EvalMode
from ..base import INFRARED, MODALITY_NAMES, VISIBLE, CrossModalImageDataset
from ..common import (ExistingFiles, dataset_error, line_error, locate_dataset, numbered_fields,
                     print_modality_summary, open_text)
from ..options import dataset_option

NAME = 'LLCM'
FOLDER = {VISIBLE: 'vis', INFRARED: 'nir'}
LAYOUT = ('  <root>/LLCM/idx/{train,test}_{vis,nir}.txt   (or <root> = the LLCM folder)\n'
          '      lines "<vis|nir>/<pid4>/<pid4>_c<cc>_s<hhmmss>_f<frame>_<vis|nir>.jpg <label>"\n'
          '  <root>/LLCM/idx/test_id.txt   one line of comma-separated ids\n'
          '  <root>/LLCM/vis/<pid4>/*.jpg, <root>/LLCM/nir/<pid4>/*.jpg')
OBTAIN = ('send the signed release agreement of https://github.com/ZYK100/LLCM to its '
          'authors, who mail a download link. An LLCM-shaped synthetic demo: '
          'python scripts/main.py --config-file configs/demo_llcm.yaml')
# <vis|nir>/<pid>/<pid>_c<camera>_<rest>
PATH_RE = re.compile(r'^(vis|nir)/(\d+)/(\d+)_c(\d+)_\S+$')
TAGS = {'corrected': 'corrected', 'reference': 'reference'}
PROTOCOLS = tuple(TAGS)   # llcm.protocol


def _error(problem, path):
    return dataset_error(NAME, problem, path, LAYOUT, OBTAIN)


def read_test_ids(path):
    """Sorted unique ids of idx/test_id.txt (comma-separated; newlines are tolerated)."""
    ids = set()
    with open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            for tok in (t for t in re.split(r'[,\s]+', line) if t):
                if not tok.isdigit():
                    raise line_error(path, lineno, 'expected comma-separated integer ids, '
                                     'got {!r}'.format(tok))
                ids.add(int(tok))
    if not ids:
        raise line_error(path, 1, 'the file lists no ids')
    return sorted(ids)


@IMAGE_DATASETS.register('llcm')
class LLCM(CrossModalImageDataset):
    """LLCM, infrared queries against the drawn visible gallery (test.py's default).

    Keywords left None take the configured value (``datasets/options.py``): protocol
    (llcm.protocol), num_trials (test.num_trials). ``split_id`` is the trial whose
    gallery torchreid's ``gallery`` attribute holds.
    """

    dataset_dir = NAME
    protocol = 'llcm'
    query_modality = INFRARED
    #: the config keys this dataset reads (``datasets/options.py``)
    config_keys = ('llcm.protocol', 'test.num_trials')

    def __init__(self, root='datasets', split_id=0, protocol=None, num_trials=None, **kwargs):
        self.root = osp.abspath(osp.expanduser(root))
        self.protocol_variant = dataset_option('llcm.protocol', protocol)
        self.num_trials = int(dataset_option('test.num_trials', num_trials))
        self.split_id = int(split_id)
        if self.num_trials < 1 or self.split_id < 0:
            raise ValueError('need num_trials >= 1 and split_id >= 0, got {} and {}'.format(
                self.num_trials, self.split_id))
        self.dataset_dir = locate_dataset(self.root, NAME, ('idx',))
        if self.dataset_dir is None:
            raise _error('dataset folder not found', osp.join(self.root, NAME))
        idx = osp.join(self.dataset_dir, 'idx')
        files = {(part, mod): osp.join(idx, '{}_{}.txt'.format(part, FOLDER[mod]))
                 for part in ('train', 'test') for mod in (VISIBLE, INFRARED)}
        files['ids'] = osp.join(idx, 'test_id.txt')
        for path in files.values():
            if not osp.isfile(path):
                raise _error('index file not found', path)
        self._exists = ExistingFiles()
        rows = {key: self._read_idx(path, key[1]) for key, path in files.items() if key != 'ids'}
        self.test_ids = read_test_ids(files['ids'])
        self._check_split(files, rows)

        pids = sorted({r[1] for mod in (VISIBLE, INFRARED) for r in rows['train', mod]})
        label = {pid: i for i, pid in enumerate(pids)}
        train = [(path, label[pid], cam, 0, mod) for mod in (VISIBLE, INFRARED)
                 for path, pid, cam, _ in rows['train', mod]]
        # Pool: infrared then visible test images, each in the reference order
        # (sorted id, camera, file name); _slots[mod][(pid, cam)] -> pool indices.
        pool, self._slots = [], {}
        for mod in (INFRARED, VISIBLE):
            slots = self._slots[mod] = {}
            for path, pid, cam, _ in sorted(rows['test', mod], key=lambda r: (r[1], r[2], r[0])):
                slots.setdefault((pid, cam), []).append(len(pool))
                pool.append((path, pid, cam, 0, mod))
        self._test_pool = pool
        query = [it for it in pool if it[4] == self.query_modality]
        gallery = [pool[i] for i in self._draw(1 - self.query_modality, self.split_id)]
        super().__init__(train, query, gallery, **kwargs)

    def _read_idx(self, path, modality):
        """[(absolute path, raw pid, camid, line number)] of one idx file."""
        rows = []
        for lineno, fields, line in numbered_fields(path):
            match = PATH_RE.match(fields[0]) if len(fields) == 2 else None
            if match is None or not fields[1].isdigit():
                raise line_error(path, lineno, 'expected "<vis|nir>/<pid>/<pid>_c<cc>_..." and '
                                 'an integer label, got {!r}'.format(line))
            folder, pid, name_pid, cam = match.groups()
            if folder != FOLDER[modality] or int(pid) != int(name_pid) or int(cam) < 1:
                raise line_error(path, lineno, '{!r} is not a {} image of id {} with a camera '
                                 '>= 1 (folder, file-name id and camera must agree)'.format(
                                     fields[0], MODALITY_NAMES[modality], int(pid)))
            img = entry_path(self.dataset_dir, fields[0], '{}, line {}'.format(path, lineno))
            if not self._exists(img):
                raise line_error(path, lineno, 'listed image does not exist: ' + img)
            rows.append((img, int(pid), int(cam) - 1, lineno))
        if not rows:
            raise line_error(path, 1, 'the file lists no images')
        return rows

    def _check_split(self, files, rows):
        """Test images belong to test_id.txt ids, train ones do not, every test id has
        images of both modalities (each is the other's gallery)."""
        test_ids = set(self.test_ids)
        pids = {mod: {r[1] for r in rows['test', mod]} for mod in (VISIBLE, INFRARED)}
        for mod in (VISIBLE, INFRARED):
            for _, pid, _, lineno in rows['train', mod]:
                if pid in test_ids:
                    raise line_error(files['train', mod], lineno, 'id {} is a test id (listed '
                                     'in {})'.format(pid, files['ids']))
            for _, pid, _, lineno in rows['test', mod]:
                if pid not in test_ids:
                    raise line_error(files['test', mod], lineno, 'id {} is not listed in '
                                     '{}'.format(pid, files['ids']))
                if pid not in pids[1 - mod]:
                    raise line_error(files['test', mod], lineno, 'id {} has no image in {}, so '
                                     'its query would have no match'.format(
                                         pid, files['test', 1 - mod]))
        missing = sorted(test_ids - pids[VISIBLE])
        if missing:
            raise line_error(files['ids'], 1, 'test id {} has no image in {} or {}'.format(
                missing[0], files['test', VISIBLE], files['test', INFRARED]))

    def _draw(self, modality, trial):
        """Pool indices of the one-per-(id, camera) gallery of a modality in one trial."""
        rng = random.Random(trial)   # the numbers of random.seed(trial), global RNG untouched
        slots = self._slots[modality]
        return np.asarray([rng.choice(slots[key]) for key in sorted(slots)], dtype=np.int64)

    def _mode(self, query_modality):
        q, g = query_modality, 1 - query_modality
        metric, tag = 'llcm', TAGS[self.protocol_variant]
        if self.protocol_variant == 'reference' and q == VISIBLE:
            metric, tag = 'llcm_transposed', 'reference, transposed'
        query = np.asarray([i for i, it in enumerate(self._test_pool) if it[4] == q], np.int64)
        return EvalMode(name='{}->{} [{}]'.format(MODALITY_NAMES[q], MODALITY_NAMES[g], tag),
                        metric=metric, query=query,
                        galleries=tuple(self._draw(g, t) for t in range(self.num_trials)))

    def eval_modes(self, matrix=False):
        """The registered direction, or with ``matrix`` both (infrared->visible first)."""
        return [self._mode(q) for q in ((INFRARED, VISIBLE) if matrix else
                                        (self.query_modality,))]

    def show_summary(self):
        super().show_summary()
        print_modality_summary(self)
        mode = self._mode(self.query_modality)
        ok = self.matched_probes(mode)
        print('  {}: {} trials of one image per (id, camera), trial {} in "gallery"; probes '
              'left without a match by the same-camera removal (skipped by the metric): {} '
              'of {}'.format(mode.name, self.num_trials, self.split_id, int((~ok).sum()),
                             len(ok)))


@IMAGE_DATASETS.register('llcm_v2i')
class LLCMVisibleToInfrared(LLCM):
    """LLCM, visible queries against the drawn infrared gallery (the paper's VIS->IR)."""

    query_modality = VISIBLE
