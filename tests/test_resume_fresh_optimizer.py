"""A checkpoint whose optimizer state no longer fits (a run of an earlier version, whose
optimizer held parameters this one does not): the resume is refused in one line naming
``train.resume_fresh_optimizer``; with it, the weights, the schedule and the position are
restored, the optimizer's moments start afresh, and the LRs follow the schedule exactly as
in an uninterrupted run."""
import os

import pytest
import torch

from vireid_plugin.checkpoint_io import load_checkpoint, save_checkpoint

from tests.helpers import DEMO, synthetic_sysu

pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return synthetic_sysu(tmp_path_factory, num_train=6, num_val=1, num_test=2)


def tiny_run(root, save_dir, *extra):
    # warmup_cosine (per iteration) over 2 epochs: the LR moves at every step
    return ['--config-file', DEMO, '--root', root, 'data.save_dir', str(save_dir),
            'data.synthetic', 'True', 'data.workers', '0', 'data.height', '64',
            'data.width', '32', 'train.batch_size', '8', 'train.max_epoch', '2',
            'train.warmup_epochs', '1', 'test.eval_before_train', 'False',
            'test.num_trials', '1', 'data_cache.enabled', 'False'] + [str(e) for e in extra]


def test_an_optimizer_state_that_no_longer_fits_is_refused_then_resumed_afresh(
        run_main, data_root, tmp_path):
    whole, part = tmp_path / 'whole', tmp_path / 'part'
    rc, _ = run_main(tiny_run(data_root, whole))
    assert rc == 0
    # what an earlier version wrote after epoch 1: its optimizer had one parameter more
    ckpt = load_checkpoint(str(whole / 'model' / 'model.pth.tar-1'))
    opt = ckpt['optimizer']
    extra = max(i for g in opt['param_groups'] for i in g['params']) + 1
    opt['param_groups'][0]['params'].append(extra)
    opt['state'][extra] = {'step': torch.tensor(5.), 'exp_avg': torch.ones(3),
                           'exp_avg_sq': torch.ones(3)}
    old = str(tmp_path / 'old.pth.tar-1')
    save_checkpoint(ckpt, old)

    rc, out = run_main(tiny_run(data_root, part, 'model.resume', old))
    assert rc == 1
    lines = [line for line in out.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith('error: '), out.err
    assert 'optimizer state does not fit' in lines[0]
    assert 'train.resume_fresh_optimizer True' in lines[0]
    assert not os.path.exists(part / 'model' / 'model.pth.tar-2')

    rc, out = run_main(tiny_run(data_root, part, 'model.resume', old,
                                'train.resume_fresh_optimizer', 'True'))
    assert rc == 0, out.err
    assert 'the optimizer state was not restored' in out.out
    # the groups start at the LRs the schedule had reached after epoch 1, which the fresh
    # optimizer (built at the warmup's first LR) does not hold
    reached = ckpt['scheduler']['_last_lr']
    assert 'at the LRs the schedule had reached ({})'.format(
        ', '.join('{:.3g}'.format(lr) for lr in reached)) in out.out
    assert min(reached) > 10 * ckpt['scheduler']['base_lrs'][0] * 0.01
    resumed = load_checkpoint(str(part / 'model' / 'model.pth.tar-2'))
    reference = load_checkpoint(str(whole / 'model' / 'model.pth.tar-2'))
    assert resumed['epoch'] == reference['epoch'] == 2
    # the schedule went on as in the uninterrupted run: the same LR in every group
    assert [g['lr'] for g in resumed['optimizer']['param_groups']] == pytest.approx(
        [g['lr'] for g in reference['optimizer']['param_groups']], rel=1e-12)
    # the fresh moments count one epoch of steps, the uninterrupted run's two
    steps = lambda c: {float(s['step']) for s in c['optimizer']['state'].values()}  # noqa: E731
    assert len(steps(resumed)) == len(steps(reference)) == 1
    assert 2 * steps(resumed).pop() == steps(reference).pop()
