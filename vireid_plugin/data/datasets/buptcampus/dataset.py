"""BUPTCampus (Du et al., TIFS 2024, "AuxNet"): video VI-ReID with paired RGB/IR tracklets.

Layout, under ``<root>/BUPTCampus/`` or ``<root>`` itself::

    data_paths.json   {pid: {"RGB"|"IR": {camera: {tracklet id: [frame paths under DATA/]}}}}
    train.txt, train_auxiliary.txt   "<pid> RGB/IR <camera> <tracklet id>": a paired tracklet
    query.txt, gallery.txt           "<pid> <RGB|IR> <camera> <tracklet id>"
    DATA/<pid>/<RGB|IR|FakeIR>/<camera>/<pid>_<RGB|IR>_<camera>_<tid>_<frame>.jpg

Cameras LS3, G25, CQ1, W4, TSG1, TSG2 record both modalities; camid = their index
in that list (the authors' ``utils.CAMERA``). A training line gives two items,
its RGB and its IR tracklet, with one label; training ids are relabelled 0..N-1
in ascending pid order, test ids keep their number. ``bupt.use_auxiliary`` adds
the auxiliary set (each id filmed by one camera) as further ids, dsetid 1.

Two protocols (``bupt.protocol``), each named by the code it follows and named in
every result row; both score visible->infrared (RGB queries, IR gallery) and
infrared->visible:
- 'auxnet' (default; the dataset authors' test.py, dyhBUPT/BUPTCampus, which VLD
  copies): the ConsistentModalitySampler (test batch 64) drops the last
  ``n % 64`` RGB tracklets of query.txt and of gallery.txt (540 -> 512 queries,
  2422 -> 2368 gallery), nothing is removed (protocol 'regdb'), clips take
  ``linspace(0, n, S)`` frames (the authors use S = 10);
- 'm3reid' (M3-ReID's loader and metric): every query, gallery items of the
  query's id and camera removed (protocol 'vcm', with mINP), clips by the chunk
  rule (M3-ReID: 6 frames). No source seen says the BUPTCampus paper describes
  that removal: it is M3-ReID's choice.
The names of earlier versions are still read: 'reference' = 'auxnet',
'corrected' = 'm3reid'.
"""
import json
import os.path as osp

import numpy as np

from ....registry import VIDEO_DATASETS
from ....safe_paths import entry_path
from ...eval_split import EvalMode
from ..base import INFRARED, MODALITY_NAMES, VISIBLE, CrossModalVideoDataset
from ..common import (ExistingFiles, dataset_error, line_error, locate_dataset, numbered_fields,
                     print_modality_summary, open_text)
from ..options import DatasetOptionError, dataset_option

NAME = 'BUPTCampus'
CAMERAS = ('LS3', 'G25', 'CQ1', 'W4', 'TSG1', 'TSG2')
MODALITY_OF = {'RGB': VISIBLE, 'IR': INFRARED}
PAIRED = 'RGB/IR'
PROTOCOLS = ('auxnet', 'm3reid')   # bupt.protocol
#: earlier names of the protocols, still accepted
PROTOCOL_ALIASES = {'reference': 'auxnet', 'corrected': 'm3reid'}
SPLIT_FILES = ('train.txt', 'train_auxiliary.txt', 'query.txt', 'gallery.txt')
#: the authors' test batch ("Please don't change it"): RGB lists are cut to a multiple
REFERENCE_TEST_BATCH = 64
LAYOUT = ('  <root>/BUPTCampus/data_paths.json   (or <root> = the BUPTCampus folder)\n'
          '  <root>/BUPTCampus/{train,train_auxiliary,query,gallery}.txt   lines '
          '"<pid> <RGB/IR|RGB|IR> <camera> <tracklet id>"\n'
          '  <root>/BUPTCampus/DATA/<pid>/<RGB|IR>/<camera>/'
          '<pid>_<RGB|IR>_<camera>_<tid>_<frame>.jpg')
