"""Trustworthy runs: exact resume, crash-safe checkpoints, non-finite losses, honest model
selection, torchreid's own engines on plugin datasets, safe loading, bad input."""
import contextlib
import glob
import hashlib
import json
import os

import pytest
import torch

from vireid_plugin.checkpoint_io import CheckpointError, load_checkpoint, save_checkpoint
from vireid_plugin.engine import CrossModalEngine
from vireid_plugin.engine.checkpoint import CheckpointManager, NonFiniteError

from tests.helpers import DEMO, synthetic_sysu


pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    return synthetic_sysu(tmp_path_factory, 16, 6, 6)


def args(root, save_dir, *extra):
    # drop path and random flips/grayscale: the run depends on every RNG it has
    return ['--config-file', DEMO, '--root', root, 'data.save_dir', save_dir,
            'data.synthetic', 'True', 'data.workers', '0', 'data.height', '64',
            'data.width', '32', 'vit.stride_size', '16', 'vit.drop_path_rate', '0.1',
            'train.batch_size', '16', 'train.print_freq', '100', 'train.warmup_epochs', '0.5',
            'test.num_trials', '1', 'test.eval_before_train', 'False'] + list(extra)


def run(cli, argv):
    return cli.main([str(a) for a in argv])


def sha(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


def weights(path):
    ckpt = torch.load(path, weights_only=True)
    return ckpt['state_dict'], ckpt['optimizer']


# ---------------------------------------------------------------- exact resume

class Injected(RuntimeError):
    pass


def test_resume_mid_epoch_gives_the_uninterrupted_weights_bitwise(cli, root, tmp_path,
                                                                  monkeypatch):
    common = ('train.max_epoch', '2', 'train.checkpoint_every_iters', '2',
              'train.keep_checkpoints', '50')
    straight = tmp_path / 'straight'
    assert run(cli, args(root, straight, *common)) == 0

    # the same run, killed by an exception in epoch 2 after 5 of its batches, with
    # DataLoader workers this time (augmentation does not depend on them)
    crashed = tmp_path / 'crashed'
    real = CrossModalEngine.forward_backward
    calls = {'n': 0}
    per_epoch = torch.load(str(straight / 'model' / 'model.pth.tar-1'),
                           weights_only=True)['schedule']['iterations per epoch']

    def crash(self, data):
        calls['n'] += 1
        if calls['n'] == per_epoch + 6:
            raise Injected('simulated pre-emption')
        return real(self, data)

    monkeypatch.setattr(CrossModalEngine, 'forward_backward', crash)
    with pytest.raises(Injected):
        run(cli, args(root, crashed, *common, 'data.workers', '2'))
    monkeypatch.setattr(CrossModalEngine, 'forward_backward', real)
    names = sorted(os.listdir(crashed / 'model'))
    assert 'model.pth.tar-1-it4' in names and 'model.pth.tar-2' not in names

    assert run(cli, args(root, crashed, *common, 'model.resume', 'auto')) == 0
    log = open(sorted(glob.glob(str(crashed / 'train.log-*')))[-1]).read()
    assert 'Resumed from' in log and 'model.pth.tar-1-it4' in log and 'iteration 4' in log
    a, opt_a = weights(str(straight / 'model' / 'model.pth.tar-2'))
    b, opt_b = weights(str(crashed / 'model' / 'model.pth.tar-2'))
    assert set(a) == set(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    for (i, sa), (_, sb) in zip(sorted(opt_a['state'].items()), sorted(opt_b['state'].items())):
        assert torch.equal(sa['momentum_buffer'] if 'momentum_buffer' in sa else sa['exp_avg'],
                           sb['momentum_buffer'] if 'momentum_buffer' in sb else sb['exp_avg'])


def test_keep_last_k_checkpoints(cli, root, tmp_path):
    save = tmp_path / 'keep'
    assert run(cli, args(root, save, 'train.max_epoch', '4', 'train.keep_checkpoints', '2')) == 0
    assert sorted(os.listdir(save / 'model')) == ['model.pth.tar-3', 'model.pth.tar-4']


def test_resume_auto_skips_a_truncated_checkpoint(tmp_path, capsys):
    manager = CheckpointManager(str(tmp_path), keep=5)
    state = {'state_dict': {'w': torch.ones(3)}, 'epoch': 1}
    manager.save(state, 1)
    manager.save(dict(state, epoch=2), 2)
    newest = tmp_path / 'model' / 'model.pth.tar-2'
    data = newest.read_bytes()
    newest.write_bytes(data[:len(data) // 2])           # cut off by a crash or a full disk
    path, ckpt = manager.latest_good()
    assert path.endswith('model.pth.tar-1') and ckpt['epoch'] == 1
    out = capsys.readouterr().out
    assert 'Skipping an unusable checkpoint' in out and 'model.pth.tar-2' in out


def test_atomic_write_keeps_the_previous_file_under_a_crash(tmp_path, monkeypatch):
    path = str(tmp_path / 'model.pth.tar-1')
    save_checkpoint({'state_dict': {'w': torch.zeros(4)}, 'epoch': 1}, path)
    before = sha(path)

    def dies_halfway(obj, f, *a, **k):
        f.write(b'PK\x03\x04 partial')
        raise OSError('No space left on device')

    monkeypatch.setattr(torch, 'save', dies_halfway)
    with pytest.raises(OSError, match='No space'):
        save_checkpoint({'state_dict': {'w': torch.ones(4)}, 'epoch': 2}, path)
    assert sha(path) == before                           # the good file is untouched
    assert os.listdir(tmp_path) == ['model.pth.tar-1']   # no temporary file left behind


def test_a_non_finite_checkpoint_is_never_written(tmp_path):
    manager = CheckpointManager(str(tmp_path))
    manager.save({'state_dict': {'w': torch.ones(2)}, 'epoch': 1}, 1)
    with pytest.raises(NonFiniteError, match=r"NaN/inf values \(w\)"):
        manager.save({'state_dict': {'w': torch.tensor([1., float('nan')])}, 'epoch': 2}, 2)
    assert sorted(os.listdir(tmp_path / 'model')) == ['model.pth.tar-1']


def test_resume_refuses_a_changed_schedule_naming_the_keys(cli, root, tmp_path, capfd):
    save = tmp_path / 'sched'
    assert run(cli, args(root, save, 'train.max_epoch', '1')) == 0
    rc = run(cli, args(root, save, 'train.max_epoch', '1', 'train.lr', '0.01',
                       'train.batch_size', '32', '--resume'))
    err = capfd.readouterr().err
    assert rc == 1
    assert 'train.lr: checkpoint 0.002, config 0.01' in err
    assert 'train.batch_size: checkpoint 16, config 32' in err
    assert 'resume_rebuild_schedule' in err


# ---------------------------------------------------------------- non-finite losses

def nan_at(step, term='triplet'):
    """A criterion wrapper whose ``term`` is NaN at the ``step``-th call."""
    calls = {'n': 0}

    def wrap(criterion):
        real = criterion.forward

        def forward(outputs, batch):
            total, parts = real(outputs, batch)
            calls['n'] += 1
            if calls['n'] == step:
                parts = dict(parts, **{term: torch.tensor(float('nan'))})
                total = total + parts[term]
            return total, parts
        criterion.forward = forward
        return criterion
    return wrap


@pytest.fixture
def nan_on_step(monkeypatch, cli):
    def install(step):
        real = cli.build_loss

        def build(*a, **k):
            return nan_at(step)(real(*a, **k))
        monkeypatch.setattr(cli, 'build_loss', build)
    return install


def test_nonfinite_step_is_skipped_and_named(cli, root, tmp_path, nan_on_step):
    nan_on_step(3)
    save = tmp_path / 'skip'
    assert run(cli, args(root, save, 'train.max_epoch', '1')) == 0
    log = open(glob.glob(str(save / 'train.log-*'))[0]).read()
    assert 'Non-finite loss at epoch 1 iteration 3 in term(s) triplet: step skipped' in log
    state, _ = weights(str(save / 'model' / 'model.pth.tar-1'))
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


def test_nonfinite_stop_exits_with_one_message_and_no_checkpoint(cli, root, tmp_path,
                                                                 nan_on_step, capfd):
    nan_on_step(2)
    save = tmp_path / 'stop'
    rc = run(cli, args(root, save, 'train.max_epoch', '1', 'train.on_nonfinite', 'stop'))
    err = capfd.readouterr().err
    assert rc == 1
    assert 'error: non-finite loss (nan) at epoch 1 iteration 2 in term(s) triplet' in err
    assert not (save / 'model').exists()


def test_nonfinite_rollback_restores_the_last_checkpoint(cli, root, tmp_path, nan_on_step,
                                                         monkeypatch):
    save = tmp_path / 'rollback'
    assert run(cli, args(root, save, 'train.max_epoch', '1')) == 0
    one = torch.load(str(save / 'model' / 'model.pth.tar-1'), weights_only=True)
    nan_on_step(2)      # the second step of the resumed run: epoch 2, iteration 2
    restored = {}
    real = CrossModalEngine._handle_nonfinite

    def spy(self, loss, parts):
        real(self, loss, parts)
        restored.update({k: v.clone() for k, v in self.model.state_dict().items()})
    monkeypatch.setattr(CrossModalEngine, '_handle_nonfinite', spy)
    assert run(cli, args(root, save, 'train.max_epoch', '2', 'train.on_nonfinite', 'rollback',
                         'model.resume', str(save / 'model' / 'model.pth.tar-1'),
                         'train.resume_rebuild_schedule', 'True')) == 0
    for k, v in one['state_dict'].items():
        assert torch.equal(restored[k], v), k
    log = open(sorted(glob.glob(str(save / 'train.log-*')))[-1]).read()
    assert 'rolled back to' in log and 'model.pth.tar-1' in log


# ---------------------------------------------------------------- model selection

def read_results(save):
    with open(save / 'results.json') as f:
        return json.load(f)


def test_select_on_val_scores_the_held_out_ids_and_labels_the_result(cli, root, tmp_path):
    save = tmp_path / 'val'
    assert run(cli, args(root, save, 'train.max_epoch', '2', 'test.eval_freq', '1',
                         'sysu.train_with_val', 'False', 'test.select_on', 'val')) == 0
    records = read_results(save)
    val = [r for r in records if r['stage'] == 'validation']
    assert [r['epoch'] for r in val] == [1, 2]
    assert val[0]['rows'][0]['mode'] == 'validation all-search single-shot'
    # every infrared image of the validation ids, counted in the tree
    folder = os.path.join(root, 'SYSU-MM01')
    with open(os.path.join(folder, 'exp', 'val_id.txt')) as f:
        val_ids = [int(t) for t in f.read().strip().split(',')]
    folders = (os.path.join(folder, 'cam{}'.format(c), '{:04d}'.format(p))
               for p in val_ids for c in (3, 6))
    ir = sum(len(os.listdir(d)) for d in folders if os.path.isdir(d))
    assert len(val_ids) == 6 and val[0]['rows'][0]['queries'] == ir > 0
    selected = [r for r in records if r['stage'] == 'selected']
    assert len(selected) == 1 and selected[0]['selection'] == 'val'
    assert (save / 'model' / 'model-best.pth.tar').is_file()
    log = open(glob.glob(str(save / 'train.log-*'))[0]).read()
    assert 'selected: best on the validation ids' in log


def test_select_on_test_is_labelled_everywhere(cli, root, tmp_path):
    save = tmp_path / 'test'
    assert run(cli, args(root, save, 'train.max_epoch', '2', 'test.eval_freq', '1',
                         'test.select_on', 'test')) == 0
    records = read_results(save)
    assert all(r['selection'] == 'test' for r in records)
    log = open(glob.glob(str(save / 'train.log-*'))[0]).read()
    tables = [line for line in log.splitlines() if line.startswith('** sysu_mm01 **')]
    assert tables and all('TEST set' in t for t in tables)


def test_select_on_val_needs_the_val_ids_held_out(cli, root, tmp_path, capfd):
    rc = run(cli, args(root, tmp_path / 'x', 'test.select_on', 'val'))
    assert rc == 2 and 'sysu.train_with_val False' in capfd.readouterr().err


# ---------------------------------------------------------------- torchreid's own engine

def test_torchreid_softmax_engine_scores_a_plugin_dataset_with_the_sysu_protocol(
        root, tmp_path, capsys):
    """The script a torchreid user writes, with `import vireid_plugin` on top."""
    import vireid_plugin  # noqa: F401
    import torchreid
    from torchreid.reid.data import ImageDataManager
    from torchreid.reid.engine import ImageSoftmaxEngine

    from vireid_plugin.engine.evaluation import extract_pool_features, score_modes

    torch.manual_seed(0)
    dm = ImageDataManager(root=root, sources='sysu_mm01', targets='sysu_mm01', height=64,
                          width=32, batch_size_train=16, batch_size_test=32, workers=0,
                          use_gpu=False)
    model = torchreid.reid.models.build_model('osnet_x0_25', dm.num_train_pids, loss='softmax',
                                              pretrained=False, use_gpu=False)
    optimizer = torchreid.reid.optim.build_optimizer(model, optim='adam', lr=0.001)
    scheduler = torchreid.reid.optim.build_lr_scheduler(optimizer, lr_scheduler='single_step',
                                                        stepsize=20)
    engine = ImageSoftmaxEngine(dm, model, optimizer=optimizer, scheduler=scheduler,
                                use_gpu=False)
    engine.run(save_dir=str(tmp_path / 'log'), max_epoch=1, print_freq=1000)
    out = capsys.readouterr().out
    assert "cross-modal protocol 'sysu'" in out and 'mINP' in out

    # the plugin's scoring of the same model's features
    model.eval()
    dataset = dm.test_loader['sysu_mm01']['query'].dataset
    feats = extract_pool_features(lambda x, m, c: model(x), dataset, 32, 0,
                                  torch.device('cpu'), contextlib.nullcontext)
    rows = score_modes(feats, dataset.test_pool, dataset.eval_modes(), 'euclidean')
    printed = [line for line in out.splitlines() if line.startswith('| all-search')][-1]
    cells = [c.strip() for c in printed.strip('|').split('|')]
    header = [line for line in out.splitlines() if line.startswith('| mode')][-1]
    cols = [c.strip() for c in header.strip('|').split('|')]
    for key in ('R1', 'mAP', 'mINP'):
        assert float(cells[cols.index(key)]) == pytest.approx(rows[0][key], abs=0.006)
    assert int(cells[cols.index('trials')]) == 10     # every trial, not one


def test_torchreid_datasets_keep_torchreid_evaluation():
    import vireid_plugin
    from vireid_plugin import compat
    evaluate = compat.engine.Engine._evaluate
    assert evaluate._vireid_cross_modal
    assert compat.install_cross_modal_evaluation(None) is False     # idempotent
    vireid_plugin.register_all()
    assert compat.engine.Engine._evaluate is evaluate
    # a dataset without eval_modes goes to torchreid's original
    assert evaluate._vireid_original.__qualname__ == 'Engine._evaluate'


# ---------------------------------------------------------------- safe loading, bad input

class Payload:
    """Unpickling an arbitrary class could run code."""


def test_pickle_payload_refused_with_how_to_convert(tmp_path):
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'payload': Payload()}, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    msg = str(err.value)
    assert 'refused' in msg and 'Payload' in msg and 'could run code' in msg
    # the safe remedy (list and allow the named classes) before weights_only=False
    assert msg.index('add_safe_globals') < msg.index('weights_only=False')


@pytest.mark.parametrize('extra,needle', [
    (('train.batch_size', '12'), 'train.batch_size 12 must be a positive multiple of 2 x '
                                 'sampler.num_instances = 8'),
    (('test.visrank', 'True'), 'test.visrank draws ranked lists of an evaluation run'),
    (('train.on_nonfinite', 'ignore'), "'train.on_nonfinite' must be one of"),
])
def test_bad_config_is_one_line_before_anything_runs(cli, root, tmp_path, capfd, extra, needle):
    save = tmp_path / 'bad'
    rc = run(cli, args(root, save, *extra))
    err = capfd.readouterr().err
    assert rc == 2 and needle in err and 'Traceback' not in err
    assert not save.exists()


def test_non_writable_save_dir_is_found_before_training(cli, root, tmp_path, capfd):
    blocker = tmp_path / 'a_file'
    blocker.write_text('not a folder')
    rc = run(cli, args(root, blocker / 'log'))
    err = capfd.readouterr().err
    assert rc == 2 and 'data.save_dir' in err and 'not writable' in err
    assert blocker.read_text() == 'not a folder'
