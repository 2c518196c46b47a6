"""SYSU-MM01 loader on tiny generated trees (expected values counted by hand below)."""
import os
import random
import shutil

import numpy as np
import pytest

from tests.dataset_trees import IMAGE_SIZE, write_sysu_tree
from vireid_plugin.data.datasets.common import DatasetNotFoundError
from vireid_plugin.data.datasets.options import scoped_options
from vireid_plugin.data.datasets.sysu_mm01 import SYSUMM01, SYSUMM01Indoor
from vireid_plugin.registry import IMAGE_DATASETS

# train ids 1, 3; val id 5; test ids 2, 4, 7.
IMAGES = {
    (1, 1): 2, (1, 3): 2, (1, 6): 1,
    (3, 2): 1, (3, 4): 1, (3, 3): 1,
    (5, 5): 2, (5, 6): 1,
    (2, 1): 3, (2, 2): 2, (2, 3): ['0010.jpg', '0002.jpg'], (2, 4): 1, (2, 5): 4, (2, 6): 1,
    (4, 4): 3, (4, 6): 2,                      # id 4: no indoor (cam1/2) images
    (7, 1): 12, (7, 2): 3, (7, 3): 1, (7, 5): 2,  # id 7: no cam4, no cam6; cam1 > 10 shots
}
SPLITS = {'train': [3, 1], 'val': [5], 'test': [7, 2, 4]}
# Hand counts. train+val: id1 5, id3 3, id5 3 images. Queries (IR of test ids):
# id2 cam3 x2 + cam6 x1, id4 cam6 x2, id7 cam3 x1 = 6. Gallery candidates
# (cams 1,2,4,5): id2 3+2+1+4, id4 3, id7 12+3+2 = 30.
N_TRAIN, N_TRAIN_ONLY, N_QUERY, N_CANDIDATES = 11, 8, 6, 30
# (id, cam) folders: all = id2 x4 + id4 x1 + id7 x3 = 8; indoor = id2 x2 + id7 x2 = 4.
# 10 shots: all = (3+2+1+4) + 3 + (10+3+2) = 28; indoor = (3+2) + (10+3) = 18.
GALLERY_SIZES = {'all-search single-shot': 8, 'all-search multi-shot': 28,
                 'indoor-search single-shot': 4, 'indoor-search multi-shot': 18}
# ../shared beside the checkout holds the kit's split files for tests (never shipped)
PERM_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'shared',
                        'data', 'sysu_mm01_eval')


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp('sysu')
    write_sysu_tree(root, IMAGES, SPLITS)
    return str(root)


def load(root, cls=SYSUMM01, **kw):
    kw.setdefault('verbose', False)
    return cls(root=root, **kw)


def parts(path):
    """(cam, pid, file name) from .../camK/<id>/<file>."""
    head, name = os.path.split(path)
    head, pid = os.path.split(head)
    return int(os.path.basename(head)[3:]), int(pid), name


def agw_gallery(dataset_dir, cams, trial):
    """AGW's process_gallery_sysu, written out with the global random module."""
    with open(os.path.join(dataset_dir, 'exp', 'test_id.txt')) as f:
        ids = [int(y) for y in f.read().splitlines()[0].split(',')]
    random.seed(trial)
    out = []
    for pid in sorted(ids):
        for cam in cams:
            d = os.path.join(dataset_dir, 'cam%d' % cam, '%04d' % pid)
            if os.path.isdir(d):
                out.append(os.path.join(d, random.choice(sorted(os.listdir(d)))))
    return out


@pytest.fixture
def keep_global_random():
    state = random.getstate()
    yield
    random.setstate(state)


def test_registered_names_and_protocol():
    assert IMAGE_DATASETS.get('sysu_mm01') is SYSUMM01
    assert IMAGE_DATASETS.get('sysu_mm01_indoor') is SYSUMM01Indoor
    assert SYSUMM01.protocol == 'sysu'


def test_train_relabel_camids_modality(root):
    ds = load(root)
    assert len(ds.train) == N_TRAIN and ds.num_train_pids == 3
    for path, label, camid, dsetid, modality in ds.train:
        cam, pid, _ = parts(path)
        assert label == {1: 0, 3: 1, 5: 2}[pid]      # sorted raw ids 1, 3, 5
        assert camid == cam - 1 and dsetid == 0
        assert modality == (1 if cam in (3, 6) else 0)
    assert {it[2] for it in ds.train} == {0, 1, 2, 3, 4, 5}


