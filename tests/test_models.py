"""Tests for vireid_plugin.models: output contract, ViT specifics, weight loading."""
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from timm.layers import resample_abs_pos_embed
from timm.models.vision_transformer import VisionTransformer

from vireid_plugin import compat
from vireid_plugin.models import PretrainedWeightsError, build_model, load_pretrained

NUM_CLASSES = 7
DIM = 96  # vit_tiny_reid embed_dim


def tiny(name='vit_tiny_reid', **kwargs):
    torch.manual_seed(0)
    return build_model(name, NUM_CLASSES, pretrained=False, **kwargs)


def images(b=4, h=128, w=64):
    return torch.randn(b, 3, h, w, generator=torch.Generator().manual_seed(1))


def check_train_dict(out, b):
    assert set(out) >= {'features', 'bn_features', 'logits'}
    assert out['features'].shape == (b, DIM)
    assert out['bn_features'].shape == (b, DIM)
    assert out['logits'].shape == (b, NUM_CLASSES)


@pytest.mark.parametrize('with_side_info', [True, False])
def test_image_contract(with_side_info):
    model = tiny(num_cameras=3)
    x = images()
    side = dict(modality=torch.tensor([0, 1, 0, 1]), camid=torch.tensor([0, 1, 2, 0])) \
        if with_side_info else {}
    check_train_dict(model.train()(x, named_outputs=True, **side), 4)
    model.eval()
    with torch.no_grad():
        bn_out = model(x, **side)
        model.head.test_feature = 'pre_bn'
        pre = model(x, **side)
    assert bn_out.shape == pre.shape == (4, DIM)
    # Default eval feature is BatchNorm with running stats applied to the pre-BN one.
    bn = model.head.bn
    expected = (pre - bn.running_mean) / torch.sqrt(bn.running_var + bn.eps) * bn.weight
    torch.testing.assert_close(bn_out, expected)


def test_bnneck_init():
    head = tiny().head
    assert not head.bn.bias.requires_grad and torch.all(head.bn.bias == 0)
    assert head.classifier.bias is None
    assert head.classifier.weight.std() < 0.01  # BoT: normal(std=0.001)


def test_video_contract_and_temporal_average():
    model = tiny('vit_tiny_video_avg', num_cameras=3, test_feature='pre_bn')
    clips = torch.randn(2, 3, 3, 128, 64)  # (B, T, C, H, W)
    camid = torch.tensor([2, 1])
    check_train_dict(model.train()(clips, modality=torch.tensor([0, 1]), camid=camid,
                                   named_outputs=True), 2)
    check_train_dict(model(clips, named_outputs=True), 2)
    model.eval()
    with torch.no_grad():
        out = model(clips, camid=camid)
        # Reference: each clip's frames through the backbone on their own, averaged,
        # then the (eval-mode, pre-BN) head is the identity.
        ref = torch.stack([model.backbone(clips[i], camid[i].repeat(3)).mean(0)
                           for i in range(2)])
    assert out.shape == (2, DIM)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def test_image_checkpoint_loads_into_the_video_model():
    image = tiny(num_cameras=2)
    video = tiny('vit_tiny_video_avg', num_cameras=2)
    assert set(image.state_dict()) == set(video.state_dict())
    video.load_state_dict(image.state_dict())
    assert {name for name, _ in video.named_children()} == {'backbone', 'head'}


def test_wrong_input_rank_is_rejected():
    with pytest.raises(ValueError, match='video'):
        tiny()(torch.randn(2, 3, 3, 128, 64))
    with pytest.raises(ValueError, match='clips'):
        tiny('vit_tiny_video_avg')(torch.randn(2, 1, 1, 3, 128, 64))


def test_video_model_takes_frames_as_one_frame_clips():
    """torchreid's video engines feed a clip's frames as (B*T, C, H, W) and pool themselves."""
    model = tiny('vit_tiny_video_avg').eval()
    frames = images(3)
    with torch.no_grad():
        assert torch.equal(model(frames), model(frames[:, None]))


