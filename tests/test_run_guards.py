"""What a run checks before it reads data or writes anything (issue 26): a synthetic tree
is never taken for the real dataset, a save dir holding another run is never mixed with a
new one (and pruning never deletes the checkpoint just reported), config files and dataset
names that are wrong get one line."""
import os

import pytest
import torch

from vireid_plugin.config import ConfigError, load_config
from vireid_plugin.data.datasets.common import SyntheticDataError
from vireid_plugin.data.datasets.options import scoped_options
from vireid_plugin.data.datasets.sysu_mm01.dataset import SYSUMM01
from vireid_plugin.data.synthetic import SYNTHETIC_MARKER, make_sysu_mm01
from vireid_plugin.engine.checkpoint import CheckpointManager

from tests.helpers import DEMO, config_file, synthetic_sysu


@pytest.fixture(scope='module')
def synthetic_root(tmp_path_factory):
    return synthetic_sysu(tmp_path_factory, 4, 1, 2, 1, name='syn')


def one_line(err):
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith('error: '), err
    return lines[0]


def cheap(root, save_dir, *extra):
    return ['--config-file', DEMO, '--root', root, 'data.save_dir', save_dir,
            'data.workers', '0', 'data.height', '64', 'data.width', '32',
            'train.batch_size', '8', 'test.eval_before_train', 'False', 'test.num_trials', '1',
            'data_cache.enabled', 'False'] + [str(e) for e in extra]


# ---------------------------------------------------------------- synthetic vs real

def test_a_real_data_run_refuses_a_synthetic_tree_before_anything(run_main, synthetic_root,
                                                                  tmp_path):
    save_dir = tmp_path / 'log'
    rc, out = run_main(cheap(synthetic_root, save_dir, 'data.synthetic', 'False'))
    assert rc == 1
    line = one_line(out.err)
    tree = os.path.join(synthetic_root, 'SYSU-MM01')
    assert 'synthetic' in line and tree in line and SYNTHETIC_MARKER in line
    assert 'put the real SYSU-MM01 at' in line and 'data.synthetic True' in line
    assert 'Config:' not in out.out   # found before the config dump and any data work
    assert not save_dir.exists()      # nothing written


def test_the_loader_reads_the_marker_both_ways(synthetic_root, tmp_path, capsys):
    # a run for real data (the plugin's data managers scope data.synthetic False) refuses it
    with scoped_options({'data.synthetic': False}), pytest.raises(SyntheticDataError) as exc:
        SYSUMM01(root=synthetic_root)
    assert str(exc.value).count('\n') == 0
    # a run on synthetic data reads it
    with scoped_options({'data.synthetic': True}):
        assert len(SYSUMM01(root=synthetic_root).train) > 0
    # plain torchreid code (no run) reads it, and is told in one line what it is
    capsys.readouterr()
    SYSUMM01(root=synthetic_root)
    assert 'a synthetic SYSU-MM01' in capsys.readouterr().out
    # the same files without the marker (an older writer's tree): the loaders of a
    # real-data run refuse them too, plain torchreid code reads them and is told what they
    # look like, and a .vireid-real file makes them real data for both
    old = tmp_path / 'old'
    make_sysu_mm01(str(old), num_train=4, num_val=1, num_test=2, images_per_cam=1,
                   size=(64, 32))
    tree = os.path.join(str(old), 'SYSU-MM01')
    os.remove(os.path.join(tree, SYNTHETIC_MARKER))
    with scoped_options({'data.synthetic': False}), pytest.raises(
            SyntheticDataError, match='7 identities where the real SYSU-MM01 has 491'):
        SYSUMM01(root=str(old))
    capsys.readouterr()
    assert len(SYSUMM01(root=str(old)).train) > 0
    notice = [line for line in capsys.readouterr().out.splitlines() if tree in line]
    assert len(notice) == 1 and 'older vireid_plugin' in notice[0], notice
    open(os.path.join(tree, '.vireid-real'), 'w').close()
    with scoped_options({'data.synthetic': False}):
        assert len(SYSUMM01(root=str(old)).train) > 0
    capsys.readouterr()
    SYSUMM01(root=str(old))
    assert 'older vireid_plugin' not in capsys.readouterr().out
    # the root itself being the dataset folder is checked too
    with scoped_options({'data.synthetic': False}), pytest.raises(SyntheticDataError):
        SYSUMM01(root=os.path.join(synthetic_root, 'SYSU-MM01'))