def test_train_only_drops_val_ids(root):
    ds = load(root, train_with_val=False)
    assert len(ds.train) == N_TRAIN_ONLY and ds.num_train_pids == 2
    assert {parts(it[0])[1] for it in ds.train} == {1, 3}


def test_query_order_and_fields(root):
    ds = load(root)
    got = [(parts(p)[1], parts(p)[0], parts(p)[2], pid, camid, mod)
           for p, pid, camid, _, mod in ds.query]
    assert got == [
        (2, 3, '0002.jpg', 2, 2, 1), (2, 3, '0010.jpg', 2, 2, 1), (2, 6, '0001.jpg', 2, 5, 1),
        (4, 6, '0001.jpg', 4, 5, 1), (4, 6, '0002.jpg', 4, 5, 1),
        (7, 3, '0001.jpg', 7, 2, 1)]
    assert ds.test_pool[:N_QUERY] == ds.query
    assert len(ds.test_pool) == N_QUERY + N_CANDIDATES


@pytest.mark.parametrize('cls,cams', [(SYSUMM01, (1, 2, 4, 5)), (SYSUMM01Indoor, (1, 2))])
def test_seeded_gallery_matches_agw(root, cls, cams, keep_global_random):
    for trial in range(4):
        ds = load(root, cls=cls, split_id=trial)
        expected = agw_gallery(ds.dataset_dir, cams, trial)
        assert [it[0] for it in ds.gallery] == expected
        assert all(it[4] == 0 and parts(it[0])[0] in cams for it in ds.gallery)
        mode, = ds.eval_modes()
        assert [ds.test_pool[i][0] for i in mode.galleries[trial]] == expected
    # missing (id, cam) folders draw nothing: id4 only in cam4, id7 not in cam4
    got = {(parts(p)[1], parts(p)[0]) for p, *_ in ds.gallery}
    assert (4, 1) not in got and (7, 4) not in got
    assert len(ds.gallery) == (8 if cls is SYSUMM01 else 4)


def test_draw_leaves_global_random_alone(root, keep_global_random):
    random.seed(123)
    before = random.getstate()
    ds = load(root, split_id=3)
    ds.eval_modes(matrix=True)
    assert random.getstate() == before


def test_seeded_multi_shot(root, keep_global_random):
    ds = load(root, shots=10, split_id=2)
    random.seed(2)   # documented rule: sample(sorted(files), min(10, n)) per folder
    expected = []
    for pid in (2, 4, 7):
        for cam in (1, 2, 4, 5):
            d = os.path.join(ds.dataset_dir, 'cam%d' % cam, '%04d' % pid)
            if os.path.isdir(d):
                files = sorted(os.listdir(d))
                expected += [os.path.join(d, f) for f in random.sample(files, min(10, len(files)))]
    assert [it[0] for it in ds.gallery] == expected
    assert len(ds.gallery) == 28 and len(set(expected)) == 28


def test_eval_modes_registered_and_matrix(root):
    ds = load(root, num_trials=3)
    mode, = ds.eval_modes()
    assert (mode.name, mode.metric, mode.num_trials) == ('all-search single-shot', 'sysu', 3)
    modes = ds.eval_modes(matrix=True)
    assert [m.name for m in modes] == list(GALLERY_SIZES)
    for m in modes:
        cams = {0, 1} if m.name.startswith('indoor') else {0, 1, 3, 4}
        assert m.metric == 'sysu' and m.num_trials == 3
        assert m.query.dtype == np.int64 and list(m.query) == list(range(N_QUERY))
        assert all(ds.test_pool[i][4] == 1 and ds.test_pool[i][2] in (2, 5) for i in m.query)
        for g in m.galleries:
            assert g.dtype == np.int64 and len(g) == GALLERY_SIZES[m.name]
            assert len(set(g.tolist())) == len(g)
            assert all(ds.test_pool[i][4] == 0 and ds.test_pool[i][2] in cams for i in g)
    # trials differ (12 images in cam1/0007 make equal draws very unlikely; fixed seeds)
    multi = modes[1].galleries
    assert any(not np.array_equal(multi[0], g) for g in multi[1:])


