"""MIP end to end through scripts/main.py on a small synthetic SYSU-MM01 (CPU, in-process):
training with IAEL + MSEL, the loss-term heads in the checkpoint, resume, evaluation."""
import os

import pytest
import torch

from tests.helpers import config_file, synthetic_sysu

DEMO = config_file('demo_mip.yaml')


def args(root, save_dir, *extra):
    return ['--config-file', DEMO, '--root', root, 'data.save_dir', save_dir,
            'data.synthetic', 'True', 'data.workers', '0', 'data.height', '64',
            'data.width', '32', 'train.batch_size', '16', 'train.print_freq', '1',
            'test.num_trials', '2', 'test.eval_before_train', 'False',
            'loss.msel.start_epoch', '2'] + list(extra)


pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def trained(cli, tmp_path_factory):
    root = synthetic_sysu(tmp_path_factory, 12, 1, 4)
    save_dir = str(tmp_path_factory.mktemp('mip_log'))
    assert cli.main([str(a) for a in args(root, save_dir, 'train.max_epoch', '2')]) == 0
    return root, save_dir


def test_checkpoint_holds_the_iael_heads(trained):
    _, save_dir = trained
    ckpt = torch.load(os.path.join(save_dir, 'model', 'model.pth.tar-2'), weights_only=True)
    assert 'prompts.table' in ckpt['state_dict'] and 'instance.queries' in ckpt['state_dict']
    heads = [k for k in ckpt['criterion'] if k.startswith('terms.iael.classifiers.')]
    assert len(heads) == 3          # mip_vit_tiny: depth 4, JPM -> 3 prompted layers
    # msel ran in epoch 2 (start_epoch 2) and was logged
    log = open([os.path.join(save_dir, f) for f in os.listdir(save_dir)
                if f.startswith('train.log')][0]).read()
    assert 'msel' in log and 'iael' in log


def test_resume_restores_the_loss_term_heads(cli, trained, tmp_path, monkeypatch):
    root, save_dir = trained
    ckpt_path = os.path.join(save_dir, 'model', 'model.pth.tar-2')
    saved = torch.load(ckpt_path, weights_only=True)['criterion']
    seen = {}
    real = cli.CrossModalEngine.resume

    def spy(self, path, save_dir, rebuild_schedule=False, **kwargs):
        epoch = real(self, path, save_dir, rebuild_schedule, **kwargs)
        seen['weight'] = self.criterion.terms['iael'].classifiers[1].weight.detach().clone()
        return epoch

    monkeypatch.setattr(cli.CrossModalEngine, 'resume', spy)
    rc = cli.main([str(a) for a in args(root, str(tmp_path / 'resumed'), 'train.max_epoch', '3',
                                        'model.resume', ckpt_path,
                                        'train.resume_rebuild_schedule', 'True')])
    assert rc == 0
    torch.testing.assert_close(seen['weight'], saved['terms.iael.classifiers.1.weight'])
    assert os.path.isfile(tmp_path / 'resumed' / 'model' / 'model.pth.tar-3')


def test_evaluate_a_trained_checkpoint(cli, trained, tmp_path):
    root, save_dir = trained
    rc = cli.main([str(a) for a in args(root, str(tmp_path / 'eval'), 'test.evaluate', 'True',
                                        'model.load_weights',
                                        os.path.join(save_dir, 'model', 'model.pth.tar-2'))])
    assert rc == 0


def test_checkpoint_of_another_model_exits_non_zero_with_one_message(cli, trained, tmp_path,
                                                                     capfd):
    root, save_dir = trained
    rc = cli.main([str(a) for a in args(root, str(tmp_path / 'other'), 'test.evaluate', 'True',
                                        'mip.num_tokens', '2', 'model.load_weights',
                                        os.path.join(save_dir, 'model', 'model.pth.tar-2'))])
    err = capfd.readouterr().err
    assert rc != 0
    line = [x for x in err.splitlines() if x.strip()][-1]
    assert line.startswith('error: ') and 'load_weights_strict' in line
    assert 'prompts.table (file (2, 4, 4, 96), model (2, 4, 2, 96))' in line


# ---------------------------------------------------------------- the authors' run, tiny

RELEASED = ('sampler.train_sampler', 'RandomIdentityModalitySampler', 'sampler.num_instances',
            '4', 'data.transforms', '[random_flip, random_erase, random_grayscale]',
            'data.resize_interpolation', 'bicubic', 'data.erase_fill', 'random',
            'data.grayscale_after_erase', 'True', 'mip.released_compat', 'True',
            'loss.iael.form', 'released', 'train.max_epoch', '2',
            'train.checkpoint_every_iters', '1', 'train.keep_checkpoints', '50')


class Preempted(RuntimeError):
    pass


def test_released_recipe_trains_and_resumes_mid_epoch_bitwise(cli, trained, tmp_path,
                                                              monkeypatch):
    """The authors' sampler, input pipeline and IAEL on the tiny MIP with their forward:
    a run killed inside epoch 2 and resumed ends with the uninterrupted run's weights."""
    root, _ = trained
    straight = tmp_path / 'straight'
    assert cli.main([str(a) for a in args(root, straight, *RELEASED)]) == 0
    ckpt = torch.load(str(straight / 'model' / 'model.pth.tar-2'), weights_only=True)
    assert {'terms.iael.token', 'terms.iael.head.block.attn.qkv.weight'} <= \
        set(ckpt['criterion'])
    per_epoch = torch.load(str(straight / 'model' / 'model.pth.tar-1'),
                           weights_only=True)['schedule']['iterations per epoch']

    real = cli.CrossModalEngine.forward_backward
    calls = {'n': 0}

    def crash(self, data):
        calls['n'] += 1
        if calls['n'] == per_epoch + 2:
            raise Preempted('simulated pre-emption')
        return real(self, data)

    crashed = tmp_path / 'crashed'
    monkeypatch.setattr(cli.CrossModalEngine, 'forward_backward', crash)
    with pytest.raises(Preempted):
        cli.main([str(a) for a in args(root, crashed, *RELEASED)])
    monkeypatch.setattr(cli.CrossModalEngine, 'forward_backward', real)
    assert 'model.pth.tar-1-it1' in os.listdir(crashed / 'model')
    assert cli.main([str(a) for a in args(root, crashed, *RELEASED, 'model.resume', 'auto')]) == 0
    resumed = torch.load(str(crashed / 'model' / 'model.pth.tar-2'), weights_only=True)
    for part in ('state_dict', 'criterion'):
        for key, value in ckpt[part].items():
            assert torch.equal(value, resumed[part][key]), (part, key)