def test_prepare_never_overwrites_a_real_tree(tmp_path):
    from vireid_plugin.data.prepare import check_real_data, prepare_datasets
    cfg = load_config(DEMO, ['data.root', str(tmp_path)])
    (tmp_path / 'SYSU-MM01' / 'exp').mkdir(parents=True)   # a "real" (unmarked) tree
    assert prepare_datasets(cfg) == []
    assert os.listdir(str(tmp_path / 'SYSU-MM01')) == ['exp']
    check_real_data(load_config(DEMO, ['data.root', str(tmp_path), 'data.synthetic', 'False']))


# ---------------------------------------------------------------- one run per save dir

def _old_run(save_dir):
    (save_dir / 'model').mkdir(parents=True)
    (save_dir / 'model' / 'model.pth.tar-10').write_bytes(b'old run')
    (save_dir / 'results.json').write_text('[]')


def test_a_save_dir_holding_a_run_is_refused(run_main, synthetic_root, tmp_path):
    save_dir = tmp_path / 'res'
    _old_run(save_dir)
    rc, out = run_main(cheap(synthetic_root, save_dir, 'data.synthetic', 'True',
                            'train.max_epoch', '1'))
    assert rc == 1
    line = one_line(out.err)
    assert str(save_dir) in line and 'model/model.pth.tar-10' in line
    assert '--resume' in line and 'another data.save_dir' in line and '--start-over' in line
    assert sorted(os.listdir(str(save_dir))) == ['model', 'results.json']   # untouched
    # an evaluation into it would overwrite its features and mix its results too
    rc, out = run_main(cheap(synthetic_root, save_dir, 'data.synthetic', 'True',
                            'test.evaluate', 'True'))
    assert rc == 1 and '--resume' not in one_line(out.err)


def test_resume_passes_the_save_dir_check(run_main, synthetic_root, tmp_path):
    save_dir = tmp_path / 'res'
    _old_run(save_dir)
    rc, out = run_main(cheap(synthetic_root, save_dir, 'data.synthetic', 'True', '--resume',
                            save_dir / 'model' / 'model.pth.tar-10'))
    assert rc == 1
    line = one_line(out.err)   # it goes on to the checkpoint, which is not one
    assert 'holds another run' not in line and 'model.pth.tar-10' in line


def test_start_over_moves_the_old_run_aside(run_main, synthetic_root, tmp_path):
    save_dir = tmp_path / 'res'
    _old_run(save_dir)
    # the run stops at once on a config error of the engine; the old run is aside by then
    rc, out = run_main(cheap(synthetic_root, save_dir, 'data.synthetic', 'True',
                            '--start-over', 'train.max_epoch', '1', 'test.select_on', 'test',
                            'test.select_mode', 'no-such-mode'))
    moved = [p for p in os.listdir(str(tmp_path)) if p.startswith('res.old-')]
    assert len(moved) == 1
    old = tmp_path / moved[0]
    assert (old / 'model' / 'model.pth.tar-10').read_bytes() == b'old run'
    assert (old / 'results.json').read_text() == '[]'
    assert 'now in {}'.format(old) in out.out
    assert not (save_dir / 'results.json').exists()


def _state(value):
    return {'state_dict': {'w': torch.full((2,), float(value))}, 'epoch': value}


def test_pruning_keeps_the_newest_and_never_the_one_just_saved(tmp_path):
    manager = CheckpointManager(str(tmp_path), keep=3)
    for epoch in range(1, 6):
        manager.save(_state(epoch), epoch)
    assert [e for e, _, _ in manager.regular()] == [3, 4, 5]
    # checkpoints of later steps (another run's, an abandoned branch) do not push out the
    # one this run just wrote, and are left alone
    path = manager.save(_state(1), 1)
    assert os.path.isfile(path)
    assert [e for e, _, _ in manager.regular()] == [1, 3, 4, 5]
    manager.save(_state(2), 2, iteration=7)
    assert [(e, i) for e, i, _ in manager.regular()] == [(1, 0), (2, 7), (3, 0), (4, 0),
                                                         (5, 0)]


# ---------------------------------------------------------------- config files and names

