"""Error paths of scripts/main.py: one ``error: ...`` on stderr, exit 2 (config) or 1 (data).

The CLI runs in-process (``main(argv)``); it prints errors on ``sys.__stderr__``
(fd 2, hence ``capfd``) and swaps ``sys.stdout`` for torchreid's Logger, which
``monkeypatch`` puts back after each test.
"""
import os
import shutil
import sys

import pytest
import torch

from vireid_plugin.data.synthetic import is_synthetic

from tests.helpers import DEMO, synthetic_sysu

DEMO_COMMAND = 'python scripts/main.py --config-file configs/demo.yaml'


@pytest.fixture(scope='module')
def tiny_tree(tmp_path_factory):
    """A small synthetic SYSU-MM01 (5 train ids, 1 image per (id, camera)); returns the root."""
    return synthetic_sysu(tmp_path_factory, 4, 1, 2, 1, name='sysu_root')


def error_lines(err):
    return [line for line in err.splitlines() if line.strip()]


def assert_one_line_error(err):
    lines = error_lines(err)
    assert len(lines) == 1, err
    assert lines[0].startswith('error: '), err
    assert 'Traceback' not in err
    return lines[0]


def fast_args(tmp_path, root, *extra):
    """Demo config made cheap: small images, no worker processes, a tmp save_dir, PIL
    loading (no image cache, whose progress line would precede the error under test);
    data.synthetic True where ``root`` holds the synthetic tree of ``tiny_tree`` (nothing
    is generated), False elsewhere (a missing dataset is reported, not generated)."""
    synthetic = is_synthetic(os.path.join(str(root), 'SYSU-MM01'))
    return ['--config-file', DEMO, '--root', root, 'data.save_dir', tmp_path / 'log',
            'data.synthetic', str(synthetic), 'data.workers', '0', 'data.height', '64',
            'data.width', '32', 'train.batch_size', '8', 'test.eval_before_train', 'False',
            'test.num_trials', '1', 'data_cache.enabled', 'False'] + list(extra)


# ---------------------------------------------------------------- config errors

def config_file_error(tmp_path, run_cli, text):
    """A run on a config file holding ``text``: exit status 2 and one error line; returns
    (the file, the line)."""
    path = tmp_path / 'bad.yaml'
    path.write_text(text)
    rc, err = run_cli(['--config-file', path])
    assert rc == 2
    return path, assert_one_line_error(err)


def test_unknown_key_in_config_file(tmp_path, run_cli):
    path, line = config_file_error(tmp_path, run_cli,
                                   'model:\n  name: vit_tiny_reid\ntrain:\n  max_epok: 3\n')
    assert 'train.max_epok' in line
    assert 'train.max_epoch' in line   # the close match
    assert str(path) in line           # which file


def test_unknown_key_on_command_line(tmp_path, run_cli):
    rc, err = run_cli(['--config-file', DEMO, 'data.save_dir', tmp_path, 'test.eval_freqq', '2'])
    assert rc == 2
    line = assert_one_line_error(err)
    assert 'test.eval_freqq' in line
    assert 'test.eval_freq' in line.replace('test.eval_freqq', '')
    assert 'command line' in line
    assert not (tmp_path / 'train.log').exists() and os.listdir(tmp_path) == []


def test_unknown_section_on_command_line(run_cli):
    rc, err = run_cli(['trian.lr', '0.1'])
    assert rc == 2
    line = assert_one_line_error(err)
    assert 'trian.lr' in line
    assert 'train.lr' in line.replace('trian.lr', '')


@pytest.mark.parametrize('key,value', [('train.max_epoch', 'ten'), ('data.height', '[64]'),
                                       ('test.ranks', '5')])
def test_type_mismatch_on_command_line(run_cli, key, value):
    rc, err = run_cli([key, value])
    assert rc == 2
    line = assert_one_line_error(err)
    assert key in line


def test_type_mismatch_in_config_file(tmp_path, run_cli):
    _, line = config_file_error(tmp_path, run_cli, 'data:\n  width: wide\n')
    assert 'data.width' in line and 'wide' in line


def test_int_for_float_key_is_accepted(cli):
    # ``warmup_epochs: 1`` means 1.0; yacs alone would refuse the int
    cfg = cli.load_config(DEMO, ['train.warmup_epochs', '2', 'train.lr', '1'])
    assert cfg.train.warmup_epochs == 2.0 and isinstance(cfg.train.lr, float)


