"""The figure modules on tiny models and hand-made pools (no training)."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

import vireid_plugin  # noqa: F401  (registers the models)
from vireid_plugin.data.eval_split import EvalMode
from vireid_plugin.models import build_model
from vireid_plugin.visualize.attention import attention_maps, attention_probabilities
from vireid_plugin.visualize.common import DPI, save_png
from vireid_plugin.visualize.ranked import ranked_figure_size, ranked_lists
from vireid_plugin.visualize.tsne import PANEL, select_identities, tsne_figure

from tests.helpers import config_file


def test_timm_attention_probabilities_equal_sdpa_on_identity_values():
    from timm.models.vision_transformer import Attention
    torch.manual_seed(0)
    attn = Attention(16, num_heads=4, qkv_bias=True).eval()
    x = torch.randn(2, 5, 16)
    # independent reference: SDPA with the identity as values returns the weights
    q, k, _ = attn.qkv(x).reshape(2, 5, 3, 4, 4).permute(2, 0, 3, 1, 4)
    eye = torch.eye(5).expand(2, 4, 5, 5)
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, eye).mean(1)
    assert torch.allclose(attention_probabilities(attn, x), ref, atol=1e-5)


def test_multihead_attention_probabilities_equal_torch_weights():
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(16, 4, batch_first=True).eval()
    x = torch.randn(3, 7, 16)
    _, ref = mha(x, x, x, need_weights=True, average_attn_weights=True)
    assert torch.allclose(attention_probabilities(mha, x), ref, atol=1e-5)


def _inputs(b, t=None, size=(64, 32)):
    torch.manual_seed(0)
    shape = (b, 3) + size if t is None else (b, t, 3) + size
    return torch.randn(shape), torch.tensor([0, 1] * (b // 2)), torch.zeros(b, dtype=torch.long)


@pytest.mark.parametrize('name,t', [('vit_tiny_reid', None), ('vit_tiny_video_avg', 3),
                                    ('mip_vit_tiny', None), ('lsmrl_clip_tiny', 3)])
def test_attention_maps_of_image_and_video_models(name, t):
    kwargs = dict(pretrained=False, img_size=(64, 32))
    if name.startswith(('vit', 'mip')):
        kwargs['stride_size'] = 16
    if name == 'mip_vit_tiny':
        kwargs.update(num_tokens=2, num_instance_tokens=3)
    model = build_model(name, 4, **kwargs).eval()
    x, modality, camid = _inputs(2, t)
    with torch.no_grad():
        reference = model(x, modality=modality, camid=camid)
    maps, shares = attention_maps(model, x, modality, camid)
    grid = (64 // 16, 32 // 16)
    assert maps.shape == (2, t or 1) + grid
    assert np.allclose(maps.sum((-2, -1)), 1.0, atol=1e-5)
    total = sum(shares.values())
    assert np.allclose(total, 1.0, atol=1e-5)   # CLS + prompts + patches = all attention
    if name == 'mip_vit_tiny':
        assert set(shares) == {'CLS', 'modality prompts', 'instance prompts', 'patches'}
    # the probe leaves the forward as it was (fused attention, same output)
    with torch.no_grad():
        assert torch.allclose(model(x, modality=modality, camid=camid), reference)


def test_ranked_lists_leave_out_what_the_protocol_removes():
    # pool: query pid 1 from camera 3 (camid 2); gallery: a camera-2 item of pid 1
    # (nearest, removed by the SYSU room rule), pid 2 (camid 0), pid 1 (camid 0)
    pids = np.array([1, 1, 2, 1])
    camids = np.array([2, 1, 0, 0])
    feats = torch.tensor([[0.0], [0.1], [0.2], [0.3]])
    mode = EvalMode('ir->vis', 'sysu', np.array([0]), (np.array([1, 2, 3]),))
    ((q, ranked),) = ranked_lists(feats, pids, camids, mode, num_queries=5, topk=10)
    assert q == 0 and ranked == [(2, False), (3, True)]
    mode_regdb = EvalMode('ir->vis', 'regdb', np.array([0]), (np.array([1, 2, 3]),))
    ((_, kept),) = ranked_lists(feats, pids, camids, mode_regdb)
    assert kept == [(1, True), (2, False), (3, True)]
    # the transposed LLCM metric ranks the other way round: gallery items are the probes
    mode_t = EvalMode('vis->ir', 'llcm_transposed', np.array([0]), (np.array([3]),))
    ((probe, lst),) = ranked_lists(feats, pids, camids, mode_t)
    assert probe == 3 and lst == [(0, True)]


def test_figures_have_the_size_they_are_drawn_at(tmp_path):
    rng = np.random.default_rng(0)
    pids = np.repeat(np.arange(6), 6)
    modalities = np.tile([0, 1], 18)
    feats = rng.normal(size=(36, 8)) + pids[:, None]
    chosen = select_identities(pids, modalities, num_ids=4, seed=0)
    assert len(set(pids[chosen].tolist())) == 4
    fig = tsne_figure([('before', feats[chosen] * 0.1), ('after', feats[chosen])],
                      pids[chosen], modalities[chosen])
    path = save_png(fig, str(tmp_path / 't.png'))
    assert Image.open(path).size == (int(2 * PANEL[0] * DPI), int(PANEL[1] * DPI))
    with pytest.raises(ValueError, match='identical'):
        tsne_figure([('constant', feats * 0)], pids, modalities)
    w, h = ranked_figure_size(3, 10)
    assert (w, h) == pytest.approx((11 * 0.8, 3 * 1.7))


def test_cmc_figure_reads_the_last_trained_rows(tmp_path):
    from vireid_plugin.visualize.cmc import cmc_figure
    rows = [{'mode': 'm', 'R1': 10.0, 'R5': 30.0, 'R10': 40.0, 'R20': 60.0, 'mAP': 12.0}]
    later = [dict(rows[0], R1=50.0, R5=70.0)]
    (tmp_path / 'a').mkdir()
    (tmp_path / 'a' / 'results.json').write_text(json.dumps(
        [{'dataset': 'sysu', 'stage': 'untrained', 'rows': rows},
         {'dataset': 'sysu', 'stage': 'evaluation', 'rows': later}]))
    fig, curves = cmc_figure([('run a', str(tmp_path / 'a' / 'results.json'))])
    ((label, ranks, cmc, mAP),) = curves
    assert ranks == [1, 5, 10, 20] and cmc == [50.0, 70.0, 40.0, 60.0] and mAP == 12.0
    assert label == 'run a: sysu m'


def test_video_items_are_read_as_the_test_reads_them(tmp_path):
    from vireid_plugin.config import load_config
    from vireid_plugin.engine.saved_features import SavedPool
    from vireid_plugin.visualize.run import load_inputs
    frames = []
    for f in range(6):   # frame f is uniformly grey level 40 * f
        path = str(tmp_path / '{}.jpg'.format(f))
        Image.new('RGB', (16, 32), (40 * f,) * 3).save(path)
        frames.append(path)
    pool = SavedPool('v', torch.zeros(1, 2), np.array([1]), np.array([0]), np.array([1]),
                     [tuple(frames)], [], {'seq_len': 3, 'frame_rule': 'chunk'})
    cfg = load_config(config_file('demo_vcm.yaml'),
                      ['data.height', '32', 'data.width', '16'])
    x, drawn = load_inputs(pool, [0], cfg)
    assert x.shape == (1, 3, 3, 32, 16) and len(drawn[0]) == 3
    # the chunk rule's test frames of 6 frames in 3 chunks: the first of each, 0, 2, 4
    grey = [int(round(float(f.mean()))) for f in drawn[0]]
    assert grey == pytest.approx([0, 80, 160], abs=3)


def test_models_declare_their_attention_layout():
    from vireid_plugin.visualize.attention import attention_layout
    from vireid_plugin.visualize.prompts import has_instance_prompts
    kwargs = dict(pretrained=False, img_size=(64, 32), stride_size=16, num_tokens=2)
    mip = build_model('mip_vit_tiny', 4, num_instance_tokens=3, **kwargs)
    layout = attention_layout(mip)
    # tokens [CLS; 2 modality prompts; 3 instance prompts; 4x2 patches], the last block run
    assert layout.groups == {'CLS': 1, 'modality prompts': 2, 'instance prompts': 3}
    assert layout.grid == (4, 2) and layout.num_prefix == 6 and not layout.video
    assert layout.module is mip.backbone.blocks[mip.num_blocks - 1].attn
    assert has_instance_prompts(mip)
    plain = build_model('mip_vit_tiny', 4, instance_prompts='none', **kwargs)
    assert 'instance prompts' not in attention_layout(plain).groups
    assert not has_instance_prompts(plain)
    video = build_model('vit_tiny_video_avg', 4, pretrained=False, img_size=(64, 32),
                        stride_size=16)
    assert attention_layout(video).video and not has_instance_prompts(video)
    # a model that declares nothing: one message naming it, and no prompt figure
    with pytest.raises(TypeError, match='Linear declares no attention_spec'):
        attention_layout(torch.nn.Linear(2, 2))
    assert not has_instance_prompts(torch.nn.Linear(2, 2))