OBTAIN = ('download BUPTCampus from the Baidu disk linked at '
          'https://github.com/dyhBUPT/BUPTCampus and unpack it into one folder. '
          'A BUPTCampus-shaped synthetic demo: '
          'python scripts/main.py --config-file configs/demo_bupt.yaml')


def _error(problem, path):
    return dataset_error(NAME, problem, path, LAYOUT, OBTAIN)


def reference_truncation(n, batch=None):
    """How many of ``n`` RGB tracklets the authors' test sampler keeps (the first ones).

    It drops the last ``n % batch`` (``batch``: ``REFERENCE_TEST_BATCH``). With
    ``n % batch == 0`` its ``idx[:-0]`` would drop all of them; the real lists never
    hit that (540 % 64 = 28, 2422 % 64 = 54) and here every one is kept instead.
    """
    batch = REFERENCE_TEST_BATCH if batch is None else batch
    return n - n % batch


def read_data_paths(path):
    try:
        with open_text(path) as f:
            data = json.load(f)
    except json.JSONDecodeError as exc:
        raise line_error(path, exc.lineno, 'not valid JSON ({})'.format(exc.msg)) from None
    if not isinstance(data, dict):
        raise line_error(path, 1, 'expected an object {{pid: {{modality: {{camera: {{tracklet: '
                         '[frames]}}}}}}}}, got {}'.format(type(data).__name__))
    return data


