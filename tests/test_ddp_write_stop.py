"""A write failure under torchrun (issue 24.1): with ``train.on_write_error stop``, rank 0's
failed checkpoint write (ENOSPC injected) ends every rank within seconds, with one
message naming the file and the cause; torchrun's restarts end at once instead of
training into the same failure (CPU, 2 gloo ranks, the toy model of test_ddp.py)."""
import os
import time

import pytest
from test_ddp import argv as toy_argv

from tests.helpers import synthetic_sysu, torchrun

# torchrun's worker: the disk is full for the epoch-2 checkpoint (the rename of its
# temporary file fails with ENOSPC); the first failure's time goes to FULL_MARKER
WORKER = '''
import errno, os, sys, time
sys.path[:0] = [{repo!r}, {tests!r}]
import torch
torch.set_num_threads(1)
from test_ddp import register_toy
register_toy()
marker, real_replace = os.environ['FULL_MARKER'], os.replace

def replace(src, dst, *args, **kwargs):
    if os.path.basename(str(dst)) == 'model.pth.tar-2':
        if not os.path.exists(marker):
            with open(marker, 'w') as f:
                f.write(repr(time.time()))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    return real_replace(src, dst, *args, **kwargs)

os.replace = replace
from vireid_plugin.runner import main   # scripts/main.py's command
sys.exit(main(sys.argv[1:]))
'''


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory):
    return synthetic_sysu(tmp_path_factory, 8, 2, 4, size=(32, 16), name='write_stop_sysu')


def run_stopping(tmp_path, root, save_dir, restarts):
    marker = tmp_path / 'full-at'
    done = torchrun(tmp_path, WORKER, toy_argv(root, save_dir, max_epoch=3, print_freq=100) + [
        'test.eval_before_train', 'False', 'train.on_write_error', 'stop'], restarts,
        env={'FULL_MARKER': str(marker)})
    ended = time.time()
    assert marker.exists(), done.stderr[-3000:]    # the full disk was really met
    return done, ended - float(marker.read_text())


@pytest.mark.parametrize('restarts', [0, 1])
def test_a_full_disk_on_rank_0_stops_every_rank_within_seconds(toy_root, tmp_path,
                                                               restarts):
    save = tmp_path / 'run'
    done, stop_seconds = run_stopping(tmp_path, toy_root, str(save), restarts)
    if not restarts:
        # from the failed write to torchrun's exit; before: rank 1 waited in the
        # checkpoint's barrier until torchrun killed it, 30 s after rank 0 had ended
        assert stop_seconds < 15, (stop_seconds, done.stderr[-3000:])
    assert done.returncode != 0
    path = os.path.join(str(save), 'model', 'model.pth.tar-2')
    errors = [line for line in done.stderr.splitlines() if line.startswith('error: ')]
    # one message per attempt, naming the file and the cause (rank 1 says nothing)
    assert len(errors) == 1 + restarts, done.stderr[-3000:]
    assert errors[0] == ('error: cannot write {}: No space left on device [ENOSPC]; no '
                         'partial file is left'.format(path))
    if restarts:   # the restarted workers end at once, before any data or model work
        assert errors[1].startswith(errors[0] + ' (stopped by restart 1 of torchrun')
    # rank 1 raised no error of its own (before: gloo's "Connection closed by peer"
    # traceback from the barrier rank 0 never reached; NCCL waits for its timeout)
    assert '[rank1]: Traceback' not in done.stderr and 'closed by peer' not in done.stderr
    # the ranks end with status 1 (a failure, not the pre-emption status 75)
    assert 'exitcode  : 1 ' in done.stderr and 'exitcode  : 75' not in done.stderr
    # nothing trained again: one log, the checkpoint before the full disk alone
    assert sorted(os.listdir(save / 'model')) == ['model.pth.tar-1']
    assert len([n for n in os.listdir(save) if n.startswith('train.log-')]) == 1