@pytest.mark.parametrize('text,expected', [
    ('train:\n  lr: 0.1\n   max_epoch: 3\n', 'line 3, column 13'),
    ('a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n'
     'test:\n  ranks: *b\n', 'aliases (*a) are not allowed'),
])
def test_bad_yaml_names_file_line_and_column(tmp_path, text, expected):
    path = tmp_path / 'bad.yaml'
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_config(str(path))
    msg = str(exc.value)
    assert str(path) in msg and expected in msg and '\n' not in msg


def test_a_non_utf8_config_file_is_one_line(tmp_path):
    path = tmp_path / 'latin1.yaml'
    path.write_bytes('train:\n  lr: 0.1  # caf\xe9\n'.encode('latin-1'))
    with pytest.raises(ConfigError, match=r'latin1\.yaml is not UTF-8 text \(byte 0xe9'):
        load_config(str(path))


def test_a_missing_base_names_the_including_file(tmp_path):
    child = tmp_path / 'child.yaml'
    child.write_text('_BASE_: parent.yaml\ntrain:\n  max_epoch: 2\n')
    with pytest.raises(ConfigError) as exc:
        load_config(str(child))
    msg = str(exc.value)
    assert str(tmp_path / 'parent.yaml') in msg and str(child) in msg and '_BASE_' in msg


@pytest.mark.parametrize('argv,expected', [
    (['-s', 'sysu_mm02'], ["unknown dataset 'sysu_mm02'", 'did you mean sysu_mm01']),
    (['-s', 'hitsz_vcm'], ['hitsz_vcm is a video dataset', 'data.type video']),
    (['-t', 'sysu_mm01', 'data.type', 'video'], ['sysu_mm01 is an image dataset',
                                                 'data.type image']),
])
def test_dataset_names_are_checked_with_the_config(run_main, tmp_path, argv, expected):
    rc, out = run_main(argv[:2] + ['--config-file', DEMO, 'data.save_dir', tmp_path / 'log']
                      + argv[2:])
    assert rc == 2
    line = one_line(out.err)
    assert all(e in line for e in expected), line
    assert 'Config:' not in out.out


def test_overrides_after_a_dataset_list_are_overrides():
    from vireid_plugin.runner import build_parser, split_list_overrides
    args = split_list_overrides(build_parser().parse_args(
        ['-t', 'regdb', 'regdb_t2v', 'test.evaluate', 'True', 'train.max_epoch', '2']))
    assert args.targets == ['regdb', 'regdb_t2v']
    assert args.opts == ['test.evaluate', 'True', 'train.max_epoch', '2']
    args = split_list_overrides(build_parser().parse_args(['-s', 'sysu_mm01', 'x.y', '1']))
    assert args.sources == ['sysu_mm01'] and args.opts == ['x.y', '1']


# ---------------------------------------------------------------- checkpoints, finished runs

@pytest.mark.parametrize('key', ['model.load_weights', 'model.resume'])
def test_a_bad_checkpoint_is_found_before_the_data(run_main, synthetic_root, tmp_path, key):
    path = tmp_path / 'zeros.pth'
    path.write_bytes(b'\0' * 4096)
    rc, out = run_main(cheap(synthetic_root, tmp_path / 'log', 'data.synthetic', 'True',
                            key, path))
    assert rc == 1
    line = one_line(out.err)
    assert key in line and str(path) in line
    assert 'Config:' not in out.out and not (tmp_path / 'log').exists()


def test_resuming_a_finished_run_says_so_and_trains_nothing(run_main, synthetic_root, tmp_path):
    save_dir = tmp_path / 'done'
    base = cheap(synthetic_root, save_dir, 'data.synthetic', 'True', 'train.max_epoch', '1',
                 'sampler.num_instances', '2', 'train.print_freq', '1000')
    rc, _ = run_main(base)
    assert rc == 0 and (save_dir / 'model' / 'model.pth.tar-1').is_file()
    rc, out = run_main(base + ['--resume'])
    assert rc == 0
    assert 'has trained all 1 epochs of train.max_epoch: nothing to train' in out.out
    assert 'Start training' not in out.out


def test_a_batch_the_training_set_cannot_fill_is_one_config_line(run_main, synthetic_root,
                                                                 tmp_path):
    # 5 training ids (4 train + 1 val), and 16 / (2 x 1) = 8 ids per batch asked for
    rc, out = run_main(cheap(synthetic_root, tmp_path / 'log', 'data.synthetic', 'True',
                            'train.batch_size', '16', 'sampler.num_instances', '1'))
    assert rc == 2
    line = one_line(out.err)
    assert 'P=8 ids per batch' in line and 'only 5 ids' in line
    assert 'train.batch_size' in line


