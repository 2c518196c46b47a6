"""LSMRL in training: the prompt-only stage, parameter groups, CLIP weight files, and one
short two-stage run through the real CLI."""
import json
import sys

import pytest
import torch

from vireid_plugin.config import ConfigError, load_config
from vireid_plugin.data.synthetic import make_hitsz_vcm
from vireid_plugin.engine.prompt_stage import train_prompts
from vireid_plugin.models import build_model
from vireid_plugin.models.lsmrl.clip_towers import create_clip
from vireid_plugin.models.weights import PretrainedWeightsError
from vireid_plugin.optim import build_optimizer

from tests.helpers import config_file


def tiny(num_classes=4, **kw):
    torch.manual_seed(0)
    return build_model('lsmrl_clip_tiny', num_classes, pretrained=False, **kw)


def test_prompt_stage_updates_only_the_prompt_parameters():
    model = tiny(sd_mode='label')
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    feats, labels = torch.randn(16, 64), torch.arange(16) % 4
    history = train_prompts(model, feats, labels, epochs=3, lr=1e-2, batch_size=8)
    assert len(history) == 3 and history[-1] < history[0]
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, before[k])}
    assert changed == {'prompt_learner.ctx'}  # the generic prompt is no stage-1 target
    assert {n for n, p in model.named_parameters() if p.requires_grad} == trainable


def test_parameter_groups_declared_by_the_model():
    model = tiny()
    opt = build_optimizer([model], optim='adamw', lr=2.5e-5, weight_decay=1e-4)
    group_of = {name: g for g in opt.param_groups for name in g['param_names']}
    for name in ('prompt_learner.ctx', 'head.classifier.weight', 'head_proj.classifier.weight',
                 'cmi_head.classifier.weight'):
        assert group_of[name]['lr'] == pytest.approx(2.5e-5 * 25), name
    assert group_of['sd.attn.q.weight']['lr'] == pytest.approx(2.5e-5)
    assert group_of['image_encoder.visual.positional_embedding']['weight_decay'] == 0
    assert group_of['image_encoder.visual.conv1.weight']['weight_decay'] == 1e-4
    # the frozen text encoder is never optimised
    assert not any(n.startswith('text_encoder.') for n in group_of)
    assert not any(p.requires_grad for p in model.text_encoder.parameters())


def test_clip_weight_file_is_loaded(tmp_path):
    torch.manual_seed(1)
    source = create_clip('LSMRL-tiny', (128, 64))
    path = tmp_path / 'clip.pth'
    torch.save(source.state_dict(), path)
    model = build_model('lsmrl_clip_tiny', 3, pretrained_path=str(path))
    torch.testing.assert_close(model.image_encoder.visual.conv1.weight, source.visual.conv1.weight)
    torch.testing.assert_close(model.text_encoder.text_projection, source.text_projection)


def test_square_clip_position_grid_is_resampled_to_the_reid_grid(tmp_path):
    # as OpenAI's 14x14 ViT-B/16 grid becomes 18x9 at 288x144: here 4x4 -> 8x4
    source = create_clip('LSMRL-tiny', (64, 64))
    path = tmp_path / 'square.pth'
    torch.save(source.state_dict(), path)
    pos = build_model('lsmrl_clip_tiny', 3, pretrained_path=str(path)).image_encoder.visual \
        .positional_embedding
    old = source.visual.positional_embedding
    assert pos.shape == (1 + 8 * 4, 96) and torch.equal(pos[0], old[0])  # CLS kept
    expected = torch.nn.functional.interpolate(
        old[1:].reshape(1, 4, 4, 96).permute(0, 3, 1, 2), size=(8, 4), mode='bicubic',
        antialias=True, align_corners=False).permute(0, 2, 3, 1).reshape(32, 96)
    torch.testing.assert_close(pos[1:], expected)


def test_text_encoder_file_that_does_not_fit_names_file_and_keys(tmp_path):
    state = create_clip('LSMRL-tiny', (128, 64)).state_dict()
    state['transformer.resblocks.0.attn.in_proj_weight'] = torch.zeros(96, 32)
    del state['ln_final.weight']
    path = tmp_path / 'other_text.pth'
    torch.save(state, path)
    with pytest.raises(PretrainedWeightsError) as info:
        build_model('lsmrl_clip_tiny', 3, pretrained_path=str(path))
    msg = str(info.value)
    assert '\n' not in msg and str(path) in msg and "'LSMRL-tiny'" in msg
    assert 'text encoder: ' in msg and 'image encoder' not in msg
    assert 'transformer.resblocks.0.attn.in_proj_weight (file (96, 32), model (192, 64))' in msg
    assert 'ln_final.weight missing from the file' in msg


def test_missing_weight_file_is_a_one_line_error(tmp_path):
    with pytest.raises(PretrainedWeightsError, match='CLIP weight file not found: .*nope.pth'):
        build_model('lsmrl_clip_tiny', 3, pretrained_path=str(tmp_path / 'nope.pth'))


def test_recipe_configs_load():
    for name in ('lsmrl_vcm.yaml', 'demo_lsmrl.yaml'):
        cfg = load_config(config_file(name))
        assert cfg.model.name.startswith('lsmrl_clip_')
    cfg = load_config(config_file('lsmrl_vcm.yaml'))
    assert (cfg.data.height, cfg.data.width, cfg.video.seq_len) == (288, 144, 6)
    assert cfg.train.optim == 'adamw' and cfg.train.lr == 2.5e-5 and cfg.lsmrl.head_lr_mult == 25
    assert cfg.train.batch_size == 32 and cfg.sampler.num_instances == 4
    assert cfg.train.amp == 'bf16' and cfg.test.protocol_matrix
    # the section belongs to the LSMRL models only
    with pytest.raises(ConfigError, match="'lsmrl.sd_mode' is set, but model 'vit_base_reid'"):
        load_config('', ['lsmrl.sd_mode', 'label'])
    with pytest.raises(ConfigError, match="'lsmrl.sd_mode' must be one of"):
        load_config('', ['model.name', 'lsmrl_clip_tiny', 'lsmrl.sd_mode', 'labels'])


def test_two_stage_cli_run(tmp_path, cli):
    root, save_dir = tmp_path / 'data', tmp_path / 'log'
    make_hitsz_vcm(str(root), num_train=6, num_test=4, tracklets=(2, 2), lengths=(6, 8),
                   min_len=6, num_cams=2, size=(64, 32))
    stdout = sys.stdout
    try:
        rc = cli.main([
            '--config-file', config_file('demo_lsmrl.yaml'), '--root', str(root),
            'data.save_dir', str(save_dir), 'data.synthetic', 'True', 'data.workers', '0',
            'data.height', '64', 'data.width', '32', 'vcm.min_seq_len', '6',
            'video.seq_len', '3', 'train.batch_size', '8', 'train.max_epoch', '1',
            'lsmrl.stage1_epochs', '2', 'lsmrl.stage1_batch_size', '8', 'use_gpu', 'False',
            'test.eval_before_train', 'False'])
    finally:
        sys.stdout = stdout
    assert rc == 0
    with open(save_dir / 'results.json') as f:
        rows = json.load(f)[-1]['rows']
    assert [r['mode'] for r in rows] == ['infrared->visible', 'visible->infrared']
    log = open(next(p for p in save_dir.iterdir() if p.name.startswith('train.log'))).read()
    assert '=> Prompt stage done' in log and 'i2t' in log and 'hetero_center' in log
