import os

import pytest
import torchvision.transforms as T

from dataset_trees import (assert_missing_file_named, assert_missing_root_explained, replace_line,
                           write_bupt_tree)
from vireid_plugin.data.datasets.buptcampus import dataset as buptcampus
from vireid_plugin.data.datasets.common import DatasetNotFoundError
from vireid_plugin.data.datasets.options import DatasetOptionError, scoped_options
from vireid_plugin.registry import VIDEO_DATASETS

# Cameras LS3 G25 CQ1 W4 TSG1 TSG2 are camids 0..5.
TRAIN = [(10, 'RGB/IR', 'LS3', 1), (10, 'RGB/IR', 'G25', 1), (2, 'RGB/IR', 'CQ1', 1),
         (2, 'RGB/IR', 'W4', 1)]
AUX = [(30, 'RGB/IR', 'TSG1', 1), (30, 'RGB/IR', 'TSG1', 2), (31, 'RGB/IR', 'G25', 1)]
QUERY = [(20, 'RGB', 'G25', 1), (21, 'IR', 'LS3', 1), (22, 'RGB', 'CQ1', 1),
         (23, 'RGB', 'W4', 1)]
GALLERY = [(20, 'RGB', 'G25', 2), (20, 'IR', 'G25', 2), (20, 'IR', 'W4', 1),
           (22, 'IR', 'CQ1', 2), (22, 'RGB', 'CQ1', 2), (23, 'IR', 'TSG1', 1),
           (23, 'RGB', 'TSG1', 1), (21, 'RGB', 'TSG2', 1), (21, 'IR', 'TSG2', 1)]
# Hand-derived:
# corrected visible->infrared: query 22 (CQ1) has infrared tracklets of id 22 only
#   in CQ1, removed as same camera: 1 of 3 queries unmatched.
# reference, test batch 3: 3 visible queries kept (3 % 3 = 0); visible gallery
#   lines 1, 5, 7, 8 -> keep 3, drop line 8 (21 RGB TSG2), the only visible
#   tracklet of id 21: infrared query 21 is left without a match.


def tracklets():
    out = {}
    for rows, n in ((TRAIN, 6), (AUX, 3)):
        for pid, _, cam, tid in rows:
            out[pid, 'RGB', cam, tid] = out[pid, 'IR', cam, tid] = n
    for pid, mod, cam, tid in GALLERY:
        out[pid, mod, cam, tid] = 5
    for pid, mod, cam, tid in QUERY:
        out[pid, mod, cam, tid] = 12
    return out


SPLITS = {'train.txt': TRAIN, 'train_auxiliary.txt': AUX, 'query.txt': QUERY,
          'gallery.txt': GALLERY}

TORCHREID_KWARGS = dict(transform=T.ToTensor(), combineall=False, split_id=0,
                        cuhk03_labeled=False, cuhk03_classic_split=False,
                        market1501_500k=False, seq_len=4, sample_method='evenly',
                        verbose=False)


@pytest.fixture
def tree(tmp_path):
    write_bupt_tree(tmp_path, tracklets(), SPLITS)
    return tmp_path


@pytest.fixture
def batch3(monkeypatch):
    monkeypatch.setattr(buptcampus, 'REFERENCE_TEST_BATCH', 3)


def build(root, name='buptcampus', **kw):
    """The dataset under M3-ReID's protocol unless ``protocol`` is given (None: the
    configured one); the tiny tree is shorter than the default protocol's test batch."""
    kw.setdefault('protocol', 'm3reid')
    kwargs = dict(TORCHREID_KWARGS, mode='train')
    kwargs.update(kw, root=str(root))
    return VIDEO_DATASETS.get(name)(**kwargs)


def desc(items):
    """(pid, camid, modality, number of frames) of each item."""
    return [(pid, cam, mod, len(paths)) for paths, pid, cam, _, mod in items]


def test_train_pairs_give_two_items_with_one_label(tree):
    ds = build(tree)
    assert ds.protocol == 'vcm' and ds.frame_rule == 'chunk' and ds.num_train_pids == 2
    # pid 2 -> 0, pid 10 -> 1 (ascending pid); each line: its RGB then its IR tracklet
    assert desc(ds.train) == [(1, 0, 0, 6), (1, 0, 1, 6), (1, 1, 0, 6), (1, 1, 1, 6),
                              (0, 2, 0, 6), (0, 2, 1, 6), (0, 3, 0, 6), (0, 3, 1, 6)]
    rel = os.path.relpath(ds.train[1][0][0], str(tree / 'BUPTCampus')).split(os.sep)
    assert rel == ['DATA', '10', 'IR', 'LS3', '10_IR_LS3_1_500.jpg']
    assert {it[3] for it in ds.train} == {0}