def test_a_torchreid_built_model_names_its_input_size():
    import torchreid
    model = torchreid.reid.models.build_model('vit_tiny_reid', 4, pretrained=False).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 128, 64)).shape[0] == 1   # its size (README table)
        with pytest.raises(ConfigError) as exc:
            model(torch.zeros(1, 3, 256, 128))
    msg = str(exc.value)
    assert 'vit_tiny_reid takes 128x64 images' in msg and 'got 256x128' in msg
    assert 'height=128, width=64' in msg and '\n' not in msg


def test_a_dataset_registered_after_the_import_reaches_torchreid_without_a_call():
    """Plain torchreid code that imports a module of its own registering a dataset: the
    module's decorator is all it takes (docs/adding-a-dataset.md shows the same)."""
    from vireid_plugin import compat
    from vireid_plugin.data.datasets import CrossModalImageDataset
    from vireid_plugin.registry import IMAGE_DATASETS

    table = vars(compat.datasets)['__image_datasets']
    assert 'late_toy_issue26' not in table

    class LateToy(CrossModalImageDataset):
        dataset_dir = 'LateToy'
    try:
        IMAGE_DATASETS.register('late_toy_issue26', LateToy)
        assert table['late_toy_issue26'] is LateToy
    finally:
        IMAGE_DATASETS._table.pop('late_toy_issue26', None)
        table.pop('late_toy_issue26', None)


def test_missing_pretrained_weights_are_found_before_the_data(run_main, synthetic_root,
                                                               tmp_path):
    missing = tmp_path / 'vit_base.safetensors'
    rc, out = run_main(cheap(synthetic_root, tmp_path / 'log', 'data.synthetic', 'True',
                            'model.pretrained', 'True', 'model.pretrained_path', missing))
    assert rc == 1
    line = one_line(out.err)
    assert 'model.pretrained_path' in line and str(missing) in line
    assert 'Config:' not in out.out


# ---------------------------------------------------------------- before the data (the rest)

def _checkpoint(path, name, num_classes=5, training=True, **kwargs):
    """A checkpoint of model ``name`` (built bare; a training checkpoint or weights only)."""
    from vireid_plugin.models import build_model
    state = build_model(name, num_classes, pretrained=False, num_cameras=2, **kwargs).state_dict()
    torch.save({'state_dict': state, 'epoch': 3} if training else state, str(path))
    return path


def _no_data(tmp_path, model, *extra):
    """A run of ``model`` (its demo config) whose data would fail to load: a data root
    that does not exist, real data."""
    argv = cheap(str(tmp_path / 'no-such-root'), tmp_path / 'log', 'data.synthetic', 'False',
                 'model.name', model, *extra)
    family = model.split('_')[0]
    if family != 'vit':
        argv[1] = config_file('demo_{}.yaml'.format(family))
    return argv


@pytest.mark.parametrize('key,other,model', [
    ('model.load_weights', 'vit_tiny_reid', 'mip_vit_tiny'),
    ('model.load_weights', 'agw_resnet_tiny', 'mip_vit_tiny'),
    ('model.resume', 'mip_vit_tiny', 'vit_tiny_reid'),
])
def test_a_checkpoint_of_another_model_is_found_before_the_data(run_main, tmp_path, key, other,
                                                                model):
    path = _checkpoint(tmp_path / 'other.pth', other)
    rc, out = run_main(_no_data(tmp_path, model, key, path))
    assert rc == 1
    line = one_line(out.err)
    assert line.startswith('error: {}: {} does not fit model {}'.format(key, path, model))
    assert 'it looks like a checkpoint of {}'.format(other) in line
    assert 'no-such-root' not in line and 'Config:' not in out.out
    assert not (tmp_path / 'log').exists()


def test_resume_auto_checks_the_newest_checkpoint_before_the_data(run_main, tmp_path):
    save_dir = tmp_path / 'log'
    (save_dir / 'model').mkdir(parents=True)
    newest = _checkpoint(save_dir / 'model' / 'model.pth.tar-3', 'mip_vit_tiny')
    rc, out = run_main(_no_data(tmp_path, 'vit_tiny_reid', '--resume'))
    assert rc == 1
    line = one_line(out.err)
    assert line.startswith('error: model.resume: {} does not fit model vit_tiny_reid'.format(
        newest))
    assert 'it looks like a checkpoint of mip_vit_tiny' in line and 'Config:' not in out.out
    assert os.listdir(str(save_dir)) == ['model']


