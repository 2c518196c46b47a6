import os

import pytest
import torchvision.transforms as T

from dataset_trees import (assert_missing_file_named, assert_missing_root_explained, replace_line,
                           write_vcm_tree)
from vireid_plugin.data.datasets import hitsz_vcm  # noqa: F401  (registers the names)
from vireid_plugin.data.datasets.common import DatasetNotFoundError
from vireid_plugin.data.datasets.options import scoped_options
from vireid_plugin.registry import VIDEO_DATASETS

# Rows (m, pid, camera D<k>, frames); m 1 = IR, 2 = RGB.
TRAIN = [(1, 5, 2, 12), (2, 5, 3, 12), (1, 5, 2, 5), (2, 2, 3, 12), (1, 2, 4, 12)]
TEST = [(2, 3, 1, 14), (1, 3, 1, 13), (2, 4, 1, 14), (1, 4, 1, 13), (2, 3, 1, 4), (1, 4, 2, 3)]
QUERY_IDX = [[2, 4], [6]]   # two lines, concatenated
# Name-list rows: train 1-12, 13-24, 25-29, 30-41, 42-53; test 1-14, 15-27, 28-41,
# 42-54, 55-58, 59-61.

# The keyword arguments torchreid's VideoDataManager passes.
TORCHREID_KWARGS = dict(transform=T.ToTensor(), combineall=False, root=None, split_id=0,
                        cuhk03_labeled=False, cuhk03_classic_split=False,
                        market1501_500k=False, seq_len=4, sample_method='evenly',
                        verbose=False)


@pytest.fixture
def tree(tmp_path):
    write_vcm_tree(tmp_path, TRAIN, TEST, QUERY_IDX)
    return tmp_path


def build(root, name='hitsz_vcm', **kw):
    kwargs = dict(TORCHREID_KWARGS, mode='train')
    kwargs.update(kw, root=str(root))
    return VIDEO_DATASETS.get(name)(**kwargs)


def rel(path, root):
    return os.path.relpath(path, str(root)).split(os.sep)


@pytest.mark.parametrize('layout', ['split', 'flat', 'mixed'])
def test_parses_tracklets_in_each_layout(tmp_path, layout):
    write_vcm_tree(tmp_path, TRAIN, TEST, QUERY_IDX, layout=layout, nested=layout != 'flat')
    folder = tmp_path / 'HITSZ-VCM' if layout != 'flat' else tmp_path
    ds = build(tmp_path)
    assert ds.protocol == 'vcm'
    # train: the 5-frame row is dropped; raw pids 2, 5 -> 0, 1; D<k> -> k-1
    assert [(len(p), pid, cam, mod) for p, pid, cam, _, mod in ds.train] == [
        (12, 1, 1, 1), (12, 1, 2, 0), (12, 0, 2, 0), (12, 0, 3, 1)]
    first = rel(ds.train[0][0][0], folder)
    assert first == (['Train'] if layout != 'flat' else []) + ['0005', 'ir', 'D2', '1.jpg']
    # query = IR rows 2, 4 (row 6 too short); gallery = RGB rows 1, 3 (row 5 too short)
    assert [(len(p), pid, cam, mod) for p, pid, cam, _, mod in ds.query] == [
        (13, 3, 0, 1), (13, 4, 0, 1)]
    assert [(len(p), pid, cam, mod) for p, pid, cam, _, mod in ds.gallery] == [
        (14, 3, 0, 0), (14, 4, 0, 0)]
    assert rel(ds.gallery[1][0][-1], folder) == (['Test'] if layout == 'split' else []) + [
        '0004', 'rgb', 'D1', '14.jpg']
    assert ds.dropped == {'train': 1, 'infrared test': 1, 'visible test': 1}


def test_v2i_swaps_query_and_gallery(tree):
    i2v, v2i = build(tree), build(tree, 'hitsz_vcm_v2i')
    assert v2i.query == i2v.gallery and v2i.gallery == i2v.query
    assert v2i.test_pool == i2v.test_pool == i2v.query + i2v.gallery


@pytest.mark.parametrize('name,query,gallery', [
    ('hitsz_vcm', [0, 1], [2, 3]), ('hitsz_vcm_v2i', [2, 3], [0, 1])])
def test_eval_modes(tree, name, query, gallery):
    ds = build(tree, name)
    (mode,) = ds.eval_modes()
    assert mode.metric == 'vcm' and mode.num_trials == 1
    assert mode.query.tolist() == query and mode.galleries[0].tolist() == gallery
    assert [ds.test_pool[i] for i in mode.query] == ds.query
    matrix = ds.eval_modes(matrix=True)
    assert [m.name for m in matrix] == ['infrared->visible', 'visible->infrared']
    assert [m.query.tolist() for m in matrix] == [[0, 1], [2, 3]]
    assert {ds.test_pool[i][4] for i in matrix[1].galleries[0]} == {1}


