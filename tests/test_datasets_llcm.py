import os
import random

import pytest

from dataset_trees import (assert_missing_file_named, assert_missing_root_explained,
                           build_image_dataset, replace_line, write_llcm_tree)
from vireid_plugin.data.datasets import llcm  # noqa: F401  (registers the names)
from vireid_plugin.data.datasets.common import DatasetNotFoundError
from vireid_plugin.data.datasets.options import DatasetOptionError, scoped_options

# (modality folder, pid, camera): images. Train ids 1, 4; test ids 6, 0, 3 (0 is a
# real LLCM id). Ids 6 (camera 1) and 3 (camera 2) have both modalities in one camera.
TRAIN = {('vis', 4, 3): 2, ('vis', 1, 4): 2, ('nir', 4, 5): 1, ('nir', 1, 6): 2}
TEST = {('vis', 6, 1): 3, ('vis', 6, 4): 2, ('vis', 0, 3): 2, ('vis', 3, 2): 1,
        ('vis', 3, 5): 2, ('nir', 6, 1): 2, ('nir', 0, 5): 1, ('nir', 0, 6): 3,
        ('nir', 3, 2): 2}
TEST_IDS = [6, 0, 3]


@pytest.fixture
def tree(tmp_path):
    write_llcm_tree(tmp_path, TRAIN, TEST, TEST_IDS)
    return tmp_path


def build(root, name='llcm', split_id=0, **kw):
    return build_image_dataset(root, name, split_id, **kw)


def key(item):
    """(modality folder, pid from the path, 1-based camera from the name) of an item."""
    parts = item[0].split(os.sep)
    return parts[-3], int(parts[-2]), int(parts[-1].split('_c')[1][:2])


def test_train_items_relabel_in_pid_order_and_read_camera_from_name(tree):
    ds = build(tree)
    assert ds.protocol == 'llcm' and ds.num_train_pids == 2
    # pid 1 -> 0, pid 4 -> 1 although pid 4 comes first in train_vis.txt (label 0 there)
    got = sorted((key(it), it[1], it[2], it[4]) for it in ds.train)
    assert got == [(('nir', 1, 6), 0, 5, 1)] * 2 + [(('nir', 4, 5), 1, 4, 1)] + \
        [(('vis', 1, 4), 0, 3, 0)] * 2 + [(('vis', 4, 3), 1, 2, 0)] * 2


def test_pool_query_and_gallery_of_both_directions(tree):
    i2v, v2i = build(tree, 'llcm'), build(tree / 'LLCM', 'llcm_v2i')   # root may be LLCM/
    pool = i2v.test_pool
    assert pool == v2i.test_pool and len(pool) == 18
    # infrared then visible, each in sorted (id, camera, file) order; raw ids kept
    assert [key(it)[:2] for it in pool[:8]] == [('nir', 0)] * 4 + [('nir', 3)] * 2 + \
        [('nir', 6)] * 2
    assert [it[1] for it in pool[8:]] == [0, 0, 3, 3, 3, 6, 6, 6, 6, 6]
    assert i2v.query == pool[:8] and v2i.query == pool[8:]
    # one gallery image per (id, camera) of the other modality
    assert sorted((it[1], it[2]) for it in i2v.gallery) == [(0, 2), (3, 1), (3, 4), (6, 0),
                                                             (6, 3)]
    assert sorted((it[1], it[2]) for it in v2i.gallery) == [(0, 4), (0, 5), (3, 1), (6, 0)]


def reference_draw(folder, modality, trial):
    """LLCM data_manager.process_gallery_llcm, re-done on the test_* camera folders."""
    cams = [1, 2, 3, 4, 5, 6, 7, 8, 9] if modality == 'vis' else [1, 2, 4, 5, 6, 7, 8, 9]
    random.seed(trial)
    out = []
    for pid in sorted('{:04d}'.format(i) for i in TEST_IDS):
        for cam in cams:
            d = os.path.join(folder, 'test_' + modality, 'cam{}'.format(cam), pid)
            if os.path.isdir(d):
                out.append(os.path.basename(random.choice(sorted(os.listdir(d)))))
    return out


@pytest.mark.parametrize('name,gallery_mod', [('llcm', 'vis'), ('llcm_v2i', 'nir')])
def test_ten_trials_draw_what_the_reference_code_draws(tree, name, gallery_mod):
    ds = build(tree, name)
    (mode,) = ds.eval_modes()
    assert mode.num_trials == 10
    draws = []
    for t in range(10):
        want = reference_draw(str(tree / 'LLCM'), gallery_mod, t)
        got = [os.path.basename(ds.test_pool[i][0]) for i in mode.galleries[t]]
        assert got == want
        draws.append(tuple(got))
        assert [os.path.basename(it[0]) for it in build(tree, name, split_id=t).gallery] == want
    assert len(set(draws)) > 1
    state = random.getstate()
    build(tree, name).eval_modes()
    assert random.getstate() == state   # the global RNG is left alone


def test_trial_count_option(tree):
    with scoped_options({'test.num_trials': 3}):
        (mode,) = build(tree).eval_modes()
    assert mode.num_trials == 3
    assert build(tree).eval_modes()[0].num_trials == 10   # the default outside the scope