def test_a_checkpoint_for_another_input_size_names_the_keys_before_the_data(run_main, tmp_path):
    # vit_tiny_reid trained at 128x64 (8x4 patches + 1 token), loaded for 64x32 (4x2 + 1)
    path = _checkpoint(tmp_path / 'vit.pth', 'vit_tiny_reid', img_size=(128, 64))
    rc, out = run_main(_no_data(tmp_path, 'vit_tiny_reid', 'model.load_weights', path))
    assert rc == 1
    line = one_line(out.err)
    assert 'backbone.pos_embed (file (1, 33, 96), model (1, 9, 96))' in line
    assert ('it looks like a checkpoint of vit_tiny_reid with its default input size and '
            'options, which this run changes (data.height, data.width') in line
    assert 'Config:' not in out.out


def test_a_classifier_of_another_size_is_left_to_the_load(cli, tmp_path):
    """Fine-tuning on another dataset: a checkpoint trained on 7 ids passes the check
    before the data (the class count is not known yet); the load after the data reports
    the classifier as today (skipped with model.load_weights_strict False)."""
    from vireid_plugin.models import build_model, load_weights
    path = _checkpoint(tmp_path / 'seven.pth', 'vit_tiny_reid', num_classes=7, training=False,
                       img_size=(64, 32))
    for strict in ('True', 'False'):
        cfg = load_config(DEMO, ['data.height', '64', 'data.width', '32', 'data.save_dir',
                                 str(tmp_path / 'log'), 'model.load_weights', str(path),
                                 'model.load_weights_strict', strict])
        cli.preflight(cfg)   # no error
    model = build_model('vit_tiny_reid', 4, pretrained=False, num_cameras=2, img_size=(64, 32))
    report = load_weights(model, str(path), strict=False)
    assert [m[0] for m in report.mismatched] == ['head.classifier.weight']
    from vireid_plugin.checkpoint_io import CheckpointError
    with pytest.raises(CheckpointError, match='head.classifier.weight'):
        load_weights(model, str(path), strict=True)


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """No network (HF_HUB_OFFLINE), an empty Hugging Face cache, an empty weights folder."""
    from huggingface_hub import constants
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setattr(constants, 'HF_HUB_CACHE', str(tmp_path / 'hf'))
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
    return tmp_path


@pytest.mark.parametrize('model,repo,fetched', [
    ('vit_small_reid', 'timm/vit_small_patch16_224.augreg_in21k_ft_in1k', None),
    ('mip_vit_base_patch16', 'timm/vit_base_patch16_224.orig_in21k_ft_in1k',
     'vit_base_patch16_224.orig_in21k_ft_in1k.safetensors'),
    ('lsmrl_clip_vit_b16', 'timm/vit_base_patch16_clip_224.openai', 'ViT-B-16.pt'),
])
def test_pretrained_weights_not_available_offline_are_found_before_the_data(
        run_main, offline_hub, model, repo, fetched):
    tmp_path = offline_hub
    rc, out = run_main(_no_data(tmp_path, model, 'model.pretrained', 'True'))
    assert rc == 1
    line = one_line(out.err)
    searched = os.path.join(str(tmp_path / 'hf'), 'models--' + repo.replace('/', '--'))
    assert 'not in the Hugging Face cache (searched {})'.format(searched) in line
    assert 'HF_HUB_OFFLINE is set' in line and 'scripts/download_weights.py' in line
    assert 'model.pretrained_path' in line and 'Config:' not in out.out
    if fetched:   # where the download command writes them
        target = os.path.join(str(tmp_path / 'xdg'), 'vireid_plugin', 'weights', fetched)
        assert '(it writes {})'.format(target) in line
        # once fetched there, the line names the file and the config line to use
        os.makedirs(os.path.dirname(target), exist_ok=True)
        open(target, 'wb').close()
        rc, out = run_main(_no_data(tmp_path, model, 'model.pretrained', 'True'))
        assert 'set model.pretrained_path {}'.format(target) in one_line(out.err)


# ---------------------------------------------------------------- trees of older writers

