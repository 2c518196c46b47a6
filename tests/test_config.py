import glob
import math
import os

import pytest

from vireid_plugin.config import ConfigError, get_default_config, load_config

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'configs')


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_torchreid_key_names_are_kept():
    cfg = get_default_config()
    # the keys torchreid users type every day
    for key in ('model.name', 'model.pretrained', 'model.load_weights', 'model.resume',
                'data.root', 'data.sources', 'data.targets', 'data.split_id', 'data.height',
                'data.transforms', 'data.save_dir', 'sampler.train_sampler',
                'sampler.num_instances', 'video.seq_len', 'video.sample_method', 'train.lr',
                'train.max_epoch', 'train.batch_size', 'train.optim', 'train.lr_scheduler',
                'loss.name', 'loss.softmax.label_smooth', 'loss.triplet.margin',
                'test.eval_freq', 'test.evaluate', 'test.ranks', 'test.dist_metric'):
        node = cfg
        for part in key.split('.'):
            assert part in node, key
            node = node[part]


def test_file_then_cli_overrides(tmp_path):
    path = write(tmp_path, 'a.yaml', 'train:\n  lr: 0.5\n  max_epoch: 3\n')
    cfg = load_config(path, ['train.max_epoch', '7'], sources=['regdb'], root='/data')
    assert cfg.train.lr == 0.5 and cfg.train.max_epoch == 7
    assert list(cfg.data.sources) == ['regdb'] and cfg.data.root == '/data'


def test_base_inheritance(tmp_path):
    write(tmp_path, 'base.yaml', 'train:\n  lr: 0.1\n  max_epoch: 9\n')
    child = write(tmp_path, 'child.yaml', '_BASE_: base.yaml\ntrain:\n  lr: 0.2\n')
    cfg = load_config(child)
    assert cfg.train.lr == 0.2 and cfg.train.max_epoch == 9


def test_unknown_key_in_file_names_file_key_and_close_match(tmp_path):
    path = write(tmp_path, 'typo.yaml', 'train:\n  max_epochs: 3\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    msg = str(err.value)
    assert 'train.max_epochs' in msg and path in msg and 'train.max_epoch' in msg
    assert '\n' not in msg


def test_unknown_key_on_command_line():
    with pytest.raises(ConfigError, match=r"'test.eval_freqq' in the command line.*test.eval_freq"):
        load_config('', ['test.eval_freqq', '2'])


def test_type_mismatch_and_bad_choice_and_odd_overrides(tmp_path):
    with pytest.raises(ConfigError, match='train.lr'):
        load_config('', ['train.lr', 'fast'])
    with pytest.raises(ConfigError, match='train.amp'):
        load_config('', ['train.amp', 'fp8'])
    with pytest.raises(ConfigError, match='KEY VALUE'):
        load_config('', ['train.lr'])
    with pytest.raises(ConfigError, match='loss.terms'):
        load_config('', ['loss.weights', '[1.0]'])


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match='not found: .*nope.yaml'):
        load_config(str(tmp_path / 'nope.yaml'))
    bad = write(tmp_path, 'bad.yaml', 'train: [unclosed\n')
    with pytest.raises(ConfigError, match='not valid YAML'):
        load_config(bad)
    scalar = write(tmp_path, 'scalar.yaml', '3\n')
    with pytest.raises(ConfigError, match='mapping'):
        load_config(scalar)


SHIPPED = sorted(os.path.relpath(p, CONFIGS) for p in glob.glob(
    os.path.join(CONFIGS, '**', '*.yaml'), recursive=True))


@pytest.mark.parametrize('name', SHIPPED)
def test_shipped_configs_load(name):
    cfg = load_config(os.path.join(CONFIGS, name))
    assert cfg.model.name


