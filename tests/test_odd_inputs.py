"""Odd dataset inputs: what is left out is counted in one line, what is wrong is one error
naming the file (docs/robustness.md, "Odd inputs")."""
import os
import tracemalloc

import numpy as np
import pytest

from tests.dataset_trees import write_regdb_tree, write_sysu_tree
from vireid_plugin.data.datasets.common import DatasetNotFoundError
from vireid_plugin.data.datasets.regdb import RegDB
from vireid_plugin.data.datasets.sysu_mm01 import SYSUMM01
from vireid_plugin.data.datasets.sysu_mm01.dataset import load_rand_perm
from vireid_plugin.data.sampler import CrossModalIdentitySampler
from vireid_plugin.errors import UserError

IMAGES = {(1, 1): 2, (1, 3): 2, (3, 2): 1, (3, 3): 1, (5, 5): 1, (5, 6): 1,
          (2, 1): 2, (2, 3): 1, (4, 4): 2, (4, 6): 1}
SPLITS = {'train': [1, 3], 'val': [5], 'test': [2, 4]}


def _warnings(out):
    return [line for line in out.splitlines() if 'Warning' in line]


# ------------------------------------------------------------------ the sampler
def test_one_modality_ids_are_counted_once(capsys):
    # id 1 both modalities; id 2: 3 visible only; id 3: 1 infrared only
    items = [('a', 1, 0, 0, 0), ('b', 1, 2, 0, 1), ('c', 2, 0, 0, 0), ('d', 2, 0, 0, 0),
             ('e', 2, 1, 0, 0), ('f', 3, 2, 0, 1)]
    sampler = CrossModalIdentitySampler(items, batch_size=2, num_instances=1, seed=0)
    (line,) = _warnings(capsys.readouterr().out)
    assert sampler.num_excluded_ids == 2
    assert '2 of 3 training ids' in line and '4 images' in line and 'ids 2, 3' in line


def test_no_line_when_every_id_has_both_modalities(capsys):
    items = [('a', 1, 0, 0, 0), ('b', 1, 2, 0, 1)]
    CrossModalIdentitySampler(items, batch_size=2, num_instances=1, seed=0)
    assert not _warnings(capsys.readouterr().out)


# ------------------------------------------------------------------ SYSU-MM01 scan
def test_dangling_and_looping_links_are_counted(tmp_path, capsys):
    folder = write_sysu_tree(tmp_path / 'links', IMAGES, SPLITS)
    base = os.path.join(folder, 'cam1', '0002')
    os.symlink(os.path.join(base, 'gone.jpg'), os.path.join(base, '0009.jpg'))   # dangling
    os.symlink(os.path.join(base, '0008.jpg'), os.path.join(base, '0008.jpg'))   # a loop
    loop_dir = os.path.join(folder, 'cam5', '0004')
    os.symlink(loop_dir, loop_dir)                                              # a folder loop
    plain = SYSUMM01(root=str(tmp_path / 'links'), verbose=False)
    (line,) = _warnings(capsys.readouterr().out)
    assert '3 entries lead nowhere' in line and 'SYSU-MM01' in line
    # the usable images are all there: id 2 keeps its 2 cam1 images
    assert sum(1 for it in plain.test_pool if '/cam1/0002/' in it[0]) == 2


def test_a_clean_tree_prints_no_warning(tmp_path, capsys):
    write_sysu_tree(tmp_path / 'clean', IMAGES, SPLITS)
    SYSUMM01(root=str(tmp_path / 'clean'), verbose=False)
    assert not _warnings(capsys.readouterr().out)


def test_byte_order_mark_in_a_split_file(tmp_path):
    folder = write_sysu_tree(tmp_path / 'bom', IMAGES, SPLITS)
    path = os.path.join(folder, 'exp', 'train_id.txt')
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(b'\xef\xbb\xbf' + data)
    dataset = SYSUMM01(root=str(tmp_path / 'bom'), verbose=False)
    # ids 1, 3 (the first one behind the mark) and val id 5 (sysu.train_with_val default)
    assert dataset.num_train_pids == 3


# ------------------------------------------------------------------ rand_perm_cam.mat
def _perm_cells(value):
    import scipy.io  # noqa: F401 (savemat writes object arrays as cells)
    top = np.empty((6, 1), dtype=object)
    for cam in range(6):
        inner = np.empty((3, 1), dtype=object)
        for pid in range(3):
            inner[pid, 0] = np.array([[1.0, 2.0], [2.0, 1.0]])
        top[cam, 0] = inner
    top[0, 0][1, 0] = np.array([[value, 2.0]])
    return top


def test_fractional_mat_indices_are_refused(tmp_path):
    import scipy.io
    path = str(tmp_path / 'frac.mat')
    scipy.io.savemat(path, {'rand_perm_cam': _perm_cells(1.7)})
    with pytest.raises(DatasetNotFoundError) as err:
        load_rand_perm(path)
    assert path in str(err.value) and 'non-integer' in str(err.value) and '1.7' in str(err.value)
    ok = str(tmp_path / 'ok.mat')
    scipy.io.savemat(ok, {'rand_perm_cam': _perm_cells(1.0)})
    assert load_rand_perm(ok)[0][1].tolist() == [[1, 2]]


