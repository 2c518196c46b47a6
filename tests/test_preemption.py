"""Pre-emption (issue 18.1): a scheduler's signal stops training at a step boundary with a
resumable checkpoint, results so far and a distinct exit status; resuming gives the
uninterrupted run's weights bitwise; a second signal during the save corrupts nothing."""
import json
import os
import signal

import pytest
import torch

from vireid_plugin.checkpoint_io import load_checkpoint
from vireid_plugin.engine import PREEMPTED_EXIT_STATUS, CrossModalEngine
from vireid_plugin.engine.checkpoint import CheckpointManager, resume_target
from vireid_plugin.engine.preemption import PREEMPTED_FILE, PreemptionGuard
from vireid_plugin.signals import signal_numbers

from tests.helpers import DEMO, synthetic_sysu


pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    return synthetic_sysu(tmp_path_factory, 16, 6, 6)


def args(root, save_dir, *extra):
    # drop path on: the run depends on every RNG it has, so an inexact resume shows
    return [str(a) for a in [
        '--config-file', DEMO, '--root', root, 'data.save_dir', save_dir,
        'data.synthetic', 'True', 'data.workers', '0', 'data.height', '64', 'data.width', '32',
        'vit.stride_size', '16', 'vit.drop_path_rate', '0.1', 'train.batch_size', '16',
        'train.print_freq', '100', 'train.warmup_epochs', '0.5', 'train.max_epoch', '2',
        'train.keep_checkpoints', '50', 'test.num_trials', '1',
        'test.eval_before_train', 'False'] + list(extra)]


def final_state(save_dir):
    return load_checkpoint(os.path.join(str(save_dir), 'model', 'model.pth.tar-2'))


def assert_bitwise_equal(a, b):
    assert set(a['state_dict']) == set(b['state_dict'])
    for k, v in a['state_dict'].items():
        assert torch.equal(v, b['state_dict'][k]), k
    for sa, sb in zip(a['optimizer']['state'].values(), b['optimizer']['state'].values()):
        for k in sa:
            assert torch.equal(torch.as_tensor(sa[k]), torch.as_tensor(sb[k])), k


@pytest.fixture(scope='module')
def straight(cli, root, tmp_path_factory):
    """The uninterrupted run (2 epochs) every pre-empted run must end equal to."""
    save = tmp_path_factory.mktemp('straight')
    assert cli.main(args(root, save)) == 0
    return final_state(save), load_checkpoint(os.path.join(str(save), 'model',
                                                           'model.pth.tar-1'))


def signal_at_step(monkeypatch, step, signals=(signal.SIGTERM,)):
    """Deliver real signals to this process during training step ``step`` (1-based over
    the run), as a scheduler would: the handler runs while the step computes."""
    real = CrossModalEngine.forward_backward
    calls = {'n': 0}

    def step_with_signal(self, data):
        calls['n'] += 1
        if calls['n'] == step:
            for sig in signals:
                os.kill(os.getpid(), sig)
        return real(self, data)
    monkeypatch.setattr(CrossModalEngine, 'forward_backward', step_with_signal)
    return calls


def test_sigterm_mid_epoch_writes_a_checkpoint_at_that_step_and_resume_is_bitwise(
        cli, root, tmp_path, monkeypatch, straight, capfd):
    end, epoch1 = straight
    per_epoch = epoch1['schedule']['iterations per epoch']
    assert per_epoch >= 3
    save = tmp_path / 'run'
    calls = signal_at_step(monkeypatch, per_epoch + 2)      # epoch 2, its 2nd step
    before = signal.getsignal(signal.SIGTERM)
    assert cli.main(args(root, save)) == PREEMPTED_EXIT_STATUS == 75
    assert signal.getsignal(signal.SIGTERM) is before        # the handler was put back
    # the step during which the signal came finished; no further step ran
    assert calls['n'] == per_epoch + 2
    captured = capfd.readouterr()
    err = captured.err
    assert 'SIGTERM' in err and 'model.resume auto' in err
    # the 1-based epoch of the log and the file's count of whole epochs, side by side
    assert ('stopping at epoch 2 iteration 2 with a checkpoint (model.pth.tar-1-it2: 1 whole '
            'epochs and 2 iterations of the next)') in captured.out
    names = sorted(os.listdir(save / 'model'))
    assert 'model.pth.tar-1-it2' in names and 'model.pth.tar-2' not in names
    ckpt = load_checkpoint(str(save / 'model' / 'model.pth.tar-1-it2'))
    assert (ckpt['epoch'], ckpt['iteration']) == (1, 2)
    with open(save / PREEMPTED_FILE) as f:
        record = json.load(f)
    assert record['signal'] == 'SIGTERM' and (record['epoch'], record['iteration']) == (1, 2)
    assert record['checkpoint'].endswith('model.pth.tar-1-it2')
    # no temporary file of the atomic writer is left anywhere
    assert not [n for n in names if n.startswith('.') or n.endswith('.tmp')]

    monkeypatch.undo()
    assert cli.main(args(root, save, 'model.resume', 'auto')) == 0
    assert_bitwise_equal(final_state(save), end)
    assert not (save / PREEMPTED_FILE).exists()   # the run is complete now