def test_missing_config_file(tmp_path, run_cli):
    path = tmp_path / 'nope' / 'config.yaml'
    rc, err = run_cli(['--config-file', path])
    assert rc == 2
    line = assert_one_line_error(err)
    assert str(path) in line
    assert not (tmp_path / 'nope').exists()


def test_odd_number_of_overrides(run_cli):
    rc, err = run_cli(['train.max_epoch', '3', 'train.lr'])
    assert rc == 2
    assert 'KEY VALUE' in assert_one_line_error(err)


@pytest.mark.parametrize('where', ['flag', 'override'])
def test_transforms_typo(run_cli, where):
    argv = (['--transforms', 'random_flip', 'random_flp'] if where == 'flag'
            else ['data.transforms', "['random_flip', 'random_flp']"])
    rc, err = run_cli(['--config-file', DEMO] + argv)
    assert rc == 2
    line = assert_one_line_error(err)
    assert 'random_flp' in line
    assert 'random_flip' in line.replace('random_flp', '')  # the available names


@pytest.mark.skipif(torch.cuda.is_available(), reason='fp16 is valid on a GPU')
def test_fp16_without_a_gpu(tmp_path, tiny_tree, run_cli):
    rc, err = run_cli(fast_args(tmp_path, tiny_tree, 'train.amp', 'fp16', 'train.max_epoch', '1'))
    assert rc == 2
    assert 'train.amp' in assert_one_line_error(err)


# ---------------------------------------------------------------- dataset errors

def test_missing_dataset_root_without_synthetic(tmp_path, run_cli):
    root = tmp_path / 'no_data_here'
    rc, err = run_cli(fast_args(tmp_path, root))
    assert rc == 1
    lines = error_lines(err)
    assert lines[0].startswith('error: ') and 'Traceback' not in err
    assert str(root / 'SYSU-MM01') in err      # the path looked at
    assert 'cam1' in err and 'exp' in err      # the expected layout
    assert DEMO_COMMAND in err                 # how to try without the data
    assert not root.exists()                   # nothing created


def test_empty_dataset_root_stays_empty(tmp_path, run_cli):
    root = tmp_path / 'empty'
    root.mkdir()
    rc, err = run_cli(fast_args(tmp_path, root))
    assert rc == 1
    assert str(root / 'SYSU-MM01') in err and DEMO_COMMAND in err
    assert os.listdir(root) == []


def run_without(tmp_path, tiny_tree, run_cli, folder):
    """A run on a copy of ``tiny_tree`` without its SYSU-MM01/``folder``; returns (the copy's
    root, exit status, stderr)."""
    root = tmp_path / 'data'
    shutil.copytree(tiny_tree, root)
    shutil.rmtree(root / 'SYSU-MM01' / folder)
    return (root,) + tuple(run_cli(fast_args(tmp_path, root)))


def test_dataset_root_without_exp(tmp_path, tiny_tree, run_cli):
    root, rc, err = run_without(tmp_path, tiny_tree, run_cli, 'exp')
    assert rc == 1
    assert error_lines(err)[0].startswith('error: ') and 'Traceback' not in err
    assert str(root / 'SYSU-MM01' / 'exp' / 'train_id.txt') in err
    assert DEMO_COMMAND in err


def test_dataset_root_without_a_camera(tmp_path, tiny_tree, run_cli):
    root, rc, err = run_without(tmp_path, tiny_tree, run_cli, 'cam6')
    assert rc == 1
    assert str(root / 'SYSU-MM01' / 'cam6') in err and 'Traceback' not in err


