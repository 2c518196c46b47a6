"""Every registered dataset name x every trial, on synthetic trees, against invariants
read straight from the files on disk (not from the loaders)."""
import os

import pytest

from vireid_plugin.data.datasets.buptcampus import dataset as buptcampus
from vireid_plugin.data.synthetic import (make_buptcampus, make_hitsz_vcm, make_llcm, make_regdb,
                                         make_sysu_mm01)
from vireid_plugin.registry import IMAGE_DATASETS, VIDEO_DATASETS


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('sweep'))
    make_sysu_mm01(root, num_train=4, num_val=2, num_test=6, images_per_cam=3, size=(32, 16))
    make_regdb(root, num_ids=8, images_per_id=2, size=(32, 16))
    make_hitsz_vcm(root, num_train=3, num_test=3, size=(32, 16))
    make_llcm(root, num_train=4, num_test=5, images=(1, 2), size=(32, 16))
    make_buptcampus(root, num_train=3, num_aux=2, num_test=8, lengths=(2, 4), size=(32, 16))
    return root


def idx_lines(root, part, modality, trial):
    name = '{}_{}_{}.txt'.format(part, modality, trial)
    with open(os.path.join(root, 'RegDB', 'idx', name)) as f:
        return [line.split() for line in f if line.strip()]


@pytest.mark.parametrize('name,query_mod', [('regdb', 0), ('regdb_t2v', 1)])
@pytest.mark.parametrize('split_id', range(10))
def test_regdb_every_trial(root, name, query_mod, split_id):
    ds = IMAGE_DATASETS.get(name)(root=root, split_id=split_id, verbose=False)
    trial = split_id + 1
    files = {(p, m): idx_lines(root, p, m, trial) for p in ('train', 'test')
             for m in ('visible', 'thermal')}
    assert len(ds.train) == len(files['train', 'visible']) + len(files['train', 'thermal'])
    assert {os.path.relpath(it[0], os.path.join(root, 'RegDB')) for it in ds.query} == \
        {path for path, _ in files['test', ('visible', 'thermal')[query_mod]]}
    assert {it[4] for it in ds.query} == {query_mod}
    assert {it[4] for it in ds.gallery} == {1 - query_mod}
    train_paths = {it[0] for it in ds.train}
    assert not train_paths & {it[0] for it in ds.test_pool}   # train and test images disjoint
    (mode,) = ds.eval_modes()
    assert [ds.test_pool[i][4] for i in mode.query] == [query_mod] * len(ds.query)


@pytest.mark.parametrize('name,cams', [('sysu_mm01', {0, 1, 3, 4}), ('sysu_mm01_indoor', {0, 1})])
def test_sysu_every_trial(root, name, cams):
    cls = IMAGE_DATASETS.get(name)
    with open(os.path.join(root, 'SYSU-MM01', 'exp', 'test_id.txt')) as f:
        test_ids = sorted(int(t) for t in f.read().strip().split(','))
    # (id, camera) folders on disk in the gallery cameras = one image each per trial
    folders = {(pid, cam - 1) for pid in test_ids for cam in range(1, 7)
               if cam - 1 in cams and os.path.isdir(os.path.join(
                   root, 'SYSU-MM01', 'cam{}'.format(cam), '{:04d}'.format(pid)))}
    galleries = []
    for split_id in range(10):
        ds = cls(root=root, split_id=split_id, verbose=False)
        keys = [(it[1], it[2]) for it in ds.gallery]
        assert sorted(keys) == sorted(folders)          # exactly one per existing folder
        assert {it[4] for it in ds.gallery} == {0} and {it[4] for it in ds.query} == {1}
        galleries.append(tuple(it[0] for it in ds.gallery))
        (mode,) = ds.eval_modes()
        assert mode.num_trials == 10
        assert tuple(ds.test_pool[i][0] for i in mode.galleries[split_id]) == galleries[-1]
    assert len(set(galleries)) > 1                      # trials draw different galleries