def test_min_seq_len_from_option_and_keyword(tree, capsys):
    with scoped_options({'vcm.min_seq_len': 4}):
        ds = build(tree, verbose=True)
        # an explicit keyword wins over the option
        assert build(tree, min_seq_len=1).dropped == {
            'train': 0, 'infrared test': 0, 'visible test': 0}
    # 4 frames is enough now; only the 3-frame IR test row goes
    assert ds.dropped == {'train': 0, 'infrared test': 1, 'visible test': 0}
    assert len(ds.gallery) == 3
    assert 'dropped tracklets shorter than 4 frames' in capsys.readouterr().out
    # outside the scope: the default 12 again (both 5-frame and shorter rows go)
    assert build(tree).min_seq_len == 12


def red_levels(img):
    """Which frame (0-based position in its tracklet) each clip image shows."""
    return [round(float(frame[0].mean()) * 255 / 10) for frame in img]


def test_test_items_use_first_frame_of_each_chunk(tree):
    query = build(tree, mode='query', seq_len=4)
    item = query[0]
    assert item['img'].shape == (4, 3, 8, 4)
    assert item['modality'] == 1 and item['pid'] == 3 and item['camid'] == 0
    # 13 frames, S=4: c=4, padded 0..12,12,12,12 -> chunks start at 0,4,8,12
    assert red_levels(item['img']) == [0, 4, 8, 12]
    # 14 frames, S=6: c=3, padded to 18 -> 0,3,6,9,12 and the pad chunk's 13
    gallery = build(tree, mode='gallery', seq_len=6)
    assert red_levels(gallery[1]['img']) == [0, 3, 6, 9, 12, 13]
    assert gallery[1]['modality'] == 0


def test_train_items_draw_inside_each_chunk(tree):
    ds = build(tree, mode='train', seq_len=4)
    for _ in range(3):
        levels = red_levels(ds[0]['img'])   # 12 frames: chunks of 3
        assert all(3 * k <= lv < 3 * k + 3 for k, lv in enumerate(levels))


def test_missing_root_explains_layout_source_and_demo(tmp_path):
    assert_missing_root_explained(lambda: build(tmp_path / 'nowhere'), (
        str(tmp_path / 'nowhere' / 'HITSZ-VCM'), 'query_IDX', 'Train/<pid4>',
        'github.com/VCM-project233/MITML', 'configs/demo_vcm.yaml'))


def test_missing_info_file_is_named(tree):
    assert_missing_file_named(tree / 'HITSZ-VCM' / 'info' / 'query_IDX.txt',
                              lambda: build(tree), 'MITML')


@pytest.mark.parametrize('edit,fname,lineno,problem', [
    (('track_train_info.txt', 2, '2 13 24 0005'), 'track_train_info.txt', 2, '5 integers'),
    (('track_test_info.txt', 6, '1 60 70 0004 2'), 'track_test_info.txt', 6, 'outside'),
    (('track_train_info.txt', 1, '2 1 12 0005 2'), 'track_train_info.txt', 1, 'modality'),
    (('track_train_info.txt', 4, '2 30 41 0007 3'), 'track_train_info.txt', 4, 'pid column'),
    (('train_name.txt', 3, '0005-M1D2'), 'train_name.txt', 3, 'frame name like'),
    (('query_IDX.txt', 2, '6 1'), 'query_IDX.txt', 2, 'visible tracklet'),
    (('query_IDX.txt', 2, '99'), 'query_IDX.txt', 2, '1..6'),
    (('query_IDX.txt', 2, '2'), 'query_IDX.txt', 2, 'listed twice'),
    (('query_IDX.txt', 2, ''), 'track_test_info.txt', 6, 'missing from'),
])
def test_bad_lines_name_file_and_line(tree, edit, fname, lineno, problem):
    info = tree / 'HITSZ-VCM' / 'info'
    replace_line(info / edit[0], edit[1], edit[2])
    with pytest.raises(DatasetNotFoundError) as err:
        build(tree)
    msg = str(err.value)
    assert msg.startswith('{}, line {}:'.format(info / fname, lineno)) and problem in msg


def test_missing_frame_names_the_name_file_line(tree):
    os.remove(tree / 'HITSZ-VCM' / 'Train' / '0005' / 'ir' / 'D2' / '2.jpg')
    with pytest.raises(DatasetNotFoundError, match=r'train_name\.txt, line 2: listed frame '
                                                   r'does not exist'):
        build(tree)


def test_query_id_without_gallery_tracklet(tmp_path):
    # id 4 has an infrared tracklet (row 3) but no visible one
    write_vcm_tree(tmp_path, TRAIN, [(2, 3, 1, 14), (1, 3, 1, 13), (1, 4, 1, 13)], [[2, 3]])
    with pytest.raises(DatasetNotFoundError, match=r'track_test_info\.txt, line 3: id 4 has '
                                                   r'no visible tracklet'):
        build(tmp_path)


def test_min_seq_len_that_empties_a_subset_is_an_error(tree):
    # every train tracklet has at most 12 frames
    with pytest.raises(DatasetNotFoundError, match='drops all 5 train tracklets'):
        build(tree, min_seq_len=13)