def _corrupt_one_train_ir_image(root, truncate=False):
    """Replace the only infrared image of one training id by garbage bytes; return its path."""
    folder = os.path.join(root, 'SYSU-MM01')
    with open(os.path.join(folder, 'exp', 'train_id.txt')) as f:
        train_ids = [int(t) for t in f.read().strip().split(',')]
    for pid in train_ids:
        ir = [os.path.join(folder, 'cam{}'.format(c), '{:04d}'.format(pid), name)
              for c in (3, 6) if os.path.isdir(os.path.join(folder, 'cam{}'.format(c),
                                                            '{:04d}'.format(pid)))
              for name in os.listdir(os.path.join(folder, 'cam{}'.format(c),
                                                  '{:04d}'.format(pid)))]
        if len(ir) == 1:
            if truncate:   # a real JPEG cut in half (an interrupted copy)
                with open(ir[0], 'rb') as f:
                    data = f.read()
                with open(ir[0], 'wb') as f:
                    f.write(data[:len(data) // 2])
            else:
                with open(ir[0], 'wb') as f:
                    f.write(b'this is not a JPEG' * 10)
            return ir[0]
    raise AssertionError('no training id with a single infrared image')


# with workers, torch re-raises the worker's ImageReadError with its whole traceback
# as the message; the CLI must still print one line naming the file
@pytest.mark.parametrize('workers,truncate', [(0, False), (2, False), (0, True)])
def test_unreadable_train_image(tmp_path, tiny_tree, run_cli, workers, truncate):
    root = tmp_path / 'data'
    shutil.copytree(tiny_tree, root)
    bad = _corrupt_one_train_ir_image(str(root), truncate)
    # one id per batch and one image per modality: every id, hence the bad image,
    # is drawn in the first epoch
    rc, err = run_cli(fast_args(tmp_path, root, 'train.max_epoch', '1', 'train.batch_size', '2',
                                'sampler.num_instances', '1', 'data.workers', str(workers)))
    assert rc == 1
    line = assert_one_line_error(err)
    assert bad in line
    assert not os.path.exists(tmp_path / 'log' / 'model' / 'model.pth.tar-1')


def test_main_restores_stdout(cli, tmp_path):
    stdout = sys.stdout
    rc = cli.main([str(a) for a in fast_args(tmp_path, str(tmp_path / 'missing'))])
    assert rc == 1
    assert sys.stdout is stdout and not stdout.closed


# ---------------------------------------------------------------- checkpoint errors

def test_resume_path_does_not_exist(tmp_path, tiny_tree, run_cli):
    missing = tmp_path / 'model.pth.tar-7'
    rc, err = run_cli(fast_args(tmp_path, tiny_tree, 'model.resume', missing))
    assert rc == 1
    line = assert_one_line_error(err)
    assert str(missing) in line


def test_load_weights_path_does_not_exist(tmp_path, tiny_tree, run_cli):
    missing = tmp_path / 'weights.pth'
    rc, err = run_cli(fast_args(tmp_path, tiny_tree, 'model.load_weights', missing,
                                'test.evaluate', 'True'))
    assert rc == 1
    assert str(missing) in assert_one_line_error(err)


@pytest.mark.parametrize('key', ['model.resume', 'model.load_weights'])
def test_garbage_checkpoint(tmp_path, tiny_tree, run_cli, key):
    path = tmp_path / 'garbage.pth.tar'
    path.write_bytes(b'\x00\x01not a torch file' * 50)
    rc, err = run_cli(fast_args(tmp_path, tiny_tree, key, path))
    assert rc == 1
    assert str(path) in assert_one_line_error(err)


def test_resume_from_torch_file_that_is_not_a_training_checkpoint(tmp_path, tiny_tree, run_cli):
    path = tmp_path / 'weights_only.pth'
    torch.save({'some.weight': torch.zeros(3)}, str(path))   # no state_dict / epoch
    rc, err = run_cli(fast_args(tmp_path, tiny_tree, 'model.resume', path))
    assert rc == 1
    line = assert_one_line_error(err)
    assert str(path) in line and 'epoch' in line


def test_load_weights_sharing_no_key_with_the_model(tmp_path, tiny_tree, run_cli):
    path = tmp_path / 'other_model.pth'
    torch.save({'state_dict': {'foo.bar': torch.zeros(3)}}, str(path))
    rc, err = run_cli(fast_args(tmp_path, tiny_tree, 'model.load_weights', path,
                                'test.evaluate', 'True'))
    assert rc == 1
    assert str(path) in assert_one_line_error(err)


@pytest.mark.parametrize('key,value,target,choices', [
    ('llcm.protocol', 'official', 'llcm', "'corrected', 'reference'"),
    ('bupt.protocol', 'paper', 'buptcampus', "'auxnet', 'm3reid'")])
def test_unknown_dataset_protocol(tmp_path, run_cli, key, value, target, choices):
    kind = 'video' if target == 'buptcampus' else 'image'
    rc, err = run_cli(['-s', target, '-t', target] + fast_args(tmp_path, tmp_path / 'none',
                                                                key, value, 'data.type', kind))
    assert rc == 2   # the dataset's config section declares the choices: a config error
    line = assert_one_line_error(err)
    assert repr(key) in line and repr(value) in line and choices in line