@pytest.mark.parametrize('variant,names,metrics', [
    ('corrected', ['infrared->visible [corrected]', 'visible->infrared [corrected]'],
     ['llcm', 'llcm']),
    ('reference', ['infrared->visible [reference]', 'visible->infrared [reference, transposed]'],
     ['llcm', 'llcm_transposed']),
])
def test_protocol_selection(tree, variant, names, metrics):
    with scoped_options({'llcm.protocol': variant}):
        ds = build(tree, 'llcm_v2i')
    matrix = ds.eval_modes(matrix=True)
    assert [m.name for m in matrix] == names and [m.metric for m in matrix] == metrics
    (own,) = ds.eval_modes()
    assert own.name == names[1]
    # the reference mode keeps the natural sets: only the metric transposes them
    assert own.query.tolist() == list(range(8, 18))
    assert {ds.test_pool[i][4] for i in own.galleries[0]} == {1}
    # the keyword wins over the option
    assert build(tree, 'llcm_v2i', protocol=variant).eval_modes()[0].metric == metrics[1]
    other = 'corrected' if variant == 'reference' else 'reference'
    with scoped_options({'llcm.protocol': other}):
        assert build(tree, 'llcm_v2i', protocol=variant).eval_modes()[0].metric == metrics[1]


@pytest.mark.parametrize('name,protocol,expected', [
    ('llcm', 'corrected', '0 of 8'),
    # visible id 6 camera 1 (3 images) and id 3 camera 2 (1 image): their only
    # infrared match shares their camera and is removed
    ('llcm_v2i', 'corrected', '4 of 10'),
    # transposed: the 4 drawn infrared images are the probes, all keep a match
    ('llcm_v2i', 'reference', '0 of 4'),
])
def test_summary_reports_queries_the_removal_leaves_without_match(tree, capsys, name, protocol,
                                                                   expected):
    build(tree, name, protocol=protocol, verbose=True)
    out = capsys.readouterr().out
    assert 'skipped by the metric): ' + expected in out


def test_bad_option_value(tree):
    with pytest.raises(DatasetOptionError, match="'llcm.protocol'.*'official'"):
        build(tree, protocol='official')
    with scoped_options({'llcm.protocol': 'paper'}):
        with pytest.raises(DatasetOptionError, match="'llcm.protocol'.*'paper'"):
            build(tree)


def test_missing_root_explains_layout_source_and_demo(tmp_path):
    assert_missing_root_explained(lambda: build(tmp_path / 'nowhere'), (
        str(tmp_path / 'nowhere' / 'LLCM'), 'idx/{train,test}_{vis,nir}.txt',
        'github.com/ZYK100/LLCM', 'configs/demo_llcm.yaml'))


def test_missing_index_file_is_named(tree):
    assert_missing_file_named(tree / 'LLCM' / 'idx' / 'test_id.txt',
                              lambda: build(tree), 'release agreement')


@pytest.mark.parametrize('fname,lineno,text,problem', [
    ('train_vis.txt', 2, 'vis/0004/0004_c03_s120001_f101_vis.jpg', 'integer label'),
    ('train_vis.txt', 1, 'vis/0004/0004-c03.jpg 0', 'expected'),
    ('train_nir.txt', 1, 'vis/0004/0004_c03_s120000_f100_vis.jpg 0', 'not a infrared image'),
    ('test_nir.txt', 2, 'nir/0000/0001_c06_s120000_f100_nir.jpg 0', 'must agree'),
    ('test_vis.txt', 3, 'vis/0006/0006_c01_s129999_f100_vis.jpg 0', 'does not exist'),
    ('train_nir.txt', 1, 'nir/0006/0006_c01_s120000_f100_nir.jpg 0', 'is a test id'),
    ('test_id.txt', 1, '0006,0000', 'not listed in'),
    ('test_id.txt', 1, '0006,0000,0003,0009', 'test id 9 has no image'),
    ('test_id.txt', 1, '0006;0000', 'integer ids'),
])
def test_bad_lines_name_file_and_line(tree, fname, lineno, text, problem):
    path = tree / 'LLCM' / 'idx' / fname
    replace_line(path, lineno, text)
    with pytest.raises(DatasetNotFoundError) as err:
        build(tree)
    msg = str(err.value)
    if problem == 'not listed in':   # test_vis.txt: lines 1-5 id 6, 6-7 id 0, 8 id 3
        path, lineno = tree / 'LLCM' / 'idx' / 'test_vis.txt', 8
    assert msg.startswith('{}, line {}:'.format(path, lineno)) and problem in msg


def test_query_id_without_gallery_image(tmp_path):
    # id 3 has visible images only: its visible queries could never match
    test = {k: v for k, v in TEST.items() if k[:2] != ('nir', 3)}
    write_llcm_tree(tmp_path, TRAIN, test, TEST_IDS)
    with pytest.raises(DatasetNotFoundError) as err:
        build(tmp_path)
    idx = tmp_path / 'LLCM' / 'idx'
    assert str(err.value) == '{}, line 8: id 3 has no image in {}, so its query would have ' \
                             'no match'.format(idx / 'test_vis.txt', idx / 'test_nir.txt')


def test_test_id_file_with_trailing_newline_and_no_copies(tmp_path):
    write_llcm_tree(tmp_path, TRAIN, TEST, TEST_IDS, copies=False)
    path = tmp_path / 'LLCM' / 'idx' / 'test_id.txt'
    path.write_text(path.read_text() + ',\n')   # the camera-folder copies are not needed
    assert build(tmp_path).test_ids == [0, 3, 6]
