"""Elastic restarts (issue 18.2): under ``torchrun --max-restarts``, a rank killed with
SIGKILL after the first checkpoint makes torchrun restart every worker; the restarted
workers resume from the newest complete checkpoint by themselves and the job ends with
the weights of an uninterrupted run (CPU, 2 gloo ranks)."""
import os

import pytest
import torch
from test_ddp import argv as toy_argv

from tests.helpers import synthetic_sysu, torchrun
from vireid_plugin.checkpoint_io import load_checkpoint

# torchrun's worker: the toy model of test_ddp.py, and (when KILL_MARKER is set) rank 1
# killing itself with SIGKILL right after the epoch-1 checkpoint, once per job
WORKER = '''
import os, signal, sys
sys.path[:0] = [{repo!r}, {tests!r}]
import torch
torch.set_num_threads(1)
from test_ddp import register_toy
from vireid_plugin.engine import CrossModalEngine
register_toy()
marker = os.environ.get('KILL_MARKER')
real = CrossModalEngine.save_training_checkpoint

def save_then_die(self, epoch, iteration=0, best=False, policy=True):
    path = real(self, epoch, iteration, best=best, policy=policy)
    if marker and os.environ['RANK'] == '1' and epoch == 1 and not os.path.exists(marker):
        open(marker, 'w').close()
        os.kill(os.getpid(), signal.SIGKILL)
    return path

CrossModalEngine.save_training_checkpoint = save_then_die
signal_step = int(os.environ.get('SIGNAL_RANK1_AT_STEP', '0'))
real_step = CrossModalEngine.forward_backward
steps = [0]

def step(self, data):   # SIGTERM to rank 1 only, during its step number signal_step
    steps[0] += 1
    if signal_step and os.environ['RANK'] == '1' and steps[0] == signal_step:
        os.kill(os.getpid(), signal.SIGTERM)
    return real_step(self, data)

CrossModalEngine.forward_backward = step
from vireid_plugin.runner import main   # scripts/main.py's command
sys.exit(main(sys.argv[1:]))
'''


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory):
    return synthetic_sysu(tmp_path_factory, 8, 2, 4, size=(32, 16), name='elastic_sysu')


def run_job(tmp_path, root, save_dir, kill_marker=None, signal_step=0, restarts=1,
            print_freq=100):
    env = {}
    if kill_marker:
        env['KILL_MARKER'] = str(kill_marker)
    if signal_step:
        env['SIGNAL_RANK1_AT_STEP'] = str(signal_step)
    return torchrun(tmp_path, WORKER, toy_argv(root, save_dir, max_epoch=3,
                                               print_freq=print_freq), restarts, env=env)


def test_a_rank_killed_after_a_checkpoint_is_restarted_and_the_job_ends_as_if_uninterrupted(
        toy_root, tmp_path):
    straight = str(tmp_path / 'straight')
    done = run_job(tmp_path, toy_root, straight)
    assert done.returncode == 0, done.stderr[-3000:]

    killed = str(tmp_path / 'killed')
    marker = tmp_path / 'killed-once'
    done = run_job(tmp_path, toy_root, killed, kill_marker=marker)
    assert done.returncode == 0, done.stderr[-3000:]
    assert marker.exists()                       # rank 1 really died once ...
    assert 'failed (exitcode: -9) local_rank: 1' in done.stderr   # torchrun saw SIGKILL
    logs = sorted(n for n in os.listdir(killed) if n.startswith('train.log-'))
    with open(os.path.join(killed, logs[-1])) as f:
        restarted = f.read()
    assert 'Restarted by torchrun (restart 1): model.resume auto' in restarted
    assert 'Resumed from' in restarted and 'model.pth.tar-1' in restarted

    a = load_checkpoint(os.path.join(straight, 'model', 'model.pth.tar-3'))
    b = load_checkpoint(os.path.join(killed, 'model', 'model.pth.tar-3'))
    assert set(a['state_dict']) == set(b['state_dict'])
    for k, v in a['state_dict'].items():
        assert torch.equal(v, b['state_dict'][k]), k


def test_a_signal_to_one_rank_stops_every_rank_at_the_same_step(toy_root, tmp_path):
    """The ranks agree on the signal in the log line's reduction (every print_freq steps,
    no collective of its own): rank 1 is signalled during step 2, every rank stops after
    step 3, the next log point."""
    save = tmp_path / 'signalled'
    done = run_job(tmp_path, toy_root, str(save), signal_step=2, restarts=0, print_freq=3)
    # both ranks stopped with the pre-emption status (torchrun reports each failure)
    assert done.returncode != 0
    assert done.stderr.count('exitcode  : 75') == 2, done.stderr[-3000:]
    # rank 0, which got no signal, wrote the checkpoint of the step both stopped after
    assert sorted(os.listdir(save / 'model')) == ['model.pth.tar-0-it3']
    ckpt = load_checkpoint(str(save / 'model' / 'model.pth.tar-0-it3'))
    assert (ckpt['epoch'], ckpt['iteration']) == (0, 3)