def test_options_are_read_and_explicit_wins(root):
    with scoped_options({'test.num_trials': 2, 'sysu.shots': 10,
                         'sysu.train_with_val': False}):
        ds = load(root)
        mode, = ds.eval_modes()
        assert (mode.name, mode.num_trials, len(ds.gallery)) == ('all-search multi-shot', 2, 28)
        assert ds.num_train_pids == 2
        ds = load(root, cls=SYSUMM01Indoor, shots=1, num_trials=4)
        mode, = ds.eval_modes()
        assert (mode.name, mode.num_trials, len(ds.gallery)) == ('indoor-search single-shot', 4,
                                                                4)


def test_torchreid_kwargs_and_getitem_modality(root):
    kw = dict(split_id=0, transform=None, combineall=False, k_tfm=1, cuhk03_labeled=False,
              cuhk03_classic_split=False, market1501_500k=False, verbose=False)
    q = load(root, mode='query', **kw)
    item = q[0]
    assert set(item) == {'img', 'pid', 'camid', 'impath', 'dsetid', 'modality'}
    assert (item['modality'], item['pid'], item['camid']) == (1, 2, 2)
    assert item['img'].size == IMAGE_SIZE and item['img'].mode == 'RGB'
    g = load(root, mode='gallery', **kw)
    assert all(g[i]['modality'] == 0 for i in range(len(g)))
    assert len(g) == 8


def test_combineall_adds_test_ids(root):
    ds = load(root, combineall=True)
    assert ds.num_train_pids == 3 + 3
    assert len(ds.train) == N_TRAIN + N_QUERY + N_CANDIDATES


def test_root_is_dataset_folder(tmp_path):
    folder = write_sysu_tree(tmp_path, IMAGES, SPLITS, nested=False)
    ds = load(folder)
    assert ds.dataset_dir == str(tmp_path)
    assert (len(ds.train), len(ds.query), len(ds.gallery)) == (N_TRAIN, N_QUERY, 8)


def test_verbose_summary_has_modalities(root, capsys):
    load(root, verbose=True)
    out = capsys.readouterr().out
    assert 'visible' in out and 'infrared' in out
    # train IR images: id1 cam3 x2 + cam6 x1, id3 cam3 x1, id5 cam6 x1 = 5; visible 6
    assert 'train    | {:9d} | {:10d}'.format(6, 5) in out


def _expect_error(root, needle, **kw):
    with pytest.raises(DatasetNotFoundError) as exc:
        load(str(root), **kw)
    msg = str(exc.value)
    assert isinstance(exc.value, RuntimeError)
    assert needle in msg, msg
    assert 'https://github.com/wuancong/SYSU-MM01' in msg
    assert 'python scripts/main.py --config-file configs/demo.yaml' in msg
    return msg


def test_missing_root(tmp_path):
    msg = _expect_error(tmp_path / 'nowhere', str(tmp_path / 'nowhere' / 'SYSU-MM01'))
    assert 'cam1/ ... cam6/' in msg and 'exp/test_id.txt' in msg


@pytest.mark.parametrize('broken,needle,problem', [
    ('rm_cam', os.path.join('SYSU-MM01', 'cam4'), 'camera folder not found'),
    ('rm_test', os.path.join('exp', 'test_id.txt'), 'split file not found'),
    ('bad_line', os.path.join('exp', 'train_id.txt'), "non-integer id '3a'"),
    ('empty_id', 'id 9 listed in exp/test_id.txt', 'no images'),
])
def test_bad_input_names_path(tmp_path, broken, needle, problem):
    splits = dict(SPLITS, test=SPLITS['test'] + [9]) if broken == 'empty_id' else SPLITS
    folder = write_sysu_tree(tmp_path, IMAGES, splits)
    if broken == 'rm_cam':
        shutil.rmtree(os.path.join(folder, 'cam4'))
    elif broken == 'rm_test':
        os.remove(os.path.join(folder, 'exp', 'test_id.txt'))
    elif broken == 'bad_line':
        with open(os.path.join(folder, 'exp', 'train_id.txt'), 'w') as f:
            f.write('1,3a\n')
    msg = _expect_error(tmp_path, needle)
    assert problem in msg
    assert folder in msg


# ---------------------------------------------------------------- official draw
def _perm_error(root, perm_file, **kw):
    with pytest.raises(DatasetNotFoundError) as exc:
        load(root, gallery_draw='official', perm_file=perm_file, **kw)
    msg = str(exc.value)
    assert 'rand_perm_cam' in msg and 'https://github.com/wuancong/SYSU-MM01' in msg
    return msg


