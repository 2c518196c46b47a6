"""The scripts a torchreid user writes, with ``import vireid_plugin`` on top: torchreid's own
data managers, ``build_model`` and engines train the plugin's ViTs on plugin datasets for
one epoch and print the plugin's cross-modal table; MIP and LSMRL name the engine they need.
"""
import contextlib

import pytest
import torch

import vireid_plugin  # noqa: F401  (registers the plugin's datasets and models)
from vireid_plugin import compat
from vireid_plugin.data.synthetic import make_hitsz_vcm
from vireid_plugin.engine.evaluation import extract_pool_features, score_modes

from tests.helpers import synthetic_sysu

pytestmark = pytest.mark.usefixtures('one_thread')

ENGINE = 'vireid_plugin.engine.CrossModalEngine'
SIZE = dict(height=128, width=64)   # the tiny models' input size


@pytest.fixture(scope='module')
def sysu_root(tmp_path_factory):
    return synthetic_sysu(tmp_path_factory, 8, 2, 4)


@pytest.fixture(scope='module')
def vcm_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('vcm'))
    make_hitsz_vcm(root, num_train=4, num_test=4, tracklets=(1, 2), lengths=(12, 12),
                   min_len=12, num_cams=2, size=(64, 32))
    return root


def image_manager(root):
    return compat.ImageDataManager(root=root, sources='sysu_mm01', batch_size_train=8,
                                   batch_size_test=32, workers=0, use_gpu=False,
                                   train_sampler='RandomIdentitySampler', num_instances=2,
                                   **SIZE)


def video_manager(root):
    return compat.VideoDataManager(root=root, sources='hitsz_vcm', batch_size_train=4,
                                   batch_size_test=8, workers=0, use_gpu=False, seq_len=2,
                                   train_sampler='RandomIdentitySampler', num_instances=2,
                                   **SIZE)


def torchreid_engine(engine_cls, dm, model):
    optimizer = compat.optim.build_optimizer(model, optim='adam', lr=3e-4)
    scheduler = compat.optim.build_lr_scheduler(optimizer, lr_scheduler='single_step',
                                                stepsize=20)
    return engine_cls(dm, model, optimizer=optimizer, scheduler=scheduler, use_gpu=False)


