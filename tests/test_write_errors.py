"""Failed writes (disk full, I/O error, no permission), injected: the previous file stays
intact, no partial or temporary file is left, one error names the file and the cause;
``train.on_write_error`` stop / retry (``engine/write_policy.py``)."""
import errno
import json
import os

import pytest
import torch

from vireid_plugin import checkpoint_io
from vireid_plugin.checkpoint_io import WriteError, atomic_write, load_checkpoint, \
    save_checkpoint
from vireid_plugin.config import ConfigError, load_config
from vireid_plugin.engine.checkpoint import CheckpointManager
from vireid_plugin.engine.evaluation import append_results
from vireid_plugin.engine.write_policy import WritePolicy

from tests.helpers import DEMO

STRERROR = {errno.ENOSPC: 'No space left on device', errno.EIO: 'Input/output error',
            errno.EACCES: 'Permission denied'}


def oserror(code):
    return OSError(code, STRERROR[code])


class FailingFile:
    """A real file that takes ``budget`` bytes, then fails as a full disk does: the
    temporary file is really half written when the error comes."""

    def __init__(self, f, budget, code, sizes=None):
        self.f, self.budget, self.code, self.sizes = f, budget, code, sizes

    def write(self, data):
        if len(data) > self.budget:
            self.f.write(data[:self.budget])
            self.f.flush()
            self.budget = 0
            if self.sizes is not None:   # what is on disk when the error comes
                self.sizes.append(os.fstat(self.f.fileno()).st_size)
            raise oserror(self.code)
        self.budget -= len(data)
        return self.f.write(data)

    def __getattr__(self, name):
        return getattr(self.f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


def inject(monkeypatch, stage, code, partial=None):
    """Make the atomic writer's ``stage`` fail with ``code``; ``partial`` (a list) gets the
    temporary file's path and its size on disk when the error came."""
    if stage == 'write':
        real, real_mkstemp = os.fdopen, checkpoint_io.tempfile.mkstemp
        sizes = None if partial is None else []

        def fdopen(fd, mode='r', *args, **kwargs):
            return FailingFile(real(fd, mode, *args, **kwargs), 64, code, sizes)

        def mkstemp(**kwargs):
            fd, path = real_mkstemp(**kwargs)
            partial.append((path, sizes))
            return fd, path
        monkeypatch.setattr(checkpoint_io.os, 'fdopen', fdopen)
        if partial is not None:
            monkeypatch.setattr(checkpoint_io.tempfile, 'mkstemp', mkstemp)
    elif stage == 'fsync':
        monkeypatch.setattr(checkpoint_io.os, 'fsync', lambda fd: (_ for _ in ()).throw(
            oserror(code)))
    elif stage == 'replace':
        monkeypatch.setattr(checkpoint_io.os, 'replace', lambda a, b: (_ for _ in ()).throw(
            oserror(code)))
    elif stage == 'create':
        monkeypatch.setattr(checkpoint_io.tempfile, 'mkstemp',
                            lambda **kw: (_ for _ in ()).throw(oserror(code)))


def listing(folder):
    return sorted(os.listdir(folder))


CASES = [('write', errno.ENOSPC), ('write', errno.EIO), ('fsync', errno.EIO),
         ('replace', errno.EACCES), ('create', errno.EACCES), ('create', errno.ENOSPC)]


@pytest.mark.parametrize('stage,code', CASES)
def test_a_failed_checkpoint_write_keeps_the_previous_file(tmp_path, monkeypatch, stage, code):
    path = str(tmp_path / 'model.pth.tar-1')
    good = {'state_dict': {'w': torch.arange(1000.)}, 'epoch': 1}
    save_checkpoint(good, path)
    before = open(path, 'rb').read()
    inject(monkeypatch, stage, code)
    with pytest.raises(WriteError) as info:
        save_checkpoint({'state_dict': {'w': torch.zeros(1000)}, 'epoch': 2}, path)
    monkeypatch.undo()
    msg = str(info.value)
    assert path in msg and STRERROR[code] in msg and errno.errorcode[code] in msg
    assert 'previous file is unchanged' in msg
    assert (info.value.errno, info.value.filename) == (code, path)
    assert open(path, 'rb').read() == before                  # byte for byte
    assert torch.equal(load_checkpoint(path)['state_dict']['w'], torch.arange(1000.))
    assert listing(str(tmp_path)) == ['model.pth.tar-1']      # no temporary file left


def test_the_temporary_file_was_really_half_written_then_removed(tmp_path, monkeypatch):
    """The injected full disk leaves a partial temporary file behind the writer's back;
    the writer removes it."""
    path = str(tmp_path / 'results.json')
    seen = []
    inject(monkeypatch, 'write', errno.ENOSPC, partial=seen)
    with pytest.raises(WriteError, match='cannot write .*results.json: No space left'):
        atomic_write(path, lambda f: f.write(b'x' * 1000))
    monkeypatch.undo()
    (tmp, sizes), = seen
    assert os.path.basename(tmp).startswith('.tmp-') and sizes == [64]   # half written
    assert not os.path.exists(tmp) and listing(str(tmp_path)) == []
    assert 'no partial file is left' in str(WriteError(path, oserror(errno.ENOSPC)))


def test_results_json_keeps_its_records_when_a_write_fails(tmp_path, monkeypatch):
    save_dir = str(tmp_path)
    append_results(save_dir, {'dataset': 'a', 'epoch': 1, 'rows': []})
    inject(monkeypatch, 'write', errno.ENOSPC)
    with pytest.raises(WriteError, match='results.json'):
        append_results(save_dir, {'dataset': 'a', 'epoch': 2, 'rows': []})
    monkeypatch.undo()
    with open(os.path.join(save_dir, 'results.json')) as f:
        assert [r['epoch'] for r in json.load(f)] == [1]
    assert listing(save_dir) == ['results.json']


def test_a_failed_checkpoint_prunes_nothing(tmp_path, monkeypatch):
    manager = CheckpointManager(str(tmp_path), keep=2)
    state = {'state_dict': {'w': torch.ones(3)}, 'epoch': 0}
    for epoch in (1, 2):
        manager.save(dict(state, epoch=epoch), epoch)
    inject(monkeypatch, 'replace', errno.EIO)
    with pytest.raises(WriteError, match='model.pth.tar-3: Input/output error'):
        manager.save(dict(state, epoch=3), 3)
    monkeypatch.undo()
    assert [e for e, _, _ in manager.regular()] == [1, 2]     # the keep-2 pruning did not run
    path, ckpt = manager.latest_good()
    assert path.endswith('model.pth.tar-2') and ckpt['epoch'] == 2


def test_other_errors_pass_through_and_leave_no_temporary_file(tmp_path):
    path = str(tmp_path / 'x.json')
    atomic_write(path, lambda f: f.write(b'old'))

    def boom(f):
        f.write(b'half')
        raise KeyError('not a file-system error')
    with pytest.raises(KeyError):
        atomic_write(path, boom)
    assert open(path, 'rb').read() == b'old' and listing(str(tmp_path)) == ['x.json']


# ---------------------------------------------------------------- the policy

class Disk:
    """Files through the real atomic writer; ``full`` makes every write fail (ENOSPC)."""

    def __init__(self, folder, monkeypatch):
        self.folder, self.full, self.monkeypatch = folder, False, monkeypatch
        real = checkpoint_io.os.replace

        def replace(a, b):
            if self.full:
                raise oserror(errno.ENOSPC)
            return real(a, b)
        monkeypatch.setattr(checkpoint_io.os, 'replace', replace)

    def put(self, name, text):
        return lambda: atomic_write(os.path.join(self.folder, name),
                                    lambda f: f.write(text.encode()))

    def read(self, name):
        path = os.path.join(self.folder, name)
        return open(path).read() if os.path.exists(path) else None


def test_policy_stop_raises_the_write_error(tmp_path, monkeypatch):
    disk = Disk(str(tmp_path), monkeypatch)
    policy = WritePolicy('stop', log=lambda m: None)
    policy.write('checkpoint', disk.put('ckpt', 'epoch 1'))
    disk.full = True
    with pytest.raises(WriteError, match='ckpt: No space left on device'):
        policy.write('checkpoint', disk.put('ckpt', 'epoch 2'))
    assert disk.read('ckpt') == 'epoch 1'


def test_policy_retry_continues_and_writes_at_the_next_save_point(tmp_path, monkeypatch):
    disk = Disk(str(tmp_path), monkeypatch)
    lines = []
    policy = WritePolicy('retry', log=lines.append)
    policy.write('checkpoint', disk.put('ckpt-1', '1'))
    disk.full = True
    assert policy.write('checkpoint', disk.put('ckpt-2', '2')) is None       # no raise
    assert policy.write('results', disk.put('rec-a', 'a'), replaces=False) is None
    assert policy.write('results', disk.put('rec-b', 'b'), replaces=False) is None
    assert len(lines) == 2 and 'ckpt-2: No space left on device' in lines[0] and \
        'retry' in lines[0] and 'next checkpoint write tries again' in lines[0]
    assert 'rec-a' in lines[1] and 'written at the next save point' in lines[1]
    assert [disk.read(n) for n in ('ckpt-1', 'ckpt-2', 'rec-a', 'rec-b')] == \
        ['1', None, None, None]
    disk.full = False
    # the next checkpoint: the kept records first (in order), then the checkpoint itself
    path = policy.write('checkpoint', disk.put('ckpt-3', '3'))
    assert path.endswith('ckpt-3')
    assert [disk.read(n) for n in ('ckpt-2', 'ckpt-3', 'rec-a', 'rec-b')] == \
        [None, '3', 'a', 'b']
    assert os.path.getmtime(os.path.join(str(tmp_path), 'rec-a')) <= \
        os.path.getmtime(os.path.join(str(tmp_path), 'rec-b'))
    assert any('checkpoint written again' in m for m in lines)
    policy.finish()                                        # nothing missing: no error


def test_policy_retry_fails_at_the_end_when_a_write_never_succeeded(tmp_path, monkeypatch):
    disk = Disk(str(tmp_path), monkeypatch)
    policy = WritePolicy('retry', log=lambda m: None)
    disk.full = True
    policy.write('checkpoint', disk.put('ckpt-9', '9'))
    policy.write('results', disk.put('rec', 'r'), replaces=False)
    with pytest.raises(WriteError) as info:
        policy.finish()
    msg = str(info.value)
    assert '2 write(s) that never succeeded' in msg and 'ckpt-9' in msg and 'rec' in msg
    disk.full = False
    policy.failed.clear()
    policy.finish()                      # the kept record goes out when the disk has room
    assert disk.read('rec') == 'r'


def test_config_key_on_write_error(tmp_path):
    assert load_config().train.on_write_error == 'stop'
    assert load_config(opts=['train.on_write_error', 'retry']).train.on_write_error == 'retry'
    with pytest.raises(ConfigError, match="train.on_write_error.*'stop', 'retry'"):
        load_config(opts=['train.on_write_error', 'continue'])
    with pytest.raises(ValueError, match='on_write_error'):
        WritePolicy('ignore')


# ---------------------------------------------------------------- a training run

def tiny_run(tmp_path, max_epoch, *extra):
    """The demo config on a fresh small synthetic tree in ``tmp_path`` for ``max_epoch``
    epochs; returns (the command line, its save_dir)."""
    from vireid_plugin.data.synthetic import make_sysu_mm01
    root, save_dir = str(tmp_path / 'data'), str(tmp_path / 'log')
    make_sysu_mm01(root, num_train=6, num_val=2, num_test=4, images_per_cam=2, size=(32, 16))
    argv = ['--config-file', DEMO, '--root', root, 'data.save_dir', save_dir,
            'data.synthetic', 'True', 'data.workers', '0', 'data.height', '32',
            'data.width', '16', 'vit.stride_size', '8', 'train.batch_size', '8',
            'sampler.num_instances', '2', 'train.max_epoch', str(max_epoch),
            'train.print_freq', '100', 'test.num_trials', '1'] + list(extra)
    return argv, save_dir


def test_a_full_disk_at_a_checkpoint_stops_the_run_and_resume_continues(cli, tmp_path,
                                                                        monkeypatch, capsys,
                                                                        one_thread):
    """train.on_write_error stop (the default): the run ends with one message naming the
    file and the cause; the checkpoint written before is complete and resumable."""
    argv, save_dir = tiny_run(tmp_path, 2, 'test.eval_before_train', 'False')
    real = os.replace

    def replace(src, dst):
        if os.path.basename(dst) == 'model.pth.tar-2':
            raise oserror(errno.ENOSPC)
        return real(src, dst)
    monkeypatch.setattr(checkpoint_io.os, 'replace', replace)
    assert cli.main(argv) == 1
    monkeypatch.undo()
    err = capsys.readouterr().err
    target = os.path.join(save_dir, 'model', 'model.pth.tar-2')
    assert 'error: cannot write {}: No space left on device [ENOSPC]'.format(target) in err
    folder = os.path.join(save_dir, 'model')
    assert listing(folder) == ['model.pth.tar-1']                 # no partial file
    first = load_checkpoint(os.path.join(folder, 'model.pth.tar-1'))
    assert first['epoch'] == 1
    assert not [n for _, _, names in os.walk(save_dir) for n in names if n.startswith('.tmp-')]
    # room again: resume from the checkpoint that was written
    assert cli.main(argv + ['model.resume', 'auto']) == 0
    assert load_checkpoint(os.path.join(folder, 'model.pth.tar-2'))['epoch'] == 2


def test_retry_keeps_training_past_a_full_disk_and_writes_at_the_next_checkpoint(
        cli, tmp_path, monkeypatch, capsys, one_thread):
    """train.on_write_error retry: the epoch-1 checkpoint and the first results record
    fail (disk full); training goes on, the record is written at the next save point
    (in order), the epoch-2 checkpoint is written, and the run ends with status 0."""
    argv, save_dir = tiny_run(tmp_path, 3, 'test.eval_before_train', 'True',
                              'train.on_write_error', 'retry')
    real = os.replace
    failed = []

    def replace(src, dst):
        name = os.path.basename(dst)
        # the disk is full until the first checkpoint and the untrained results failed
        if name in ('model.pth.tar-1', 'results.json') and name not in failed:
            failed.append(name)
            raise oserror(errno.ENOSPC)
        return real(src, dst)
    monkeypatch.setattr(checkpoint_io.os, 'replace', replace)
    assert cli.main(argv) == 0
    monkeypatch.undo()
    assert sorted(failed) == ['model.pth.tar-1', 'results.json']
    out = capsys.readouterr().out
    assert 'No space left on device' in out and 'train.on_write_error retry' in out
    folder = os.path.join(save_dir, 'model')
    assert listing(folder) == ['model.pth.tar-2', 'model.pth.tar-3']
    with open(os.path.join(save_dir, 'results.json')) as f:
        stages = [r['stage'] for r in json.load(f)]
    assert stages == ['untrained', 'evaluation']         # the failed record kept its place
    assert not [n for _, _, names in os.walk(save_dir) for n in names if n.startswith('.tmp-')]