def test_official_bad_perm_file(root, tmp_path):
    import scipy.io
    missing = str(tmp_path / 'none.mat')
    assert missing in _perm_error(root, missing)
    garbage = tmp_path / 'garbage.mat'
    garbage.write_bytes(b'not a mat file at all' * 10)
    assert str(garbage) in _perm_error(root, str(garbage))
    wrong_var = str(tmp_path / 'wrong.mat')
    scipy.io.savemat(wrong_var, {'perm': np.zeros((2, 2))})
    msg = _perm_error(root, wrong_var)
    assert wrong_var in msg and 'no variable rand_perm_cam' in msg
    wrong_shape = str(tmp_path / 'shape.mat')
    scipy.io.savemat(wrong_shape, {'rand_perm_cam': np.zeros((2, 2))})
    msg = _perm_error(root, wrong_shape)
    assert wrong_shape in msg and 'a 2x2 double array, expected a cell array of 6' in msg
    assert 'needs sysu.perm_file' in _perm_error(root, '')


@pytest.fixture(scope='module')
def official():
    path = os.path.join(PERM_DIR, 'rand_perm_cam.mat')
    if not os.path.isfile(path):
        pytest.skip('official rand_perm_cam.mat not available under ' + PERM_DIR)
    import scipy.io
    cells = scipy.io.loadmat(path)['rand_perm_cam']

    def perm(cam, pid):  # MATLAB rand_perm_cam{cam}{pid}, read independently of the loader
        return cells[cam - 1, 0][pid - 1, 0]
    return path, perm


OFFICIAL_IDS = (6, 10, 17)   # 6, 10: all four RGB cams; 17: none in cam1/cam2


def _official_tree(root, perm, tweak=0):
    images = {(1, 1): 2, (1, 3): 1}
    for pid in OFFICIAL_IDS:
        images[(pid, 6)] = 2
        for cam in (1, 2, 4, 5):
            n = perm(cam, pid).shape[1]
            if n:
                images[(pid, cam)] = n
    if tweak:
        images[(6, 1)] += tweak
    write_sysu_tree(root, images, {'train': [1], 'val': [1], 'test': list(OFFICIAL_IDS)})
    return images


def test_official_draw_uses_kit_indices(tmp_path, official):
    path, perm = official
    images = _official_tree(tmp_path, perm)
    assert images[(6, 1)] == 42 and (17, 1) not in images   # what the .mat says
    ds = load(str(tmp_path), gallery_draw='official', perm_file=path, split_id=0)
    # Anchor read by hand from the file: rand_perm_cam{1}{6}(1, 1:8) = 5 1 4 27 13 12 36 22.
    first = ds.gallery[0]
    assert parts(first[0]) == (1, 6, '0005.jpg') and first[1:] == (6, 0, 0, 0)
    modes = {m.name: m for m in ds.eval_modes(matrix=True)}
    for shots, name in ((1, 'single-shot'), (10, 'multi-shot')):
        for search, cams in (('all', (1, 2, 4, 5)), ('indoor', (1, 2))):
            mode = modes['{}-search {}'.format(search, name)]
            for t in (0, 4, 9):
                expected = [(cam, pid, '%04d.jpg' % k)
                            for pid in OFFICIAL_IDS for cam in cams if (pid, cam) in images
                            for k in perm(cam, pid)[t, :shots]]
                assert [parts(ds.test_pool[i][0]) for i in mode.galleries[t]] == expected
    multi = load(str(tmp_path), gallery_draw='official', perm_file=path, shots=10)
    assert [int(parts(it[0])[2][:4]) for it in multi.gallery[:8]] == [5, 1, 4, 27, 13, 12, 36, 22]


def test_official_count_mismatch_names_folder(tmp_path, official):
    path, perm = official
    _official_tree(tmp_path, perm, tweak=1)
    msg = _perm_error(str(tmp_path), path)
    assert path in msg and 'permutes 42 images' in msg
    assert os.path.join('cam1', '0006') in msg and 'holds 43' in msg


def test_official_needs_enough_trials(tmp_path, official):
    path, perm = official
    _official_tree(tmp_path, perm)
    msg = _perm_error(str(tmp_path), path, num_trials=11)
    assert 'need 11 trials' in msg