def train_one_epoch(engine_cls, dm, model_name, loss, save_dir, capsys):
    """One epoch of ``engine_cls`` on a fresh ``model_name`` (seed 0); returns (what it
    printed, the model, its weights before)."""
    torch.manual_seed(0)
    model = compat.models.build_model(model_name, dm.num_train_pids, loss=loss,
                                      pretrained=False, use_gpu=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torchreid_engine(engine_cls, dm, model).run(save_dir=str(save_dir), max_epoch=1,
                                                print_freq=1)
    return capsys.readouterr().out, model, before


def printed_row(out, mode):
    """{column: cell} of the last printed table row of ``mode``."""
    lines = out.splitlines()
    header = [line for line in lines if line.startswith('| mode')][-1]
    row = [line for line in lines if line.startswith('| ' + mode)][-1]
    cols = [c.strip() for c in header.strip('|').split('|')]
    return dict(zip(cols, [c.strip() for c in row.strip('|').split('|')]))


def check_trained_and_scored(out, model, before, dm, name, mode, protocol):
    """One epoch of torchreid's loop ran (its step lines, moved weights) and the table it
    printed is the plugin's protocol on the trained model's features, every trial."""
    assert [line for line in out.splitlines() if line.startswith('epoch: [1/1]')]
    after = model.state_dict()
    assert not torch.equal(before['head.classifier.weight'], after['head.classifier.weight'])
    assert not torch.equal(before['backbone.cls_token'], after['backbone.cls_token'])
    assert "** {} ** (cross-modal protocol '{}' from vireid_plugin".format(name, protocol) in out
    # the plugin's scoring of the same model's features; the model on whole clips for the
    # video engine, which pools frame features itself (the eval head is affine: the same)
    dataset = dm.test_loader[name]['query'].dataset
    model.eval()
    feats = extract_pool_features(lambda x, m, c: model(x), dataset, 8, 0,
                                  torch.device('cpu'), contextlib.nullcontext)
    rows = score_modes(feats, dataset.test_pool, dataset.eval_modes(), 'euclidean')
    printed = printed_row(out, mode)
    expected = [r for r in rows if r['mode'] == mode][0]
    for key in ('R1', 'mAP', 'mINP'):
        assert float(printed[key]) == pytest.approx(expected[key], abs=0.006), key
    assert int(printed['trials']) == expected['trials'] == dataset.eval_modes()[0].num_trials


@pytest.mark.parametrize('loss', ['softmax', 'triplet'])
def test_torchreid_image_engine_trains_the_vit_and_prints_the_cross_modal_table(
        sysu_root, tmp_path, capsys, loss):
    from torchreid.reid.engine import ImageSoftmaxEngine, ImageTripletEngine
    dm = image_manager(sysu_root)
    out, model, before = train_one_epoch(
        ImageSoftmaxEngine if loss == 'softmax' else ImageTripletEngine, dm, 'vit_tiny_reid',
        loss, tmp_path, capsys)
    steps = [line for line in out.splitlines() if line.startswith('epoch: [1/1]')]
    assert steps and ('loss_t' in steps[0]) == (loss == 'triplet')
    check_trained_and_scored(out, model, before, dm, 'sysu_mm01', 'all-search single-shot',
                             'sysu')


@pytest.mark.parametrize('loss', ['softmax', 'triplet'])
def test_torchreid_video_engine_trains_the_video_vit_and_prints_the_cross_modal_table(
        vcm_root, tmp_path, capsys, loss):
    from torchreid.reid.engine import VideoSoftmaxEngine, VideoTripletEngine
    dm = video_manager(vcm_root)
    out, model, before = train_one_epoch(
        VideoSoftmaxEngine if loss == 'softmax' else VideoTripletEngine, dm,
        'vit_tiny_video_avg', loss, tmp_path, capsys)
    check_trained_and_scored(out, model, before, dm, 'hitsz_vcm', 'infrared->visible', 'vcm')


def test_mip_under_a_torchreid_engine_names_the_cross_modal_engine(sysu_root, tmp_path):
    from torchreid.reid.engine import ImageSoftmaxEngine
    dm = image_manager(sysu_root)
    model = compat.models.build_model('mip_vit_tiny', dm.num_train_pids, loss='softmax',
                                      pretrained=False, use_gpu=False)
    engine = torchreid_engine(ImageSoftmaxEngine, dm, model)
    for test_only in (False, True):   # training, and evaluation alone
        with pytest.raises(ValueError) as info:
            engine.run(save_dir=str(tmp_path), max_epoch=1, test_only=test_only)
        message = str(info.value)
        assert message.startswith('MIP cannot run from images alone')
        assert 'selects its prompts by modality' in message and ENGINE in message


def test_lsmrl_under_a_torchreid_engine_names_the_cross_modal_engine(vcm_root, tmp_path):
    from torchreid.reid.engine import VideoSoftmaxEngine
    dm = video_manager(vcm_root)
    model = compat.models.build_model('lsmrl_clip_tiny', dm.num_train_pids, loss='softmax',
                                      pretrained=False, use_gpu=False)
    engine = torchreid_engine(VideoSoftmaxEngine, dm, model)
    with pytest.raises(ValueError) as info:
        engine.run(save_dir=str(tmp_path), max_epoch=1)
    message = str(info.value)
    assert message.startswith('LSMRL cannot run from images alone')
    assert 'modality= and pid=' in message and ENGINE in message


def test_torchreid_engine_on_the_plugins_seeded_data_manager_sees_each_epoch_once(
        sysu_root):
    """torchreid's engines never call the sampler's set_epoch: with the plugin's data manager
    and a seed, epoch 2 must still be epoch 2 (its own order and item seeds), not a repeat."""
    from torchreid.reid.engine import ImageTripletEngine
    from vireid_plugin.data import CrossModalImageDataManager
    from vireid_plugin.data.sampler import CrossModalIdentitySampler
    dm = CrossModalImageDataManager(root=sysu_root, sources='sysu_mm01', targets='sysu_mm01',
                                    batch_size_train=8, num_instances=2, workers=0, seed=4,
                                    use_gpu=False, **SIZE)
    seen = []

    class Recording(ImageTripletEngine):
        def forward_backward(self, data):   # torchreid's loop, a step that only records
            seen.append((self.epoch, list(data['impath'])))
            return {}
    model = torch.nn.Linear(1, 1)
    engine = Recording(dm, model, torch.optim.SGD(model.parameters(), lr=0.1), use_gpu=False)
    for engine.epoch in range(3):        # what torchreid's Engine.run does
        engine.train(print_freq=1000)
    # each epoch is what a sampler told that epoch gives, by the sampler's own definition
    items = dm.train_set.train
    fresh = CrossModalIdentitySampler(items, 8, 2, seed=4, item_seeds=True)
    for epoch in range(3):
        fresh.set_epoch(epoch)
        expected = [items[i][0] for i, _ in fresh]
        got = [p for e, paths in seen if e == epoch for p in paths]
        assert got == expected, epoch
    assert [p for e, ps in seen if e == 0 for p in ps] != [p for e, ps in seen if e == 1
                                                          for p in ps]