def test_an_unmarked_tree_of_an_older_writer_is_refused(run_main, tmp_path):
    """A tree the synthetic writer made before it wrote its marker: refused before any
    data work, saying what it looks like and how to go on."""
    root = tmp_path / 'old'
    make_sysu_mm01(str(root), num_train=4, num_val=1, num_test=2, images_per_cam=1,
                   size=(64, 32))
    tree = os.path.join(str(root), 'SYSU-MM01')
    os.remove(os.path.join(tree, SYNTHETIC_MARKER))   # what an older version wrote
    rc, out = run_main(cheap(str(root), tmp_path / 'log', 'data.synthetic', 'False'))
    assert rc == 1
    line = one_line(out.err)
    assert tree in line and 'synthetic SYSU-MM01 written by an older vireid_plugin' in line
    assert '7 identities where the real SYSU-MM01 has 491' in line
    assert 'delete it' in line and 'data.synthetic True' in line
    assert 'Config:' not in out.out and not (tmp_path / 'log').exists()
    # a run on synthetic data uses it as such, and says what it is
    import contextlib
    import io
    from vireid_plugin.data.prepare import check_real_data, prepare_datasets
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert prepare_datasets(load_config(DEMO, ['data.root', str(root)])) == []
    assert 'looks like a synthetic SYSU-MM01 written by an older' in printed.getvalue()
    # the same tree declared real by its owner (a subset of the real data) passes the check
    cfg = load_config(DEMO, ['data.root', str(root), 'data.synthetic', 'False'])
    open(os.path.join(tree, '.vireid-real'), 'w').close()
    check_real_data(cfg)


@pytest.mark.parametrize('name,kwargs,ids', [
    ('sysu_mm01', dict(num_train=4, num_val=1, num_test=2, images_per_cam=1), 7),
    ('regdb', dict(num_ids=6, images_per_id=1, num_trials=1), 6),
    ('hitsz_vcm', dict(num_train=3, num_test=3, lengths=(8, 14)), 6),
    ('hitsz_vcm', dict(flat=True, num_train=3, num_test=3, lengths=(8, 14)), 6),
    ('llcm', dict(num_train=4, num_test=3, images=(1, 1)), 7),
    ('buptcampus', dict(num_train=3, num_aux=0, num_test=4, lengths=(2, 3)), 7),
])
def test_every_writer_s_tree_without_its_marker_is_recognised(tmp_path, name, kwargs, ids):
    """The signature holds for the trees of all five writers (their identity folders are
    counted where each layout keeps them), and only without the marker."""
    from vireid_plugin.data.synthetic import older_synthetic_ids
    from vireid_plugin.registry import SYNTHETIC_WRITERS
    writer = SYNTHETIC_WRITERS.get(name)
    tree = writer(str(tmp_path), size=(32, 16), **kwargs)
    assert older_synthetic_ids(tree, writer.real_ids) is None   # marked: a synthetic tree
    os.remove(os.path.join(tree, SYNTHETIC_MARKER))
    assert older_synthetic_ids(tree, writer.real_ids) == ids


def test_a_tree_shaped_like_the_real_one_is_accepted(tmp_path):
    """Not made by the generator, with the real RegDB's 412 identities (one image a
    modality each): read as real data; with a quarter of them it would be refused."""
    from tests.dataset_trees import write_regdb_tree
    from vireid_plugin.data.prepare import check_real_data
    ids = list(range(1, 413))
    trials = {1: {'train': {i: n for n, i in enumerate(ids[:206])},
                  'test': {i: n for n, i in enumerate(ids[206:])}}}
    root = tmp_path / 'real'
    write_regdb_tree(root, trials, per_id=1)
    cfg = load_config(DEMO, ['data.root', str(root), 'data.synthetic', 'False'],
                      sources=['regdb'], targets=['regdb'])
    check_real_data(cfg)   # no error
    small = tmp_path / 'small'
    write_regdb_tree(small, {1: {'train': {i: n for n, i in enumerate(ids[:50])},
                                 'test': {i: n for n, i in enumerate(ids[50:100])}}}, per_id=1)
    with pytest.raises(SyntheticDataError, match='100 identities where the real RegDB has 412'):
        check_real_data(load_config(DEMO, ['data.root', str(small), 'data.synthetic', 'False'],
                                    sources=['regdb'], targets=['regdb']))