@pytest.mark.parametrize('name,query_mod', [('hitsz_vcm', 1), ('hitsz_vcm_v2i', 0)])
def test_vcm_both_names(root, name, query_mod):
    from torchvision import transforms as T
    ds = VIDEO_DATASETS.get(name)(root=root, transform=T.ToTensor(), seq_len=4, verbose=False)
    assert {it[4] for it in ds.query} == {query_mod}
    assert {it[4] for it in ds.gallery} == {1 - query_mod}
    assert all(len(it[0]) >= 12 for it in ds.train + ds.query + ds.gallery)
    modes = ds.eval_modes(matrix=True)
    assert [m.name for m in modes] == ['infrared->visible', 'visible->infrared']


def camera_folders(root, modality, test_ids):
    """(pid, camid) of every test_<modality>/cam<K>/<pid4>/ copy folder on disk."""
    base = os.path.join(root, 'LLCM', 'test_' + modality)
    return sorted((pid, int(cam[3:]) - 1) for cam in os.listdir(base)
                  for pid in test_ids
                  if os.path.isdir(os.path.join(base, cam, '{:04d}'.format(pid))))


@pytest.mark.parametrize('name,query_mod', [('llcm', 1), ('llcm_v2i', 0)])
@pytest.mark.parametrize('protocol', ['corrected', 'reference'])
def test_llcm_every_trial(root, name, query_mod, protocol):
    with open(os.path.join(root, 'LLCM', 'idx', 'test_id.txt')) as f:
        test_ids = [int(t) for t in f.read().split(',')]
    folders = camera_folders(root, ('vis', 'nir')[1 - query_mod], test_ids)
    galleries = []
    for split_id in range(10):
        ds = IMAGE_DATASETS.get(name)(root=root, split_id=split_id, protocol=protocol,
                                      verbose=False)
        assert sorted((it[1], it[2]) for it in ds.gallery) == folders   # one per folder
        assert {it[4] for it in ds.query} == {query_mod} and {it[4] for it in ds.gallery} == {
            1 - query_mod}
        (mode,) = ds.eval_modes()
        assert mode.num_trials == 10 and mode.name.endswith('[{}]'.format(protocol)) == (
            protocol == 'corrected' or query_mod == 1)
        assert [ds.test_pool[i] for i in mode.galleries[split_id]] == ds.gallery
        galleries.append(tuple(it[0] for it in ds.gallery))
    assert len(set(galleries)) > 1
    assert not {it[0] for it in ds.train} & {it[0] for it in ds.test_pool}


def split_lines(root, name):
    with open(os.path.join(root, 'BUPTCampus', name)) as f:
        return [line.split() for line in f if line.strip()]


@pytest.mark.parametrize('name,query_mod', [('buptcampus', 0), ('buptcampus_i2v', 1)])
@pytest.mark.parametrize('protocol', ['m3reid', 'auxnet'])
def test_bupt_both_names_and_protocols(root, name, query_mod, protocol, monkeypatch):
    from torchvision import transforms as T
    monkeypatch.setattr(buptcampus, 'REFERENCE_TEST_BATCH', 3)   # the synthetic set is small
    ds = VIDEO_DATASETS.get(name)(root=root, transform=T.ToTensor(), seq_len=4,
                                  protocol=protocol, verbose=False)
    mods = ('RGB', 'IR')
    want_q = [int(r[0]) for r in split_lines(root, 'query.txt') if r[1] == mods[query_mod]]
    want_g = [int(r[0]) for r in split_lines(root, 'gallery.txt') if r[1] == mods[1 - query_mod]]
    if protocol == 'auxnet':   # the visible side is cut to a multiple of the test batch
        cut = (want_q, want_g)[query_mod]
        del cut[len(cut) - len(cut) % 3:]
    assert [it[1] for it in ds.query] == want_q and [it[1] for it in ds.gallery] == want_g
    assert len(ds.train) == 2 * len(split_lines(root, 'train.txt'))
    (mode,) = ds.eval_modes()
    assert mode.metric == {'m3reid': 'vcm', 'auxnet': 'regdb'}[protocol]
    assert mode.name.endswith('[{}]'.format(protocol))
