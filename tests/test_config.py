import pytest

from vireid_plugin.config import ConfigError, get_default_config, load_config


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


@pytest.mark.parametrize('name', ['vit_sysu.yaml', 'demo.yaml', 'demo_regdb.yaml',
                                  'demo_vcm.yaml'])
def test_shipped_configs_load(name):
    import os
    path = os.path.join(os.path.dirname(__file__), '..', 'configs', name)
    if not os.path.exists(path):
        pytest.skip('{} not shipped yet'.format(name))
    cfg = load_config(path)
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