@VIDEO_DATASETS.register('buptcampus')
class BUPTCampus(CrossModalVideoDataset):
    """BUPTCampus tracklets, visible queries searched among infrared ones (the paper's first).

    Keywords left None take the configured value (``datasets/options.py``): protocol
    (bupt.protocol), use_auxiliary (bupt.use_auxiliary).
    """

    #: the protocol's reference ranking, for models that declare none (metrics/distance.py)
    TEST_DISTANCE = 'cosine'
    TEST_DISTANCE_SOURCE = ('AuxNet test.py: Euclidean distance of L2-normalised features '
                            '(ranks as cosine)')

    dataset_dir = NAME
    query_modality = VISIBLE
    #: the config keys this dataset reads (``datasets/options.py``)
    config_keys = ('bupt.protocol', 'bupt.use_auxiliary')

    def __init__(self, root='datasets', protocol=None, use_auxiliary=None, **kwargs):
        variant = dataset_option('bupt.protocol', protocol)
        self.protocol_variant = PROTOCOL_ALIASES.get(variant, variant)
        self.use_auxiliary = bool(dataset_option('bupt.use_auxiliary', use_auxiliary))
        self.protocol = 'vcm' if self.protocol_variant == 'm3reid' else 'regdb'
        self.frame_rule = 'chunk' if self.protocol_variant == 'm3reid' else 'uniform'
        self.root = osp.abspath(osp.expanduser(root))
        self.dataset_dir = locate_dataset(self.root, NAME, ('DATA',))
        if self.dataset_dir is None:
            raise _error('dataset folder not found', osp.join(self.root, NAME))
        files = {f: osp.join(self.dataset_dir, f) for f in SPLIT_FILES + ('data_paths.json',)}
        for name in SPLIT_FILES[:1] + SPLIT_FILES[2:] + ('data_paths.json',):
            if not osp.isfile(files[name]):
                raise _error('file not found', files[name])
        if self.use_auxiliary and not osp.isfile(files['train_auxiliary.txt']):
            raise _error('file not found (bupt.use_auxiliary is on)', files['train_auxiliary.txt'])
        self._paths = read_data_paths(files['data_paths.json'])
        self._exists = ExistingFiles()
        self._json = files['data_paths.json']

        rows = {f: self._read_split(files[f], paired=f.startswith('train'))
                for f in SPLIT_FILES if f != 'train_auxiliary.txt' or self.use_auxiliary}
        self._check_disjoint(files, rows)
        train = self._label(rows['train.txt'], dsetid=0)
        self.num_auxiliary = 0
        if self.use_auxiliary:
            aux = self._label(rows['train_auxiliary.txt'], dsetid=1,
                              offset=len({r[1] for r in rows['train.txt']}))
            self.num_auxiliary = len(aux)
            train += aux
        query = [r[0] for r in rows['query.txt']]
        gallery = [r[0] for r in rows['gallery.txt']]
        self._check_queries_match(files['query.txt'], rows['query.txt'], gallery)
        self._test_pool = query + gallery
        self._sets = {('query', m): self._indices(0, query, m) for m in (VISIBLE, INFRARED)}
        self._sets.update({('gallery', m): self._indices(len(query), gallery, m)
                           for m in (VISIBLE, INFRARED)})
        self.dropped = {'visible queries': 0, 'visible gallery': 0}
        if self.protocol_variant == 'auxnet':
            for part, label in (('query', 'visible queries'), ('gallery', 'visible gallery')):
                kept = self._sets[part, VISIBLE]
                cut = kept[:reference_truncation(len(kept))]
                if not len(cut):
                    raise DatasetOptionError(
                        "bupt.protocol 'auxnet': the authors' test batch of {} keeps none of "
                        'the {} visible tracklets of {}.txt (it drops the last n % {}); it is '
                        'meant for the real lists (540 visible queries, 2422 visible gallery '
                        "tracklets). Use bupt.protocol 'm3reid' on this data".format(
                            REFERENCE_TEST_BATCH, len(kept), part, REFERENCE_TEST_BATCH))
                self.dropped[label] = len(kept) - len(cut)
                self._sets[part, VISIBLE] = cut
        q = self.query_modality
        super().__init__(train, [self._test_pool[i] for i in self._sets['query', q]],
                         [self._test_pool[i] for i in self._sets['gallery', 1 - q]], **kwargs)

    @staticmethod
    def _indices(start, items, modality):
        return np.asarray([start + i for i, it in enumerate(items) if it[4] == modality],
                          dtype=np.int64)

    def _read_split(self, path, paired):
        """[(item or (rgb item, ir item), raw pid, line number)] of one split file."""
        rows = []
        modalities = (PAIRED,) if paired else tuple(MODALITY_OF)
        for lineno, fields, line in numbered_fields(path):
            if (len(fields) != 4 or not fields[0].isdigit() or fields[1] not in modalities
                    or fields[2] not in CAMERAS):
                raise line_error(path, lineno, 'expected "<pid> <{}> <camera: {}> <tracklet id>"'
                                 ', got {!r}'.format('|'.join(modalities), '|'.join(CAMERAS),
                                                     line))
            pid, mod, cam, tid = fields
            mods = ('RGB', 'IR') if paired else (mod,)
            items = tuple((self._frames(path, lineno, pid, m, cam, tid), int(pid),
                           CAMERAS.index(cam), 0, MODALITY_OF[m]) for m in mods)
            rows.append((items if paired else items[0], int(pid), lineno))
        if not rows:
            raise line_error(path, 1, 'the file lists no tracklets')
        return rows

    def _frames(self, path, lineno, pid, mod, cam, tid):
        """Absolute frame paths of one tracklet, as data_paths.json lists them."""
        try:
            rel = self._paths[pid][mod][cam][tid]
        except (KeyError, TypeError):
            raise line_error(path, lineno, 'tracklet {} {} {} {} is not in {}'.format(
                pid, mod, cam, tid, self._json)) from None
        if not isinstance(rel, list) or not rel:
            raise line_error(path, lineno, 'tracklet {} {} {} {} has no frames in {}'.format(
                pid, mod, cam, tid, self._json))
        where = '{}, tracklet {} {} {} {} (listed in {}, line {})'.format(
            self._json, pid, mod, cam, tid, path, lineno)
        if not all(isinstance(p, str) and p for p in rel):
            raise line_error(path, lineno, 'tracklet {} {} {} {} lists a frame that is not a '
                             'path in {}'.format(pid, mod, cam, tid, self._json))
        data = osp.join(self.dataset_dir, 'DATA')
        frames = tuple(entry_path(data, p, where) for p in rel)
        for frame in frames:
            if not self._exists(frame):
                raise line_error(path, lineno, 'listed frame does not exist: {} (tracklet {} {} '
                                 '{} {} of {})'.format(frame, pid, mod, cam, tid, self._json))
        return frames

    @staticmethod
    def _label(rows, dsetid, offset=0):
        """Items of paired rows with labels offset..offset+N-1 in ascending pid order."""
        label = {pid: offset + i for i, pid in enumerate(sorted({r[1] for r in rows}))}
        return [(paths, label[pid], cam, dsetid, mod)
                for pair, pid, _ in rows for paths, _, cam, _, mod in pair]

    @staticmethod
    def _check_disjoint(files, rows):
        """Train, auxiliary and test ids are disjoint sets (3,080 ids in all)."""
        test = {r[1] for f in ('query.txt', 'gallery.txt') for r in rows[f]}
        train = {r[1] for r in rows['train.txt']}
        for name in ('train.txt', 'train_auxiliary.txt'):
            for _, pid, lineno in rows.get(name, ()):
                if pid in test or (name != 'train.txt' and pid in train):
                    raise line_error(files[name], lineno, 'id {} is also {}'.format(
                        pid, 'a test id' if pid in test else 'in ' + files['train.txt']))

    @staticmethod
    def _check_queries_match(path, rows, gallery):
        """Each query needs a gallery tracklet of its id in the other modality."""
        have = {(it[1], it[4]) for it in gallery}
        for item, pid, lineno in rows:
            if (pid, 1 - item[4]) not in have:
                raise line_error(path, lineno, 'id {} has no {} tracklet in gallery.txt, so '
                                 'its query would have no match'.format(
                                     pid, MODALITY_NAMES[1 - item[4]]))

    def _mode(self, q):
        return EvalMode(name='{}->{} [{}]'.format(MODALITY_NAMES[q], MODALITY_NAMES[1 - q],
                                                  self.protocol_variant),
                        metric=self.protocol, query=self._sets['query', q],
                        galleries=(self._sets['gallery', 1 - q],))

    def eval_modes(self, matrix=False):
        """The registered direction, or with ``matrix`` both (visible->infrared first)."""
        return [self._mode(q) for q in ((VISIBLE, INFRARED) if matrix else
                                        (self.query_modality,))]

    def show_summary(self):
        super().show_summary()
        print_modality_summary(self)
        print('  auxiliary set: {}'.format(
            '{} tracklets added to training as dsetid 1'.format(self.num_auxiliary)
            if self.use_auxiliary else 'not used (bupt.use_auxiliary False)'))
        print('  protocol {}: metric {!r}, test clips by the {!r} frame rule of video.seq_len '
              'frames ({})'.format(self.protocol_variant, self.protocol, self.frame_rule,
                                   'M3-ReID: 6' if self.protocol_variant == 'm3reid'
                                   else 'the authors: 10'))
        if self.protocol_variant == 'auxnet':
            print('  the authors\' test batch of {} drops the last {} visible queries and the '
                  'last {} visible gallery tracklets'.format(
                      REFERENCE_TEST_BATCH, self.dropped['visible queries'],
                      self.dropped['visible gallery']))
        mode = self._mode(self.query_modality)
        ok = self.matched_probes(mode)
        print('  {}: queries left without a match (skipped by the metric): {} of {}'.format(
            mode.name, int((~ok).sum()), len(ok)))


@VIDEO_DATASETS.register('buptcampus_i2v')
class BUPTCampusInfraredToVisible(BUPTCampus):
    """BUPTCampus, infrared queries searched among visible tracklets."""

    query_modality = INFRARED
