"""HITSZ-VCM (Lin et al., CVPR 2022, "MITML"): video visible-infrared ReID.

Layout, under ``<root>/HITSZ-VCM/`` or ``<root>`` itself::

    info/train_name.txt, test_name.txt        one frame name a line, e.g. 0001M2D3T1F1.jpg
    info/track_train_info.txt, track_test_info.txt   "m start end pid camid" a line
    info/query_IDX.txt                         1-based rows of track_test_info (IR queries)
    Train/<pid4>/<ir|rgb>/D<k>/<frame>.jpg     (or <pid4>/... directly under the root,
    Test/<pid4>/<ir|rgb>/D<k>/<frame>.jpg       as the official loader expects)

A name ``0001M2D3T1F1.jpg`` is pid 0001, modality digit 2 (1 = IR, 2 = RGB),
camera D3, tracklet T1, file ``1.jpg``: ``0001/rgb/D3/1.jpg``. ``start``/``end``
are 1-based inclusive rows of the split's name list. The query_IDX rows are
all infrared test tracklets, the other test rows all visible ones; each
direction uses one set as query and the other as gallery (MITML test.py).
"""
import os.path as osp
import re

from ....registry import VIDEO_DATASETS
from ....safe_paths import entry_path
from ..base import INFRARED, MODALITY_NAMES, VISIBLE, CrossModalVideoDataset
from ..common import (DatasetNotFoundError, ExistingFiles, dataset_error, line_error,
                     locate_dataset, print_modality_summary, open_text)
from ..options import dataset_option

LAYOUT = ('  <root>/HITSZ-VCM/info/{train_name,test_name,track_train_info,track_test_info,'
          'query_IDX}.txt   (or <root> = the HITSZ-VCM folder)\n'
          '  <root>/HITSZ-VCM/Train/<pid4>/<ir|rgb>/D<k>/<frame>.jpg   (train_name frames)\n'
          '  <root>/HITSZ-VCM/Test/<pid4>/<ir|rgb>/D<k>/<frame>.jpg    (test_name frames)\n'
          '  (or <pid4>/... directly under HITSZ-VCM/ for both)')
OBTAIN = ('download the Train, Test and info archives linked from '
          'https://github.com/VCM-project233/MITML and unzip them into one folder. '
          'A VCM-shaped synthetic demo: '
          'python scripts/main.py --config-file configs/demo_vcm.yaml')
INFO_FILES = ('train_name.txt', 'test_name.txt', 'track_train_info.txt',
              'track_test_info.txt', 'query_IDX.txt')

# pid (4 digits), M<modality digit>, D<camera>, T<tracklet>, F<file name>
NAME_RE = re.compile(r'^(\d{4})M(\d)D(\d+)T(\d+)F(.+)$')
MODALITY_OF_DIGIT = {1: INFRARED, 2: VISIBLE}
FOLDER_OF_DIGIT = {1: 'ir', 2: 'rgb'}


