import os

import numpy as np
import pytest
import torchvision.transforms as T

from dataset_trees import (assert_missing_file_named, assert_missing_root_explained,
                           build_image_dataset, replace_line, write_regdb_tree)
from vireid_plugin.data.datasets import regdb  # noqa: F401  (registers the names)
from vireid_plugin.data.datasets.common import DatasetNotFoundError

# Folder ids 1..5. Trial 1: train 1,2,3 (labels 0..2), test 4,5 (labels 0,1).
# Trial 10: train 3,4,5 with gappy labels 7,3,5 (relabelled in sorted order:
# 3->0, 5->1, 7->2, i.e. folder 4->0, folder 5->1, folder 3->2), test 1,2.
TRIALS = {1: {'train': {1: 0, 2: 1, 3: 2}, 'test': {4: 0, 5: 1}},
          10: {'train': {3: 7, 4: 3, 5: 5}, 'test': {1: 0, 2: 1}}}


@pytest.fixture
def tree(tmp_path):
    write_regdb_tree(tmp_path, TRIALS)
    return tmp_path


def build(root, name='regdb', split_id=0, **kw):
    return build_image_dataset(root, name, split_id, **kw)


def folder_of(path):
    """(modality folder, id folder) of an image path."""
    parts = path.split(os.sep)
    return parts[-3], int(parts[-2])


def test_trial_1_train_query_gallery(tree):
    ds = build(tree, 'regdb', 0)
    assert ds.trial == 1 and ds.protocol == 'regdb'
    # 3 ids x 2 images x 2 modalities; labels 0..2 kept; camid = modality
    assert len(ds.train) == 12
    for path, pid, camid, dsetid, modality in ds.train:
        sub, fid = folder_of(path)
        assert modality == (0 if sub == 'Visible' else 1) and camid == modality
        assert pid == TRIALS[1]['train'][fid] and dsetid == 0
    assert {folder_of(it[0])[0] for it in ds.query} == {'Visible'}
    assert {folder_of(it[0])[0] for it in ds.gallery} == {'Thermal'}
    assert sorted(it[1] for it in ds.query) == [0, 0, 1, 1]
    assert all(it[1] == TRIALS[1]['test'][folder_of(it[0])[1]] for it in ds.gallery)
    assert [it[2] for it in ds.query] == [0] * 4 and [it[2] for it in ds.gallery] == [1] * 4


def test_trial_10_relabels_train_in_sorted_order(tree):
    ds = build(tree, 'regdb', 9)
    assert ds.trial == 10
    expected = {4: 0, 5: 1, 3: 2}   # labels 3, 5, 7 in sorted order
    assert {folder_of(it[0])[1]: it[1] for it in ds.train} == expected
    assert ds.num_train_pids == 3
    assert {folder_of(it[0])[1] for it in ds.query} == {1, 2}


def test_t2v_swaps_query_and_gallery_and_root_may_be_the_regdb_folder(tree):
    v2t = build(tree, 'regdb', 0)
    t2v = build(tree / 'RegDB', 'regdb_t2v', 0)
    assert t2v.query == v2t.gallery and t2v.gallery == v2t.query
    assert t2v.test_pool == v2t.test_pool
    assert [m.name for m in t2v.eval_modes()] == ['thermal->visible']


@pytest.mark.parametrize('name,first', [('regdb', 0), ('regdb_t2v', 1)])
def test_eval_modes_index_the_right_modalities(tree, name, first):
    ds = build(tree, name, 0)
    pool = ds.test_pool
    assert len(pool) == 8 and [it[4] for it in pool] == [0] * 4 + [1] * 4
    (mode,) = ds.eval_modes()
    assert mode.metric == 'regdb' and mode.num_trials == 1
    assert mode.query.tolist() == ([0, 1, 2, 3] if first == 0 else [4, 5, 6, 7])
    assert mode.galleries[0].tolist() == ([4, 5, 6, 7] if first == 0 else [0, 1, 2, 3])
    assert [pool[i] for i in mode.query] == ds.query
    matrix = ds.eval_modes(matrix=True)
    assert [m.name for m in matrix] == ['visible->thermal', 'thermal->visible']
    for m, q in zip(matrix, (0, 1)):
        assert {pool[i][4] for i in m.query} == {q}
        assert {pool[i][4] for i in m.galleries[0]} == {1 - q}


def test_items_are_three_channel_and_carry_modality(tree):
    ds = build(tree, 'regdb_t2v', 0, mode='query', transform=T.ToTensor())
    item = ds[0]
    # thermal BMPs on disk are 1-channel; the reader makes them RGB
    assert item['img'].shape == (3, 8, 4)
    assert item['modality'] == 1 and item['camid'] == 1
    assert item['impath'] == ds.query[0][0]


def test_bad_split_id(tree):
    for bad in (10, -1):
        with pytest.raises(ValueError, match='0..9'):
            build(tree, 'regdb', bad)


def test_summary_names_trial(tree, capsys):
    build(tree, 'regdb_t2v', 9, verbose=True)
    out = capsys.readouterr().out
    assert 'trial 10 of 10' in out and 'query thermal' in out


def test_missing_root_explains_layout_source_and_demo(tmp_path):
    assert_missing_root_explained(lambda: build(tmp_path / 'nowhere', 'regdb', 0), (
        str(tmp_path / 'nowhere' / 'RegDB'), 'idx/{train,test}_{visible,thermal}',
        'Dongguk', 'mangye16/Cross-Modal-Re-ID-baseline', 'configs/demo_regdb.yaml'))


def test_missing_idx_file_is_named(tree):
    assert_missing_file_named(tree / 'RegDB' / 'idx' / 'test_thermal_1.txt',
                              lambda: build(tree, 'regdb', 0), 'Dongguk')


@pytest.mark.parametrize('fname,lineno,text,problem', [
    ('train_visible_1.txt', 3, 'Visible/2/v_0_2.bmp', 'expected'),
    ('train_thermal_1.txt', 2, 'Thermal/1/t_1_1.bmp one', 'expected'),
    ('test_visible_1.txt', 4, 'Visible/5/v_9_5.bmp 1', 'does not exist'),
    ('test_thermal_1.txt', 3, 'Thermal/5/t_0_5.bmp 4', 'no image in'),   # id 4: no visible
    ('test_visible_1.txt', 1, 'Visible/4/v_0_4.bmp 2', 'no image in'),   # id 2: no thermal
])
def test_bad_lines_name_file_and_line(tree, fname, lineno, text, problem):
    path = tree / 'RegDB' / 'idx' / fname
    replace_line(path, lineno, text)
    with pytest.raises(DatasetNotFoundError) as err:
        build(tree, 'regdb', 0)
    msg = str(err.value)
    assert msg.startswith('{}, line {}:'.format(path, lineno)) and problem in msg


def test_other_trials_are_not_read(tree):
    # A broken trial-10 file must not affect trial 1 (and vice versa).
    replace_line(tree / 'RegDB' / 'idx' / 'train_visible_10.txt', 1, 'garbage')
    assert len(build(tree, 'regdb', 0).train) == 12
    with pytest.raises(DatasetNotFoundError, match='train_visible_10.txt, line 1'):
        build(tree, 'regdb', 9)


def test_combineall_adds_test_ids_after_train_ids(tree):
    ds = build(tree, 'regdb', 0, combineall=True)
    # 12 train images + 8 test images; test labels 0,1 become 3,4
    assert len(ds.train) == 20 and ds.num_train_pids == 5
    assert np.unique([it[1] for it in ds.train]).tolist() == [0, 1, 2, 3, 4]
