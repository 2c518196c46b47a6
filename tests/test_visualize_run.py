"""scripts/visualize.py on tiny trained runs: PNG files, TensorBoard images and scalars,
and the evaluation's one extraction per shared pool (counted)."""
import glob
import os

import pytest
from PIL import Image

from vireid_plugin.engine import cross_modal
from vireid_plugin.engine.saved_features import load_features
from vireid_plugin.visualize.cmc import CMC_SIZE
from vireid_plugin.visualize.common import DPI
from vireid_plugin.visualize.ranked import ranked_figure_size
from vireid_plugin.visualize.run import main as visualize_main
from vireid_plugin.visualize.tsne import PANEL

from tests.helpers import config_file, synthetic_sysu

pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    return synthetic_sysu(tmp_path_factory, 12, 2, 8)


def _train(cli, root, save_dir, config, *extra):
    argv = ['--config-file', config_file(config), '--root', root,
            'data.save_dir', save_dir, 'data.synthetic', 'True', 'data.workers', '0',
            'data.height', '64', 'data.width', '32', 'train.batch_size', '16',
            'train.max_epoch', '1', 'test.num_trials', '2', 'train.print_freq', '100',
            'test.batch_size', '32'] + list(extra)
    assert cli.main(argv) == 0


@pytest.fixture(scope='module')
def vit_run(cli, root, tmp_path_factory, monkeypatch_module):
    """ViT, targets sysu_mm01 + sysu_mm01_indoor (one pool), scored before and after."""
    calls = []
    real = cross_modal.extract_pool_features

    def counting(*args, **kwargs):
        calls.append(len(args[1].test_pool))
        return real(*args, **kwargs)

    monkeypatch_module.setattr(cross_modal, 'extract_pool_features', counting)
    save_dir = str(tmp_path_factory.mktemp('vit_run'))
    _train(cli, root, save_dir, 'demo.yaml', 'vit.stride_size', '16',
           'data.targets', '["sysu_mm01", "sysu_mm01_indoor"]', 'test.eval_before_train', 'True')
    return save_dir, calls


@pytest.fixture(scope='module')
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_targets_sharing_a_pool_are_extracted_once_per_evaluation(vit_run):
    save_dir, calls = vit_run
    # two evaluations (untrained, final) x two targets, one extraction each evaluation
    assert len(calls) == 2
    saved = load_features(os.path.join(save_dir, 'features.safetensors'))
    assert set(saved.targets) == {'sysu_mm01', 'sysu_mm01_indoor'}
    assert saved.targets['sysu_mm01'].features is saved.targets['sysu_mm01_indoor'].features
    assert len(saved.targets['sysu_mm01'].features) == calls[0]
    assert os.path.isfile(os.path.join(save_dir, 'features-untrained.safetensors'))


def _event_tags(save_dir):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    tags = {'images': set(), 'scalars': set()}
    for path in glob.glob(os.path.join(save_dir, 'events.out.tfevents.*')):
        acc = EventAccumulator(path, size_guidance={'images': 0, 'scalars': 0})
        acc.Reload()
        for kind in tags:
            tags[kind] |= set(acc.Tags()[kind])
    return tags


def test_visualize_draws_every_figure_of_a_vit_run(vit_run, capsys):
    save_dir, _ = vit_run
    assert visualize_main([save_dir, '--queries', '3', '--ids', '4']) == 0
    out = capsys.readouterr().out
    figures = os.path.join(save_dir, 'figures')
    size = {os.path.basename(p): Image.open(p).size
            for p in glob.glob(os.path.join(figures, '*.png'))}
    w, h = ranked_figure_size(3, 10)
    assert size['ranked_sysu_mm01_all-search_single-shot.png'] == (round(w * DPI),
                                                                  round(h * DPI))
    assert 'ranked_sysu_mm01_indoor_indoor-search_single-shot.png' in size
    # one t-SNE and one attention figure for the shared pool: before and after side by side
    assert size['tsne_sysu_mm01.png'] == (2 * PANEL[0] * DPI, PANEL[1] * DPI)
    assert 'tsne_sysu_mm01_indoor.png' not in size
    assert size['cmc.png'] == (CMC_SIZE[0] * DPI, CMC_SIZE[1] * DPI)
    assert size['attention_sysu_mm01.png'] == (round(1.1 * 6 * DPI), round(4.2 * DPI))
    assert 'figures/cmc.png' in out
    tags = _event_tags(save_dir)
    assert {'Figures/sysu_mm01/ranked/all-search_single-shot', 'Figures/cmc',
            'Figures/sysu_mm01/tsne', 'Figures/sysu_mm01/attention'} <= tags['images']
    # every protocol row's R1/mAP/mINP as a scalar, for each target
    for metric in ('R1', 'mAP', 'mINP'):
        assert 'Test/sysu_mm01/all-search_single-shot/' + metric in tags['scalars']
        assert 'Test/sysu_mm01_indoor/indoor-search_single-shot/' + metric in tags['scalars']


def test_visualize_draws_mip_instance_prompts(cli, root, tmp_path):
    save_dir = str(tmp_path / 'mip')
    _train(cli, root, save_dir, 'demo_mip.yaml', 'mip.stride_size', '16',
           'mip.num_tokens', '2', 'mip.num_instance_tokens', '2', 'test.eval_before_train',
           'False')
    written = visualize_main([save_dir, '--queries', '2', '--ids', '3',
                                         '--no-tensorboard'])
    assert written == 0
    png = os.path.join(save_dir, 'figures', 'tsne_instance_prompts_sysu_mm01.png')
    assert Image.open(png).size == (PANEL[0] * DPI, PANEL[1] * DPI)
    assert os.path.isfile(os.path.join(save_dir, 'figures', 'attention_sysu_mm01.png'))
    # no before-training features in this run: the feature t-SNE has one panel
    assert Image.open(os.path.join(save_dir, 'figures', 'tsne_sysu_mm01.png')).size == (
        PANEL[0] * DPI, PANEL[1] * DPI)


def test_visualize_names_a_missing_run(tmp_path, capsys):
    assert visualize_main([str(tmp_path / 'nothing')]) == 1
    assert 'run directory not found' in capsys.readouterr().err


def test_visualize_a_video_run_draws_per_frame_attention(cli, tmp_path):
    from vireid_plugin.data.synthetic import make_hitsz_vcm
    root = str(tmp_path / 'data')
    make_hitsz_vcm(root, num_train=8, num_test=6, size=(64, 32))
    save_dir = str(tmp_path / 'lsmrl')
    argv = ['--config-file', config_file('demo_lsmrl.yaml'), '--root', root,
            'data.save_dir', save_dir, 'data.synthetic', 'True', 'data.workers', '0',
            'data.height', '64', 'data.width', '32', 'train.batch_size', '8',
            'train.max_epoch', '1', 'test.eval_before_train', 'False', 'video.seq_len', '3',
            'train.print_freq', '100']
    assert cli.main(argv) == 0
    assert visualize_main([save_dir, '--queries', '2', '--ids', '3',
                                      '--no-tensorboard']) == 0
    figures = os.path.join(save_dir, 'figures')
    # 3 visible + 3 infrared clips, one row each, one overlay per frame (3 frames)
    assert Image.open(os.path.join(figures, 'attention_hitsz_vcm.png')).size == (
        3 * DPI, round(6 * 2.1 * DPI))
    for mode in ('infrared_to_visible', 'visible_to_infrared'):
        assert os.path.isfile(os.path.join(figures, 'ranked_hitsz_vcm_{}.png'.format(mode)))
    assert os.path.isfile(os.path.join(figures, 'tsne_hitsz_vcm.png'))