def test_signal_at_the_last_step_of_an_epoch_stops_after_its_checkpoint(
        cli, root, tmp_path, monkeypatch, straight):
    end, epoch1 = straight
    per_epoch = epoch1['schedule']['iterations per epoch']
    save = tmp_path / 'run'
    # SIGUSR1 (sbatch --signal=USR1@120) during the first epoch's last step: the epoch
    # ends as usual (LR step, checkpoint 1), then the run stops before epoch 2
    signal_at_step(monkeypatch, per_epoch, signals=(signal.SIGUSR1,))
    assert cli.main(args(root, save)) == PREEMPTED_EXIT_STATUS
    assert sorted(os.listdir(save / 'model')) == ['model.pth.tar-1']
    with open(save / PREEMPTED_FILE) as f:
        record = json.load(f)
    assert (record['signal'], record['epoch'], record['iteration']) == ('SIGUSR1', 1, 0)
    monkeypatch.undo()
    assert cli.main(args(root, save, '--resume')) == 0
    assert_bitwise_equal(final_state(save), end)


def test_a_second_signal_during_the_save_corrupts_nothing(cli, root, tmp_path, monkeypatch,
                                                          straight):
    end, epoch1 = straight
    per_epoch = epoch1['schedule']['iterations per epoch']
    save = tmp_path / 'run'
    signal_at_step(monkeypatch, per_epoch + 1)
    real_save = CheckpointManager.save
    seen = {}

    def save_hit_twice(self, state, epoch, iteration=0, best=False):
        if iteration:   # the scheduler loses patience while the pre-emption one is written
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGUSR1)
            seen['iteration'] = iteration
        return real_save(self, state, epoch, iteration, best=best)
    monkeypatch.setattr(CheckpointManager, 'save', save_hit_twice)
    assert cli.main(args(root, save)) == PREEMPTED_EXIT_STATUS
    # epoch 1's checkpoint, then the pre-emption one at epoch 2 iteration 1, both complete
    assert sorted(os.listdir(save / 'model')) == ['model.pth.tar-1', 'model.pth.tar-1-it1']
    assert seen['iteration'] == 1
    for name in os.listdir(save / 'model'):
        load_checkpoint(str(save / 'model' / name))       # raises on a truncated file
    with open(save / PREEMPTED_FILE) as f:
        assert json.load(f)['ignored_signals'] == 2
    monkeypatch.undo()
    assert cli.main(args(root, save, 'model.resume', 'auto')) == 0
    assert_bitwise_equal(final_state(save), end)


def test_guard_records_only_and_restores_handlers():
    previous = signal.getsignal(signal.SIGUSR2)
    with PreemptionGuard(['USR2'], log=lambda *_: None) as guard:
        assert not guard.requested()
        os.kill(os.getpid(), signal.SIGUSR2)   # would end the process with the default
        os.kill(os.getpid(), signal.SIGUSR2)
        assert guard.requested() and guard.signame == 'SIGUSR2' and guard.extra == 1
    assert signal.getsignal(signal.SIGUSR2) is previous


def test_signal_names_are_checked():
    assert signal_numbers(['SIGTERM', 'usr1']) == [signal.SIGTERM, signal.SIGUSR1]
    for bad in ('SIGKILL', 'SIGFOO'):
        with pytest.raises(ValueError, match=bad):
            signal_numbers([bad])


def test_a_bad_signal_name_is_one_config_error(cli, root, tmp_path, capfd):
    assert cli.main(args(root, tmp_path / 'x', 'train.preempt_signals', '[SIGTERM, SIGKIL]')) == 2
    err = capfd.readouterr().err
    assert 'train.preempt_signals' in err and 'SIGKIL' in err


def test_elastic_restart_resumes_by_itself(tmp_path):
    save = str(tmp_path)
    os.makedirs(os.path.join(save, 'model'))
    # a first start: nothing configured, nothing restarted
    assert resume_target('', save, env={}) == ''
    # a restarted worker with no checkpoint yet starts from scratch
    assert resume_target('', save, env={'TORCHELASTIC_RESTART_COUNT': '1'}) == ''
    open(os.path.join(save, 'model', 'model.pth.tar-1'), 'wb').close()
    assert resume_target('', save, env={'TORCHELASTIC_RESTART_COUNT': '1'}) == 'auto'
    assert resume_target('', save, env={'TORCHELASTIC_RESTART_COUNT': '0'}) == ''
    # an explicit choice stands
    assert resume_target('x.pth', save, env={'TORCHELASTIC_RESTART_COUNT': '2'}) == 'x.pth'
