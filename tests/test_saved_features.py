"""features.safetensors: item paths out of the safetensors header (which refuses headers over
100 MB), format-1 files still read, and a failed features write never ends a run."""
import json
import os
import struct

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from vireid_plugin.data.eval_split import EvalMode
from vireid_plugin.data.synthetic import make_sysu_mm01
from vireid_plugin.engine import saved_features
from vireid_plugin.engine.saved_features import FeaturesFileError, load_features, save_features
from vireid_plugin.errors import UserError

from tests.helpers import DEMO


def header_of(path):
    """The JSON header of a safetensors file, read by the format's definition: an 8-byte
    little-endian length, then that many bytes of JSON."""
    with open(path, 'rb') as f:
        (n,) = struct.unpack('<Q', f.read(8))
        return n, f.read(n).decode('utf-8')


def _pool(n, name_len):
    return [('/data/' + 'x' * name_len + '/{:07d}.jpg'.format(i), i % 7, i % 3, 0, i % 2)
            for i in range(n)]


def test_the_header_does_not_grow_with_the_paths(tmp_path):
    mode = EvalMode('m', 'sysu', np.array([0]), (np.array([1]),))
    sizes = {}
    for n in (10, 20000):
        pool = _pool(n, 200)   # 20000 x ~220 bytes: 4.4 MB of paths
        path = save_features(str(tmp_path / '{}.safetensors'.format(n)),
                             {'t': (torch.zeros(n, 2), pool, [mode])})
        size, header = header_of(path)
        assert '/data/' not in header
        sizes[n] = size
        assert [p for p, *_ in load_features(path).targets['t'].items()] == [
            it[0] for it in pool]
    assert sizes[20000] < 2 * sizes[10] < 4096


def test_format_1_files_are_still_read(tmp_path):
    # a file as the previous writer laid it out: paths in the metadata
    path = str(tmp_path / 'old.safetensors')
    tensors = {'pool0/features': torch.eye(2), 'pool0/pids': torch.tensor([1, 2]),
               'pool0/camids': torch.tensor([0, 3]), 'pool0/modalities': torch.tensor([0, 1]),
               'target/t/mode0/query': torch.tensor([1]),
               'target/t/mode0/gallery0': torch.tensor([0])}
    meta = {'format': 1, 'stage': 'evaluation', 'epoch': 4,
            'pools': [{'paths': ['a.jpg', ['f1.jpg', 'f2.jpg']], 'reader': {}}],
            'targets': {'t': {'pool': 0, 'modes': [{'name': 'm', 'metric': 'regdb'}]}}}
    save_file(tensors, path, metadata={'vireid': json.dumps(meta)})
    saved = load_features(path)
    assert saved.epoch == 4
    assert saved.targets['t'].items() == [('a.jpg', 1, 0, 0, 0),
                                          (('f1.jpg', 'f2.jpg'), 2, 3, 0, 1)]


def test_non_utf8_file_names_round_trip(tmp_path):
    name = os.fsdecode(b'/data/caf\xe9.jpg')   # a Latin-1 name as os.listdir returns it
    mode = EvalMode('m', 'sysu', np.array([0]), (np.array([1]),))
    pool = [(name, 1, 0, 0, 0), ('b.jpg', 1, 1, 0, 1)]
    path = save_features(str(tmp_path / 'f.safetensors'), {'t': (torch.zeros(2, 2), pool, [mode])})
    assert load_features(path).targets['t'].paths[0] == name


@pytest.mark.parametrize('meta', ['{}', '{"targets": {"t": {"pool": 5, "modes": []}}}', 'nope'])
def test_foreign_safetensors_files_are_one_error(tmp_path, meta):
    path = str(tmp_path / 'foreign.safetensors')
    save_file({'w': torch.zeros(2)}, path, metadata={'vireid': meta})
    with pytest.raises(FeaturesFileError) as err:
        load_features(path)
    assert path in str(err.value) and isinstance(err.value, (UserError, ValueError))


@pytest.mark.usefixtures('one_thread')
def test_a_features_file_that_cannot_be_written_does_not_end_the_run(cli, tmp_path,
                                                                     monkeypatch, capfd):
    root = str(tmp_path / 'data')
    make_sysu_mm01(root, num_train=4, num_val=1, num_test=2, images_per_cam=1, size=(64, 32))

    def refuse(*args, **kwargs):
        raise RuntimeError('header too large')   # what safetensors said at 110 MB
    monkeypatch.setattr(saved_features, 'save_bytes', refuse)
    save = tmp_path / 'log'
    argv = ['--config-file', DEMO, '--root', root, 'data.save_dir', save, 'data.synthetic',
            'True', 'data.workers', '0', 'data.height', '64', 'data.width', '32',
            'train.batch_size', '8', 'test.eval_before_train', 'False', 'test.num_trials', '1',
            'data_cache.enabled', 'False', 'train.max_epoch', '1']
    assert cli.main([str(a) for a in argv]) == 0
    assert (save / 'model' / 'model.pth.tar-1').is_file()
    assert (save / 'results.json').is_file() and not (save / 'features.safetensors').exists()
    assert 'header too large' in capfd.readouterr().out
