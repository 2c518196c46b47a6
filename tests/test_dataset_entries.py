"""List-file entries that leave the dataset folder are refused with one line naming the
list file, the line and the entry (RegDB and LLCM idx files, HITSZ-VCM name lists,
BUPTCampus data_paths.json): a dataset someone sent cannot make a run read, cache or
train on files elsewhere. The refused files exist, so only the folder check stops them."""
import json
import os

import pytest

import test_datasets_bupt as bupt
import test_datasets_llcm as llcm
import test_datasets_regdb as regdb
import test_datasets_vcm as vcm
from dataset_trees import jpeg_bytes, replace_line, write_bupt_tree, write_llcm_tree, \
    write_regdb_tree, write_vcm_tree
from vireid_plugin.data.synthetic import REAL_MARKER
from vireid_plugin.errors import UserError
from vireid_plugin.safe_paths import UnsafePathError, entry_path


@pytest.fixture
def outside(tmp_path):
    """An image outside every dataset folder (what a hostile entry points at)."""
    path = tmp_path / 'outside' / 'secret.jpg'
    path.parent.mkdir()
    path.write_bytes(jpeg_bytes())
    return path


def _refused(build, where, entry, why):
    with pytest.raises(UnsafePathError) as err:
        build()
    msg = str(err.value)
    assert isinstance(err.value, UserError) and '\n' not in msg
    assert msg.startswith(where) and repr(entry) in msg and why in msg
    return msg


@pytest.mark.parametrize('entry', ['../outside/secret.jpg', 'Visible/../../outside/secret.jpg'])
def test_regdb_entries_with_dotdot_are_refused(tmp_path, outside, entry):
    write_regdb_tree(tmp_path, regdb.TRIALS)
    idx = tmp_path / 'RegDB' / 'idx' / 'train_visible_1.txt'
    replace_line(idx, 2, '{} 0'.format(entry))
    _refused(lambda: regdb.build(tmp_path), '{}, line 2'.format(idx), entry,
             'leaves the dataset folder')


def test_llcm_entries_with_dotdot_are_refused(tmp_path, outside):
    write_llcm_tree(tmp_path, llcm.TRAIN, llcm.TEST, llcm.TEST_IDS)
    idx = tmp_path / 'LLCM' / 'idx' / 'train_vis.txt'
    entry = 'vis/0004/0004_c03_x/../../../../outside/secret.jpg'   # passes the name pattern
    replace_line(idx, 1, '{} 0'.format(entry))
    _refused(lambda: llcm.build(tmp_path), '{}, line 1'.format(idx), entry,
             'leaves the dataset folder')


def test_hitsz_vcm_frame_names_with_dotdot_are_refused(tmp_path, outside):
    write_vcm_tree(tmp_path, vcm.TRAIN, vcm.TEST, vcm.QUERY_IDX)
    names = tmp_path / 'HITSZ-VCM' / 'info' / 'train_name.txt'
    # row 1 (pid 5, IR, D2): frame 2's name climbs out of <split>/0005/ir/D2/
    replace_line(names, 2, '0005M1D2T1F2/../../../../../../outside/secret.jpg')
    _refused(lambda: vcm.build(tmp_path), '{}, line 2'.format(names),
             '0005/ir/D2/2/../../../../../../outside/secret.jpg', 'leaves the dataset folder')


@pytest.mark.parametrize('frame,why', [('ABS', 'is an absolute path'),
                                       ('../../outside/secret.jpg', 'leaves the dataset folder')])
def test_bupt_frame_paths_outside_data_are_refused(tmp_path, outside, frame, why):
    folder = write_bupt_tree(tmp_path, bupt.tracklets(), bupt.SPLITS)
    frame = str(outside) if frame == 'ABS' else frame
    json_path = os.path.join(folder, 'data_paths.json')
    with open(json_path) as f:
        paths = json.load(f)
    paths['10']['RGB']['LS3']['1'][1] = frame   # train.txt line 1: 10 RGB/IR LS3 1
    with open(json_path, 'w') as f:
        json.dump(paths, f)
    msg = _refused(lambda: bupt.build(tmp_path), '{}, tracklet 10 RGB LS3 1'.format(json_path),
                   frame, why)
    assert 'train.txt, line 1' in msg


def test_regdb_leading_slash_stays_relative_as_in_agw(tmp_path):
    """AGW joins '<root>/' + entry, so '/Visible/..' names a file inside the folder."""
    write_regdb_tree(tmp_path, regdb.TRIALS)
    idx = tmp_path / 'RegDB' / 'idx' / 'train_visible_1.txt'
    first = idx.read_text().splitlines()[0]
    replace_line(idx, 1, '/' + first)
    assert regdb.build(tmp_path).train[0][0] == os.path.join(
        str(tmp_path), 'RegDB', first.split()[0])


def test_a_linked_folder_inside_the_dataset_is_allowed(tmp_path):
    """Images kept elsewhere are linked into the dataset folder: the check is on the
    entry as written, so links keep working."""
    target = tmp_path / 'elsewhere'
    target.mkdir()
    (target / 'a.jpg').write_bytes(b'x')
    data = tmp_path / 'data'
    data.mkdir()
    os.symlink(str(target), str(data / 'linked'))
    assert entry_path(str(data), 'linked/a.jpg', 'list, line 1') == str(data / 'linked' / 'a.jpg')
    for entry in ('', '.', 'linked/../..'):
        with pytest.raises(UnsafePathError):
            entry_path(str(data), entry, 'list, line 1')


def test_a_run_on_a_hostile_list_stops_before_writing_anything(cli, tmp_path, outside, capfd):
    """scripts/main.py on a RegDB whose idx file climbs out: one line, exit status 1, and
    no file written anywhere (no cache beside the images, no run folder)."""
    root = tmp_path / 'data'
    write_regdb_tree(root, regdb.TRIALS)
    # a few ids: declared real data, or the run takes it for an older synthetic tree
    (root / 'RegDB' / REAL_MARKER).write_text('')
    idx = root / 'RegDB' / 'idx' / 'train_thermal_1.txt'
    replace_line(idx, 1, '../../outside/secret.jpg 0')
    before = sorted(str(p) for p in tmp_path.rglob('*'))
    config = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          'configs', 'demo_regdb.yaml')
    rc = cli.main(['--config-file', config, '--root', str(root), 'data.save_dir',
                   str(tmp_path / 'run'), 'data.synthetic', 'False', 'data.workers', '0'])
    err = capfd.readouterr().err
    assert rc == 1 and 'Traceback' not in err
    line = [x for x in err.splitlines() if 'leaves the dataset folder' in x]
    assert len(line) == 1 and '{}, line 1'.format(idx) in line[0]
    after = sorted(str(p) for p in tmp_path.rglob('*'))
    assert [p for p in after if p not in before and not p.startswith(str(tmp_path / 'run'))] \
        == []