# Grid sizes worked out by hand from ((H - P) // S + 1, (W - P) // S + 1), P = 16.
@pytest.mark.parametrize('img_size,stride,grid', [
    ((256, 128), 12, (21, 10)),   # (240//12+1, 112//12+1)
    ((128, 64), 16, (8, 4)),      # non-overlapping
    ((128, 64), 14, (9, 4)),      # (112//14+1, 48//14+1)
])
def test_overlapping_patch_token_count(img_size, stride, grid):
    model = tiny(img_size=img_size, stride_size=stride).eval()
    tokens = grid[0] * grid[1]
    assert model.backbone.patch_embed.grid_size == grid
    assert model.backbone.pos_embed.shape == (1, tokens + 1, DIM)
    with torch.no_grad():
        seq = model.backbone.forward_features(torch.randn(1, 3, *img_size))
    assert seq.shape == (1, tokens + 1, DIM)


def test_camera_embedding_only_when_camid_given():
    model = tiny(num_cameras=3).eval()
    x = images(2)
    with torch.no_grad():
        plain = model(x)
        cam0 = model(x, camid=torch.tensor([0, 0]))
        cam1 = model(x, camid=torch.tensor([1, 1]))
        no_sie = tiny(num_cameras=0).eval()
        ignored = no_sie(x, camid=torch.tensor([1, 1]))
        model.backbone.camera_coe = 0.0
        zero_coe = model(x, camid=torch.tensor([1, 1]))
    assert not torch.allclose(plain, cam0, atol=1e-4)
    assert not torch.allclose(cam0, cam1, atol=1e-4)
    torch.testing.assert_close(ignored, no_sie(x))   # SIE disabled: camid ignored
    torch.testing.assert_close(zero_coe, plain)       # the camera term is all that changed


def test_gradient_reaches_camera_embedding():
    model = tiny(num_cameras=3).train()
    out = model(images(4), camid=torch.tensor([0, 0, 2, 2]), named_outputs=True)
    (F.cross_entropy(out['logits'], torch.arange(4)) + out['features'].pow(2).mean()).backward()
    grad = model.backbone.sie_embed.grad
    assert grad is not None
    assert grad[0].abs().sum() > 0 and grad[2].abs().sum() > 0
    assert torch.all(grad[1] == 0)  # camera 1 was not in the batch


# ---------------------------------------------------------------- weights

def timm_vit(embed_dim=DIM):
    """Randomly initialised plain timm ViT on 32x32 images (2x2 grid, with a head)."""
    torch.manual_seed(3)
    return VisionTransformer(img_size=32, patch_size=16, embed_dim=embed_dim, depth=4,
                             num_heads=4, num_classes=5)