@VIDEO_DATASETS.register('hitsz_vcm')
class HITSZVCM(CrossModalVideoDataset):
    """HITSZ-VCM tracklets, infrared queries searched in the visible gallery (paper's main)."""

    #: the protocol's reference ranking, for models that declare none (metrics/distance.py)
    TEST_DISTANCE = 'cosine'
    TEST_DISTANCE_SOURCE = 'MITML test.py: cosine of L2-normalised features'

    dataset_dir = 'HITSZ-VCM'
    protocol = 'vcm'
    query_modality = INFRARED
    #: the config keys this dataset reads (``datasets/options.py``); min_seq_len=None takes it
    config_keys = ('vcm.min_seq_len',)

    def __init__(self, root='datasets', min_seq_len=None, **kwargs):
        self.min_seq_len = dataset_option('vcm.min_seq_len', min_seq_len)
        self.root = osp.abspath(osp.expanduser(root))
        self.dataset_dir = self._locate(self.root)
        info = {f: osp.join(self.dataset_dir, 'info', f) for f in INFO_FILES}
        for path in info.values():
            if not osp.isfile(path):
                raise dataset_error('HITSZ-VCM', 'info file not found', path, LAYOUT, OBTAIN)
        self._exists = ExistingFiles()
        self.frame_dirs = {}

        train, _ = self._tracklets('Train', info['track_train_info.txt'], info['train_name.txt'])
        test = self._split_test(info['query_IDX.txt'], info['track_test_info.txt'],
                                *self._tracklets('Test', info['track_test_info.txt'],
                                                 info['test_name.txt']))

        # The authors' rule (MITML VCM(min_seq_len=12)): short tracklets leave
        # train, query and gallery alike.
        self.dropped = {}
        kept = {}
        for name, rows in (('train', train), ('infrared test', test[INFRARED]),
                           ('visible test', test[VISIBLE])):
            kept[name] = [r for r in rows if len(r[0]) >= self.min_seq_len]
            self.dropped[name] = len(rows) - len(kept[name])
            if not kept[name]:
                raise DatasetNotFoundError('HITSZ-VCM: vcm.min_seq_len = {} drops all {} {} '
                                           'tracklets'.format(self.min_seq_len, len(rows), name))

        pids = sorted({r[1] for r in kept['train']})
        relabel = {pid: i for i, pid in enumerate(pids)}
        train = [(paths, relabel[pid], *rest) for paths, pid, *rest in kept['train']]
        tests = {INFRARED: kept['infrared test'], VISIBLE: kept['visible test']}
        # One pool for both directions: infrared (query_IDX rows) then visible.
        self._test_pool = tests[INFRARED] + tests[VISIBLE]
        query, gallery = tests[self.query_modality], tests[1 - self.query_modality]
        super().__init__(train, query, gallery, **kwargs)

    @classmethod
    def _locate(cls, root):
        """``<root>/HITSZ-VCM``, or ``root`` itself when it is that folder."""
        found = locate_dataset(root, cls.dataset_dir, ('info',))
        if found is None:
            raise dataset_error('HITSZ-VCM', 'dataset folder not found',
                                osp.join(root, cls.dataset_dir), LAYOUT, OBTAIN)
        return found

    def _tracklets(self, split, track_file, name_file):
        """Item 5-tuples of one split, one per track row in file order, and their line numbers."""
        with open_text(name_file) as f:
            names = [line.strip() for line in f]
        items, linenos = [], []
        base = None
        with open_text(track_file) as f:
            for lineno, line in enumerate(f, 1):
                fields = line.split()
                if not fields:
                    continue
                if len(fields) != 5 or not all(x.isdigit() for x in fields):
                    raise line_error(track_file, lineno, 'expected 5 integers "m start end pid '
                                     'camid", got {!r}'.format(line.rstrip('\n')))
                m, start, end, pid, camid = map(int, fields)
                if m not in MODALITY_OF_DIGIT:
                    raise line_error(track_file, lineno, 'modality column must be 1 (IR) or '
                                     '2 (RGB), got {}'.format(m))
                if camid < 1:
                    raise line_error(track_file, lineno, 'camera ids start at 1, got 0')
                if not 1 <= start <= end <= len(names):
                    raise line_error(track_file, lineno, 'frame range {}..{} is outside the {} '
                                     'names of {}'.format(start, end, len(names), name_file))
                paths = []
                for k in range(start - 1, end):
                    rel = self._frame_path(names[k], name_file, k + 1, track_file, lineno, m, pid)
                    if base is None:   # the split's folder layout, from its first frame
                        base = self._frame_base(split, rel, name_file, k + 1)
                    path = entry_path(base, rel, '{}, line {}'.format(name_file, k + 1))
                    if not self._exists(path):
                        raise line_error(name_file, k + 1, 'listed frame does not exist: {} '
                                         '(tracklet of {}, line {})'.format(path, track_file,
                                                                            lineno))
                    paths.append(path)
                items.append((tuple(paths), pid, camid - 1, 0, MODALITY_OF_DIGIT[m]))
                linenos.append(lineno)
        if not items:
            raise line_error(track_file, 1, 'the file lists no tracklets')
        return items, linenos

    @staticmethod
    def _frame_path(name, name_file, name_line, track_file, track_line, m, pid):
        """Relative frame path of a name, checked against its track row."""
        match = NAME_RE.match(name)
        if match is None:
            raise line_error(name_file, name_line, 'expected a frame name like '
                             '0001M2D3T1F1.jpg, got {!r}'.format(name))
        name_pid, digit, cam, _, frame = match.groups()
        if int(digit) != m:
            raise line_error(track_file, track_line, 'modality column says {} but frame {!r} '
                             '({}, line {}) has modality {}'.format(m, name, name_file,
                                                                    name_line, digit))
        if int(name_pid) != pid:
            raise line_error(track_file, track_line, 'pid column says {} but frame {!r} ({}, '
                             'line {}) belongs to {}'.format(pid, name, name_file, name_line,
                                                             name_pid))
        return osp.join(name_pid, FOLDER_OF_DIGIT[m], 'D' + cam, frame)

    def _frame_base(self, split, rel, name_file, name_line):
        """``<dataset>/<split>`` (release archives) or ``<dataset>`` (official loader)."""
        candidates = (osp.join(self.dataset_dir, split), self.dataset_dir)
        for base in candidates:
            if self._exists(osp.join(base, rel)):
                self.frame_dirs[split] = base
                return base
        raise line_error(name_file, name_line, 'listed frame found neither as {} nor as {}'.format(
            *(osp.join(b, rel) for b in candidates)))

    @staticmethod
    def _split_test(query_file, track_file, test, linenos):
        """Split test rows into {INFRARED: query_IDX rows, VISIBLE: the rest}, checked."""
        rows = {}   # 0-based test row -> query_IDX line
        with open_text(query_file) as f:
            # MITML keeps only the last line; concatenating accepts one or several.
            for lineno, line in enumerate(f, 1):
                for tok in line.split():
                    if not tok.isdigit() or not 1 <= int(tok) <= len(test):
                        raise line_error(query_file, lineno, 'expected 1-based row numbers of '
                                         '{} (1..{}), got {!r}'.format(track_file, len(test), tok))
                    if int(tok) - 1 in rows:
                        raise line_error(query_file, lineno, 'row {} is listed twice'.format(tok))
                    rows[int(tok) - 1] = lineno
        if not rows:
            raise line_error(query_file, 1, 'the file lists no query rows')
        for i, item in enumerate(test):
            is_query = i in rows
            if is_query and item[4] != INFRARED:
                raise line_error(query_file, rows[i], 'row {} ({}, line {}) is a visible '
                                 'tracklet; the query rows must be the infrared ones'.format(
                                     i + 1, track_file, linenos[i]))
            if not is_query and item[4] != VISIBLE:
                raise line_error(track_file, linenos[i], 'infrared tracklet '
                                 'missing from {}; the non-query rows must be the visible '
                                 'gallery'.format(query_file))
        split = {INFRARED: [test[i] for i in sorted(rows)],
                 VISIBLE: [it for i, it in enumerate(test) if i not in rows]}
        # Each direction queries one set against the other: every id needs both.
        pids = {mod: {it[1] for it in split[mod]} for mod in split}
        for i, item in enumerate(test):
            if item[1] not in pids[1 - item[4]]:
                raise line_error(track_file, linenos[i], 'id {} has no {} '
                                 'tracklet in the test set, so its query would have no '
                                 'match'.format(item[1], MODALITY_NAMES[1 - item[4]]))
        return split

    def eval_modes(self, matrix=False):
        """The registered direction, or with ``matrix`` both in paper order (I->V, V->I)."""
        return self.direction_modes((INFRARED, VISIBLE) if matrix else (self.query_modality,))

    def show_summary(self):
        super().show_summary()
        print_modality_summary(self)
        # The authors' min-length rule is the only thing that removes tracklets.
        print('  dropped tracklets shorter than {} frames (vcm.min_seq_len): {}'.format(
            self.min_seq_len, ', '.join('{} {}'.format(n, k) for k, n in self.dropped.items())))
        orphans = len({it[1] for it in self.query} - {it[1] for it in self.gallery})
        print('  query {} -> gallery {}; query ids left without a gallery tracklet: {}'.format(
            MODALITY_NAMES[self.query_modality], MODALITY_NAMES[1 - self.query_modality],
            orphans))
        print('  frames under: ' + ', '.join(sorted(set(self.frame_dirs.values()))))


@VIDEO_DATASETS.register('hitsz_vcm_v2i')
class HITSZVCMVisibleToInfrared(HITSZVCM):
    """HITSZ-VCM, visible queries searched in the infrared gallery (MITML's rgb2ir)."""

    query_modality = VISIBLE