def test_a_large_mat_variable_is_refused_before_its_data_is_read(tmp_path):
    import scipy.io
    path = str(tmp_path / 'zeros.mat')
    scipy.io.savemat(path, {'rand_perm_cam': np.zeros((5000, 5000), dtype=np.uint8)},
                     do_compression=True)
    assert os.path.getsize(path) < 1e6   # 25 MB of data, compressed
    tracemalloc.start()
    try:
        with pytest.raises(DatasetNotFoundError, match='5000x5000'):
            load_rand_perm(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5e6   # the array itself would be 25e6 bytes


# ------------------------------------------------------------------ list files
REGDB = {1: {'train': {1: 0, 2: 1}, 'test': {3: 0, 4: 1}}}


def test_byte_order_mark_in_a_regdb_list(tmp_path):
    folder = write_regdb_tree(tmp_path, REGDB)
    path = os.path.join(folder, 'idx', 'train_visible_1.txt')
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(b'\xef\xbb\xbf' + data)
    dataset = RegDB(root=str(tmp_path), verbose=False)
    assert len(dataset.train) == 8   # 2 ids x 2 images x 2 modalities


def test_a_list_file_that_is_not_utf8_is_one_error(tmp_path):
    folder = write_regdb_tree(tmp_path, REGDB)
    path = os.path.join(folder, 'idx', 'test_thermal_1.txt')
    with open(path, 'ab') as f:
        f.write(b'Thermal/4/caf\xe9.bmp 1\n')
    with pytest.raises(UserError) as err:
        RegDB(root=str(tmp_path), verbose=False)
    msg = str(err.value)
    assert path in msg and 'line 5' in msg and 'UTF-8' in msg and '\n' not in msg


@pytest.mark.parametrize('compressed', [False, True])
def test_mat_headers_agree_with_scipy(tmp_path, compressed):
    import scipy.io
    from vireid_plugin.data.datasets.matfile import mat_variables
    cells = np.empty((2, 1), dtype=object)
    cells[0, 0], cells[1, 0] = np.ones(3), np.zeros((2, 2))
    path = str(tmp_path / 'v.mat')
    scipy.io.savemat(path, {'a': np.zeros((3, 4)), 'c': cells, 'n_long_name': np.uint8(3),
                            'big': np.zeros((300, 700), dtype=np.int32)},
                     do_compression=compressed)
    assert mat_variables(path) == scipy.io.whosmat(path)   # scipy reads every variable whole
    (tmp_path / 'not.mat').write_bytes(b'garbage' * 40)
    assert mat_variables(str(tmp_path / 'not.mat')) is None


# ------------------------------------------------------------------ export --out
@pytest.mark.parametrize('kind', ['folder', 'under_a_file'])
def test_export_out_is_checked_before_any_work(tmp_path, capfd, monkeypatch, kind):
    from vireid_plugin.export import run as export_run

    def no_data_work(cfg):
        raise AssertionError('the data were prepared before --out was checked')
    monkeypatch.setattr(export_run, 'prepare_datasets', no_data_work)
    (tmp_path / 'a_file').write_text('x')
    out = tmp_path if kind == 'folder' else tmp_path / 'a_file' / 'model.onnx'
    demo = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        'configs', 'demo.yaml')
    rc = export_run.main(['--config-file', demo, '--weights', str(tmp_path / 'w.pth'),
                          '--out', str(out)])
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 1 and len(lines) == 1 and lines[0].startswith('error: --out ' + str(out))
    assert ('is a folder' if kind == 'folder' else 'is a file') in lines[0]


# ------------------------------------------------------------------ empty subsets
def test_an_empty_query_set_is_one_error(tmp_path):
    # the test ids 2 and 4 have visible images only: no infrared query
    images = {(1, 1): 1, (1, 3): 1, (3, 1): 1, (3, 3): 1, (5, 1): 1, (5, 3): 1, (2, 1): 1,
              (4, 4): 1}
    folder = write_sysu_tree(tmp_path, images, SPLITS)
    with pytest.raises(DatasetNotFoundError) as err:
        SYSUMM01(root=str(tmp_path), verbose=False)
    msg = str(err.value)
    assert 'query set is empty' in msg and folder in msg and '\n' not in msg


# ------------------------------------------------------------------ non-UTF-8 names
LATIN1 = b'caf\xe9'   # 'café' in Latin-1: not UTF-8


def test_a_non_utf8_data_root_is_one_config_line():
    from vireid_plugin.config import ConfigError, load_config
    root = os.fsdecode(b'/data/' + LATIN1)   # as argv arrives in Python
    with pytest.raises(ConfigError) as err:
        load_config('', ['data.root', root])
    msg = str(err.value)
    assert 'data.root' in msg and 'not UTF-8' in msg and "\\udce9" in msg
    msg.encode('utf-8')   # printable: no undecodable byte left in the message


def test_a_non_utf8_image_name_is_one_error(tmp_path):
    folder = write_sysu_tree(tmp_path, IMAGES, SPLITS)
    name = os.path.join(os.fsencode(folder), b'cam1', b'0002', LATIN1 + b'.jpg')
    with open(name, 'wb') as f:
        f.write(b'x')
    with pytest.raises(DatasetNotFoundError) as err:
        SYSUMM01(root=str(tmp_path), verbose=False)
    msg = str(err.value)
    assert 'not UTF-8' in msg and "caf\\udce9.jpg" in msg
    msg.encode('utf-8')