@pytest.mark.parametrize('fmt', ['pth', 'safetensors'])
def test_pretrained_round_trip(tmp_path, fmt):
    src = timm_vit().state_dict()
    path = tmp_path / 'vit.{}'.format(fmt)
    if fmt == 'pth':
        torch.save({'state_dict': src, 'epoch': 3}, path)  # nested, as trainers save it
    else:
        save_file(src, str(path))
    with pytest.warns(UserWarning, match='sie_embed'):  # reported as missing
        model = build_model('vit_tiny_reid', NUM_CLASSES, pretrained=True,
                            pretrained_path=str(path), stride_size=12, num_cameras=2)
    own = model.backbone.state_dict()
    for key in ('blocks.0.attn.qkv.weight', 'blocks.3.mlp.fc2.bias', 'norm.weight',
                'patch_embed.proj.weight', 'cls_token'):
        torch.testing.assert_close(own[key], src[key], rtol=0, atol=0)
    grid = ((128 - 16) // 12 + 1, (64 - 16) // 12 + 1)  # (10, 5) instead of the saved (2, 2)
    assert own['pos_embed'].shape == (1, grid[0] * grid[1] + 1, DIM)
    torch.testing.assert_close(own['pos_embed'][:, 0], src['pos_embed'][:, 0], rtol=0, atol=0)


def save_jax_npz(vit, path, heads=4):
    """Write a timm ViT in the original JAX ViT .npz layout (inverse of timm's loader)."""
    import numpy as np
    sd = {k: v.detach().numpy() for k, v in vit.state_dict().items()}
    dim = sd['cls_token'].shape[-1]
    w = {'embedding/kernel': sd['patch_embed.proj.weight'].transpose(2, 3, 1, 0),  # OIHW->HWIO
         'embedding/bias': sd['patch_embed.proj.bias'], 'cls': sd['cls_token'],
         'Transformer/posembed_input/pos_embedding': sd['pos_embed'],
         'Transformer/encoder_norm/scale': sd['norm.weight'],
         'Transformer/encoder_norm/bias': sd['norm.bias']}
    for i in range(len(vit.blocks)):
        b, j = 'blocks.{}.'.format(i), 'Transformer/encoderblock_{}/'.format(i)
        att = j + 'MultiHeadDotProductAttention_1/'
        qkv_w, qkv_b = np.split(sd[b + 'attn.qkv.weight'], 3), np.split(sd[b + 'attn.qkv.bias'], 3)
        for n, wt, bs in zip(('query', 'key', 'value'), qkv_w, qkv_b):
            w[att + n + '/kernel'] = wt.T.reshape(dim, heads, -1)  # (in, heads, head_dim)
            w[att + n + '/bias'] = bs.reshape(heads, -1)
        w[att + 'out/kernel'] = sd[b + 'attn.proj.weight'].reshape(dim, heads, -1).transpose(
            1, 2, 0)
        w[att + 'out/bias'] = sd[b + 'attn.proj.bias']
        for ln, norm in (('LayerNorm_0/', 'norm1.'), ('LayerNorm_2/', 'norm2.')):
            w[j + ln + 'scale'], w[j + ln + 'bias'] = sd[b + norm + 'weight'], sd[b + norm + 'bias']
        for r in range(2):
            fc = b + 'mlp.fc{}.'.format(r + 1)
            w[j + 'MlpBlock_3/Dense_{}/kernel'.format(r)] = sd[fc + 'weight'].T
            w[j + 'MlpBlock_3/Dense_{}/bias'.format(r)] = sd[fc + 'bias']
    np.savez(path, **w)


def test_jax_npz_checkpoint(tmp_path):
    vit = timm_vit()
    save_jax_npz(vit, tmp_path / 'vit.npz')
    model = tiny(stride_size=12, pretrained_path=str(tmp_path / 'vit.npz'))
    own, src = model.backbone.state_dict(), vit.state_dict()
    for key in ('blocks.2.attn.qkv.weight', 'blocks.2.attn.proj.weight', 'blocks.0.mlp.fc1.weight',
                'patch_embed.proj.weight', 'norm.bias'):
        torch.testing.assert_close(own[key], src[key], rtol=0, atol=0)
    assert own['pos_embed'].shape == (1, 10 * 5 + 1, DIM)
    save_jax_npz(timm_vit(embed_dim=64), tmp_path / 'narrow.npz')
    with pytest.raises(PretrainedWeightsError, match='narrow.npz'):
        tiny(pretrained_path=str(tmp_path / 'narrow.npz'))


def test_reid_checkpoint_with_nonsquare_grid(tmp_path):
    # A whole ReID model saved at 128x64 / stride 16 (8x4 grid: not square).
    src = tiny()
    torch.save(src.state_dict(), tmp_path / 'reid.pth')
    model = tiny(stride_size=12)
    load_pretrained(model.backbone, pretrained_path=str(tmp_path / 'reid.pth'))
    pos = src.backbone.pos_embed.detach()
    # The 8x4 source grid must be recognised (a square guess could not even reshape).
    expected = resample_abs_pos_embed(pos, new_size=(10, 5), old_size=(8, 4))
    torch.testing.assert_close(model.backbone.pos_embed.detach(), expected)
    torch.testing.assert_close(model.backbone.blocks[1].attn.proj.weight,
                               src.backbone.blocks[1].attn.proj.weight, rtol=0, atol=0)


def test_wrong_width_checkpoint_names_file(tmp_path):
    path = tmp_path / 'narrow_vit.pth'
    torch.save(timm_vit(embed_dim=64).state_dict(), path)
    with pytest.raises(PretrainedWeightsError, match='narrow_vit.pth') as err:
        tiny(pretrained_path=str(path))
    assert 'blocks.0.attn.qkv.weight' in str(err.value)


def test_non_vit_checkpoint_is_rejected(tmp_path):
    path = tmp_path / 'resnet.pth'
    torch.save({'conv1.weight': torch.zeros(64, 3, 7, 7), 'fc.weight': torch.zeros(10, 64)}, path)
    with pytest.raises(PretrainedWeightsError, match='resnet.pth.*not a ViT'):
        tiny(pretrained_path=str(path))


def test_missing_and_corrupt_files_name_the_path(tmp_path):
    missing = tmp_path / 'nowhere' / 'vit.pth'
    with pytest.raises(FileNotFoundError, match='nowhere'):
        tiny(pretrained_path=str(missing))
    corrupt = tmp_path / 'broken.pth'
    corrupt.write_bytes(b'not a checkpoint')
    with pytest.raises(PretrainedWeightsError, match='broken.pth'):
        tiny(pretrained_path=str(corrupt))


def test_download_failure_points_to_local_path(monkeypatch):
    import timm

    def offline(*args, **kwargs):
        raise OSError('no network')
    monkeypatch.setattr(timm, 'create_model', offline)
    with pytest.raises(PretrainedWeightsError, match='model.pretrained_path'):
        load_pretrained(tiny().backbone, timm_name='vit_small_patch16_224')


def test_tiny_pretrained_without_path_warns():
    with pytest.warns(UserWarning, match='random'):
        model = build_model('vit_tiny_reid', NUM_CLASSES)  # pretrained=True by default
    assert model.eval()(images(2)).shape == (2, DIM)


# ---------------------------------------------------------------- factories

@pytest.mark.parametrize('name', ['vit_tiny_reid', 'vit_tiny_video_avg'])
def test_torchreid_build_model_follows_torchreid_contract(name):
    """torchreid's engines call model(imgs): logits for loss='softmax', (logits, features)
    for 'triplet' in training, the feature tensor in eval; the plugin's engine asks for the
    named outputs with named_outputs=True."""
    x = images(2)
    outs = {}
    for loss in ('softmax', 'triplet'):
        torch.manual_seed(0)
        model = compat.models.build_model(name, NUM_CLASSES, loss=loss, pretrained=False,
                                          use_gpu=False)
        assert model.loss == loss
        model.train()
        torch.manual_seed(5)   # drop path draws the same masks in every call below
        outs[loss] = model(x)
        torch.manual_seed(5)
        named = model(x, named_outputs=True)
        check_train_dict(named, 2)
        ref = (named['logits'], named['features'])
        if loss == 'softmax':
            assert torch.is_tensor(outs[loss])
            torch.testing.assert_close(outs[loss], ref[0])
        else:
            assert isinstance(outs[loss], tuple) and len(outs[loss]) == 2
            torch.testing.assert_close(outs[loss][0], ref[0])
            torch.testing.assert_close(outs[loss][1], ref[1])
        model.eval()
        with torch.no_grad():
            feat = model(x)
            assert feat.shape == (2, DIM)
            torch.testing.assert_close(model(x, named_outputs=True), feat)
    # the plugin's own build_model defaults to torchreid's 'softmax'
    assert tiny(name).loss == 'softmax'


def test_unknown_torchreid_loss_is_refused_at_build():
    with pytest.raises(ValueError, match="loss must be one of softmax, triplet .*, got 'arcface'"):
        compat.models.build_model('vit_tiny_reid', NUM_CLASSES, loss='arcface',
                                  pretrained=False)


def test_unknown_name_suggests_close_matches():
    with pytest.raises(KeyError, match='vit_tiny_reid'):
        build_model('vit_tiny_reidd', NUM_CLASSES)