def test_auxiliary_set_is_an_option(tree, capsys):
    with scoped_options({'bupt.use_auxiliary': True}):
        ds = build(tree, verbose=True)
    aux = [it for it in ds.train if it[3] == 1]
    # ids 30, 31 get labels 2, 3 after the two primary ids; two items per line
    assert desc(aux) == [(2, 4, 0, 3), (2, 4, 1, 3), (2, 4, 0, 3), (2, 4, 1, 3),
                         (3, 1, 0, 3), (3, 1, 1, 3)]
    assert ds.num_train_pids == 4 and ds.num_auxiliary == 6
    assert '6 tracklets added to training as dsetid 1' in capsys.readouterr().out
    # off by default: the auxiliary file is not even needed then
    os.remove(tree / 'BUPTCampus' / 'train_auxiliary.txt')
    assert len(build(tree).train) == 8
    with pytest.raises(DatasetNotFoundError, match='bupt.use_auxiliary'):
        build(tree, use_auxiliary=True)


def test_query_gallery_and_pool_of_both_directions(tree):
    v2i, i2v = build(tree), build(tree / 'BUPTCampus', 'buptcampus_i2v')
    assert v2i.test_pool == i2v.test_pool and len(v2i.test_pool) == 13
    assert desc(v2i.query) == [(20, 1, 0, 12), (22, 2, 0, 12), (23, 3, 0, 12)]
    assert desc(v2i.gallery) == [(20, 1, 1, 5), (20, 3, 1, 5), (22, 2, 1, 5), (23, 4, 1, 5),
                                 (21, 5, 1, 5)]
    assert desc(i2v.query) == [(21, 0, 1, 12)]
    assert [d[0] for d in desc(i2v.gallery)] == [20, 22, 23, 21]
    matrix = v2i.eval_modes(matrix=True)
    assert [m.name for m in matrix] == ['visible->infrared [m3reid]',
                                        'infrared->visible [m3reid]']
    assert [m.metric for m in matrix] == ['vcm', 'vcm'] and matrix[0].num_trials == 1
    assert [v2i.test_pool[i] for i in matrix[0].query] == v2i.query
    assert [v2i.test_pool[i] for i in matrix[1].galleries[0]] == i2v.gallery


def test_auxnet_protocol_truncates_visible_lists_and_removes_nothing(tree, batch3, capsys):
    with scoped_options({'bupt.protocol': 'auxnet'}):
        v2i = build(tree, verbose=True, protocol=None)
        out = capsys.readouterr().out
        i2v = build(tree, 'buptcampus_i2v', verbose=True, protocol=None)
        out_i2v = capsys.readouterr().out
    assert v2i.protocol == 'regdb' and v2i.frame_rule == 'uniform'
    assert v2i.dropped == {'visible queries': 0, 'visible gallery': 1}
    assert len(v2i.query) == 3 and len(v2i.gallery) == 5          # infrared gallery untouched
    assert [it[1] for it in i2v.gallery] == [20, 22, 23]          # 21 RGB TSG2 dropped
    names = [m.name for m in i2v.eval_modes(matrix=True)]
    assert names == ['visible->infrared [auxnet]', 'infrared->visible [auxnet]']
    assert 'drops the last 0 visible queries and the last 1 visible gallery' in out
    assert 'skipped by the metric): 0 of 3' in out
    assert 'skipped by the metric): 1 of 1' in out_i2v


def test_m3reid_protocol_reports_queries_the_same_camera_removal_leaves_unmatched(
        tree, capsys):
    build(tree, verbose=True)
    assert 'visible->infrared [m3reid]: queries left without a match (skipped by the ' \
           'metric): 1 of 3' in capsys.readouterr().out


def test_auxnet_batch_is_the_authors_64(tmp_path):
    # 65 ids, each a visible query and a visible + infrared gallery pair: the
    # authors' sampler keeps the first 64 visible queries and visible gallery items
    ids = range(100, 165)
    query = [(i, 'RGB', 'LS3', 1) for i in ids] + [(100, 'IR', 'TSG1', 1)]
    gallery = [(i, m, 'G25', 1) for i in ids for m in ('RGB', 'IR')]
    lengths = {(p, m, c, t): 1 for p, m, c, t in query + gallery}
    lengths.update({(1, m, 'LS3', 1): 1 for m in ('RGB', 'IR')})
    splits = {'train.txt': [(1, 'RGB/IR', 'LS3', 1)], 'query.txt': query,
              'gallery.txt': gallery}
    write_bupt_tree(tmp_path, lengths, splits)
    assert [it[1] for it in build(tmp_path, protocol='auxnet').query] == list(range(100, 164))
    i2v = build(tmp_path, 'buptcampus_i2v', protocol='auxnet')
    assert [it[1] for it in i2v.gallery] == list(range(100, 164)) and len(i2v.query) == 1
    # 63 visible queries: 63 % 64 = 63 would leave none -> a clear error
    write_bupt_tree(tmp_path, lengths, dict(splits, **{'query.txt': query[:63] + query[-1:]}))
    with pytest.raises(DatasetOptionError, match='keeps none of the 63 visible tracklets of '
                                                 'query.txt'):
        build(tmp_path, protocol='auxnet')
    assert buptcampus.reference_truncation(540) == 512
    assert buptcampus.reference_truncation(2422) == 2368
    assert buptcampus.reference_truncation(128) == 128   # the authors' code would drop all