def test_real_recipe_builds_the_transreid_style_vit():
    import os
    from vireid_plugin.config import model_kwargs
    from vireid_plugin.models import build_model
    cfg = load_config(os.path.join(os.path.dirname(__file__), '..', 'configs', 'vit_sysu.yaml'),
                      ['model.pretrained', 'False'])
    model = build_model(cfg.model.name, 395, **model_kwargs(cfg, num_cameras=6))
    backbone = model.backbone
    # 256x128 input, 16x16 patches at stride 12: ((256-16)//12+1) x ((128-16)//12+1) = 21 x 10
    assert backbone.patch_embed.grid_size == (21, 10)
    assert backbone.pos_embed.shape == (1, 1 + 210, 768)
    assert len(backbone.blocks) == 12 and backbone.sie_embed.shape == (6, 1, 768)
    assert backbone.camera_coe == 3.0 and model.head.classifier.out_features == 395
    assert cfg.train.batch_size % (2 * cfg.sampler.num_instances) == 0


def test_mip_recipe_builds_the_papers_model_with_the_authors_recipe():
    from vireid_plugin.config import loss_kwargs, model_kwargs, optimizer_kwargs, scheduler_kwargs
    from vireid_plugin.losses import build_loss
    from vireid_plugin.models import build_model
    from vireid_plugin.optim import build_lr_scheduler, build_optimizer
    cfg = load_config(os.path.join(CONFIGS, 'mip_sysu.yaml'), ['model.pretrained', 'False'])
    model = build_model(cfg.model.name, 395, **model_kwargs(cfg, num_cameras=6))
    assert model.backbone.patch_embed.grid_size == (21, 10) and model.num_blocks == 11
    assert model.prompts.table.shape == (2, 12, 16, 768)
    assert model.instance.queries.shape == (1, 16, 768) and model.feature_dim == 3840
    assert model.backbone.sie_embed.shape == (6, 1, 768) and model.backbone.camera_coe == 3.0
    # 8 ids x (4 visible + 4 infrared)
    assert cfg.train.batch_size // (2 * cfg.sampler.num_instances) == 8
    names, weights, options = loss_kwargs(cfg)
    criterion = build_loss(names, weights, options, num_classes=395, model=model)
    assert dict(zip(names, weights)) == {'id': 1.0, 'triplet': 1.0, 'msel': 0.5, 'iael': 0.5}
    assert criterion.terms['id'].label_smooth == 0.0 and criterion.terms['triplet'].soft_margin
    assert criterion.terms['msel'].start_epoch == 10 and len(criterion.terms['iael'].bns) == 11
    opt = build_optimizer([model, criterion], **optimizer_kwargs(cfg))
    lrs = {id(p): g['lr'] for g in opt.param_groups for p in g['params']}
    assert lrs[id(model.prompts.table)] == pytest.approx(0.05)
    assert lrs[id(model.instance.block.attn.qkv.weight)] == pytest.approx(0.15)
    assert lrs[id(model.backbone.blocks[3].mlp.fc1.bias)] == pytest.approx(0.02)
    assert all(g['weight_decay'] == 1e-4 for g in opt.param_groups)
    sched = build_lr_scheduler(opt, 100, **scheduler_kwargs(cfg))
    sched.begin_epoch(30)   # the authors' t = 31: second cycle, peak 1e-3
    base = [g for g in opt.param_groups if g['group_name'] == 'base'][0]
    assert base['lr'] == pytest.approx(1e-7 + 0.5 * (1e-3 - 1e-7) * (1 + math.cos(math.pi / 30)))
    released = load_config(os.path.join(CONFIGS, 'mip_sysu_released.yaml'),
                           ['model.pretrained', 'False'])
    assert released.mip.released_compat and list(released.loss.terms) == ['id', 'triplet', 'msel']


def test_num_threads_is_checked():
    from vireid_plugin.config import ConfigError, load_config
    assert load_config('', ['num_threads', '1']).num_threads == 1
    with pytest.raises(ConfigError, match='num_threads'):
        load_config('', ['num_threads', '-1'])
