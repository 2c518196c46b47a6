"""Config values no run can use: one ``ConfigError`` line naming the key, when the config is
loaded (or, for device options, when the run starts), before any data or model work."""
import os

import pytest
import torch

from vireid_plugin.config import ConfigError, load_config
from vireid_plugin.config.checks import MAX_LIST_LENGTH, check_device
from vireid_plugin.errors import UserError

from tests.helpers import DEMO


@pytest.mark.parametrize('key,value', [
    ('train.lr', '.nan'), ('train.lr', '.inf'), ('train.lr', '-0.1'),
    ('data.height', '-5'), ('data.height', '0'), ('data.width', '0'),
    ('test.batch_size', '0'), ('train.batch_size', '0'), ('data.workers', '-1'),
    ('data.sources', '[]'), ('data.targets', '[]'), ('train.max_epoch', '0'),
    ('train.max_epoch', '-3'), ('test.ranks', '[0, 5]'), ('test.ranks', '[]'),
    ('test.ranks', '[[1, 2], 5]'), ('test.ranks', '[1.5, 5]'), ('loss.weights', '[1.0, .nan]'),
    ('data.norm_std', '[0.2, 0.0, 0.2]'), ('train.weight_decay', '-1e-4'),
])
def test_bad_value_is_one_line_naming_the_key(key, value):
    with pytest.raises(ConfigError) as err:
        load_config(DEMO, [key, value])
    msg = str(err.value)
    assert key in msg and '\n' not in msg
    assert isinstance(err.value, UserError)


def test_zero_epochs_are_fine_when_only_evaluating():
    cfg = load_config(DEMO, ['train.max_epoch', '0', 'test.evaluate', 'True'])
    assert cfg.train.max_epoch == 0


def test_nan_lr_in_a_yaml_file(tmp_path):
    path = tmp_path / 'nan.yaml'
    path.write_text('_BASE_: {}\ntrain:\n  lr: .nan\n'.format(DEMO))
    with pytest.raises(ConfigError, match=r"'train.lr' is nan"):
        load_config(str(path))


def test_list_keys_are_bounded_before_anything_walks_them():
    ranks = '[' + ', '.join(str(i) for i in range(1, MAX_LIST_LENGTH + 2)) + ']'
    with pytest.raises(ConfigError, match='test.ranks.*{} entries'.format(MAX_LIST_LENGTH + 1)):
        load_config(DEMO, ['test.ranks', ranks])
    # exactly at the bound is accepted
    ok = '[' + ', '.join(str(i) for i in range(1, MAX_LIST_LENGTH + 1)) + ']'
    assert len(load_config(DEMO, ['test.ranks', ok]).test.ranks) == MAX_LIST_LENGTH


def test_nested_list_message_is_short():
    # a deep nesting (what YAML aliases build cheaply) is named, not printed whole
    deep = '[1]'
    for _ in range(30):
        deep = '[{0}, {0}]'.format(deep) if len(deep) < 2000 else '[{}]'.format(deep)
    with pytest.raises(ConfigError) as err:
        load_config(DEMO, ['test.ranks', deep])
    assert len(str(err.value)) < 300


def test_a_nested_shared_list_is_refused_without_printing_it():
    from vireid_plugin.config import get_default_config
    from vireid_plugin.config.checks import check_values
    value = [1]
    for _ in range(60):   # 2 ** 60 leaves as text; what a few YAML aliases build
        value = [value, value]
    cfg = get_default_config()
    cfg.test.ranks = value
    with pytest.raises(ConfigError, match="'test.ranks': entry 0 is a list") as err:
        check_values(cfg)
    assert len(str(err.value)) < 300


def test_fp16_on_cpu_refused_by_check_device():
    cfg = load_config(DEMO, ['train.amp', 'fp16'])   # loading (figures, export) is fine
    with pytest.raises(ConfigError, match='train.amp fp16'):
        check_device(cfg, torch.device('cpu'))
    check_device(cfg, torch.device('cuda'))   # a GPU run: accepted
    with pytest.raises(ConfigError, match='train.sync_bn'):
        check_device(load_config(DEMO, ['train.sync_bn', 'True']), torch.device('cpu'))


def _one_line(err):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith('error: ') and 'Traceback' not in err, err
    return lines[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason='fp16 is valid on a GPU')
def test_fp16_without_cuda_refused_before_any_data_work(tmp_path, run_cli):
    # the data root does not exist and synthetic data is on: any data work would write it
    root = tmp_path / 'data'
    rc, err = run_cli(['--config-file', DEMO, '--root', root, 'data.synthetic', 'True',
                       'data.save_dir', tmp_path / 'log', 'train.amp', 'fp16'])
    assert rc == 2 and 'train.amp fp16' in _one_line(err)
    assert not root.exists()


def test_negative_height_leaves_no_cache_or_lock(tmp_path, run_cli):
    root = tmp_path / 'data'
    rc, err = run_cli(['--config-file', DEMO, '--root', root, 'data.synthetic', 'True',
                       'data.save_dir', tmp_path / 'log', 'data.height', '-5'])
    assert rc == 2 and 'data.height' in _one_line(err)
    assert sorted(os.listdir(tmp_path)) == []   # no data, no cache, no lock, no log


def test_save_dir_too_long_for_the_run_files_is_refused_first(tmp_path, run_cli):
    # a folder whose path leaves room for a short file name but not for the log's
    # (train.log-YYYY-mm-dd-HH-MM-SS, 29 characters) nor the checkpoints'
    limit = os.pathconf(str(tmp_path), 'PC_PATH_MAX')
    folder = str(tmp_path)
    while len(folder) < limit - 40:
        folder = os.path.join(folder, 'd' * min(200, limit - 40 - len(folder) - 1))
    rc, err = run_cli(['--config-file', DEMO, '--root', tmp_path / 'data', 'data.synthetic',
                       'True', 'data.save_dir', folder])
    assert rc == 2 and 'data.save_dir' in _one_line(err)
    assert not (tmp_path / 'data').exists()