def red_levels(img):
    return [round(float(frame[0].mean()) * 255 / 10) for frame in img]


@pytest.mark.parametrize('protocol,expected', [
    ('m3reid', [0, 3, 6, 9, 11]),   # chunks of ceil(12/5) = 3, first of each
    ('auxnet', [0, 2, 4, 7, 9]),    # linspace(0, 12, 5): 0, 2.4, 4.8, 7.2, 9.6
])
def test_test_clips_follow_the_protocols_frame_rule(tree, batch3, protocol, expected):
    ds = build(tree, mode='query', seq_len=5, protocol=protocol)
    assert red_levels(ds[0]['img']) == expected
    assert ds[0]['modality'] == 0 and ds[0]['camid'] == 1 and ds[0]['pid'] == 20


def test_missing_root_explains_layout_source_and_demo(tmp_path):
    assert_missing_root_explained(lambda: build(tmp_path / 'nowhere'), (
        str(tmp_path / 'nowhere' / 'BUPTCampus'), 'data_paths.json',
        'github.com/dyhBUPT/BUPTCampus', 'configs/demo_bupt.yaml'))


def test_missing_file_is_named(tree):
    assert_missing_file_named(tree / 'BUPTCampus' / 'gallery.txt', lambda: build(tree), 'Baidu')


@pytest.mark.parametrize('fname,lineno,text,problem', [
    ('train.txt', 2, '10 RGB/IR G25', 'expected "<pid> <RGB/IR>'),
    ('train.txt', 1, '10 RGB LS3 1', 'expected "<pid> <RGB/IR>'),
    ('query.txt', 3, '22 RGB/IR CQ1 1', 'expected "<pid> <RGB|IR>'),
    ('query.txt', 1, '20 RGB G26 1', 'camera: LS3|G25'),
    ('gallery.txt', 4, '22 IR CQ1 9', 'is not in'),
    ('train.txt', 3, '20 RGB/IR G25 2', 'also a test id'),
    ('query.txt', 4, '23 RGB TSG1 1', 'has no infrared tracklet in gallery.txt'),
])
def test_bad_lines_name_file_and_line(tree, fname, lineno, text, problem):
    path = tree / 'BUPTCampus' / fname
    if problem.startswith('has no'):   # id 23's only infrared tracklet goes
        replace_line(tree / 'BUPTCampus' / 'gallery.txt', 6, '22 IR CQ1 2')
        text = '23 RGB W4 1'
    replace_line(path, lineno, text)
    with pytest.raises(DatasetNotFoundError) as err:
        build(tree)
    msg = str(err.value)
    assert msg.startswith('{}, line {}:'.format(path, lineno)) and problem in msg, msg


def test_missing_frame_and_bad_json(tree):
    os.remove(tree / 'BUPTCampus' / 'DATA' / '22' / 'IR' / 'CQ1' / '22_IR_CQ1_2_503.jpg')
    with pytest.raises(DatasetNotFoundError, match=r'gallery\.txt, line 4: listed frame does '
                                                   r'not exist: .*22_IR_CQ1_2_503\.jpg'):
        build(tree)
    (tree / 'BUPTCampus' / 'data_paths.json').write_text('{"1": {\n"RGB": }')
    with pytest.raises(DatasetNotFoundError, match=r'data_paths\.json, line 2: not valid JSON'):
        build(tree)
    (tree / 'BUPTCampus' / 'data_paths.json').write_text('[1, 2]')   # JSON, not an object
    with pytest.raises(DatasetNotFoundError, match=r'data_paths\.json, line 1: expected an '
                                                   r'object \{pid: .*\]\}\}\}\}, got list'):
        build(tree)


def test_auxiliary_ids_must_be_new(tree):
    replace_line(tree / 'BUPTCampus' / 'train_auxiliary.txt', 3, '10 RGB/IR G25 1')
    with pytest.raises(DatasetNotFoundError, match=r'train_auxiliary\.txt, line 3: id 10 is '
                                                   r'also in .*train\.txt'):
        build(tree, use_auxiliary=True)


def test_default_protocol_is_the_dataset_authors_and_old_names_still_read(tree, batch3):
    # the default (the configured bupt.protocol) is the authors' test.py: their truncation
    # and no removal; 'reference' and 'corrected' (earlier names) still select the two
    default = build(tree, protocol=None)
    assert default.protocol_variant == 'auxnet' and default.protocol == 'regdb'
    assert [m.name for m in default.eval_modes()] == ['visible->infrared [auxnet]']
    assert build(tree, protocol='reference').protocol_variant == 'auxnet'
    corrected = build(tree, protocol='corrected')
    assert corrected.protocol_variant == 'm3reid' and corrected.protocol == 'vcm'
