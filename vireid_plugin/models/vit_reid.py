"""TransReID-style ViT baseline for cross-modal ReID, built from timm parts.

``ViTBackbone`` is timm's ``VisionTransformer`` with two TransReID additions:
overlapping patches (conv stride < kernel) and the side-information
embedding (SIE) for cameras. ``ViTReID`` = backbone (final-norm CLS token)
+ BNNeck head, following the plugin's model contract
``model(x, modality=None, camid=None, named_outputs=False)`` (``contract.py``).
"""
from functools import partial

import torch
import torch.nn as nn
from timm.layers import PatchEmbed, to_2tuple, trunc_normal_
from timm.models.vision_transformer import VisionTransformer

from ..config.sections import register_config_section
from .build import register_arch
from .contract import outputs_for
from .heads import BNNeck
from .weights import load_pretrained, timm_weights_check

__all__ = ['OverlapPatchEmbed', 'ViTBackbone', 'ViTReID', 'VIT_ARCHS', 'VIT_SECTION',
           'build_vit_reid', 'vit_base_reid', 'vit_small_reid', 'vit_tiny_reid']


class OverlapPatchEmbed(PatchEmbed):
    """timm PatchEmbed whose conv uses ``stride_size`` instead of the patch size.

    The kernel stays ``patch_size``, so ImageNet patch weights load unchanged;
    only the token grid grows: ((H - P) // S + 1) x ((W - P) // S + 1).
    """

    def __init__(self, *args, stride_size=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.stride_size = to_2tuple(stride_size or self.patch_size)
        # PatchEmbed computed the grid with stride == patch; redo it with ours.
        self.img_size, self.grid_size, self.num_patches = self._init_img_size(self.img_size)
        old = self.proj
        self.proj = nn.Conv2d(old.in_channels, old.out_channels, kernel_size=self.patch_size,
                              stride=self.stride_size, bias=old.bias is not None)

    def _init_img_size(self, img_size):
        if img_size is None:
            return None, None, None
        img_size = to_2tuple(img_size)
        # Called from PatchEmbed.__init__ before stride_size exists: stride == patch then.
        stride = getattr(self, 'stride_size', self.patch_size)
        grid = tuple((s - p) // t + 1 for s, p, t in zip(img_size, self.patch_size, stride))
        return img_size, grid, grid[0] * grid[1]


class ViTBackbone(VisionTransformer):
    """timm ViT (SDPA attention, CLS token) + overlapping patches + camera SIE.

    Parameter names are timm's, so timm / JAX / TransReID checkpoints map onto
    it directly (the SIE table is called ``sie_embed`` as in TransReID).
    """

    def __init__(self, img_size=(256, 128), patch_size=16, stride_size=16, num_cameras=0,
                 camera_coe=3.0, **vit_kwargs):
        super().__init__(img_size=img_size, patch_size=patch_size, num_classes=0,
                         global_pool='token', class_token=True,
                         embed_layer=partial(OverlapPatchEmbed, stride_size=stride_size),
                         **vit_kwargs)
        self.num_cameras = num_cameras
        self.camera_coe = camera_coe
        if num_cameras > 0:
            # One vector per camera, broadcast over all tokens (TransReID SIE).
            self.sie_embed = nn.Parameter(torch.zeros(num_cameras, 1, self.embed_dim))
            trunc_normal_(self.sie_embed, std=.02)
        else:
            self.sie_embed = None

    def attention_spec(self, block=-1):
        """What the attention figure reads (``vireid_plugin.visualize.attention``): the
        attention module of ``block``, the patch grid (h, w), the token groups before the
        patches ({name: count}, in order) and whether inputs are clips."""
        return {'module': self.blocks[block].attn, 'grid': tuple(self.patch_embed.grid_size),
                'groups': {'CLS': self.num_prefix_tokens}, 'video': False}

    def forward_features(self, x, camid=None):
        x = self.patch_embed(x)
        x = self._pos_embed(x)
        # camid is ignored when SIE is off so an engine can always pass it.
        if camid is not None and self.sie_embed is not None:
            x = x + self.camera_coe * self.sie_embed[camid]
        x = self.patch_drop(x)
        x = self.norm_pre(x)
        x = self.blocks(x)
        return self.norm(x)

    def forward(self, x, camid=None):
        """(B, C, H, W) -> (B, D) final-norm CLS token."""
        return self.forward_features(x, camid)[:, 0]


class ViTReID(nn.Module):
    """ViT backbone + BNNeck; ``forward(x, modality=None, camid=None, named_outputs=False)``.

    Train mode: with ``named_outputs`` a dict 'features' (pre-BN CLS), 'bn_features',
    'logits'; without, torchreid's contract (``self.loss``: logits or (logits, features)).
    Eval mode: (B, D) tensor, BN feature (``test_feature='bn'``) or pre-BN.
    ``modality`` is accepted for the shared interface; this baseline is
    modality-agnostic (one shared backbone for visible and infrared).
    """

    #: the ranking of the reference code (``test.dist_metric auto``, metrics/distance.py)
    TEST_DISTANCE = 'cosine'
    TEST_DISTANCE_SOURCE = ("TransReID: TEST.FEAT_NORM 'yes' (L2-normalised features, "
                            "'equivalent to cosine distance'), TEST.NECK_FEAT 'after' (BN)")

    def __init__(self, num_classes, img_size=(256, 128), patch_size=16, stride_size=16,
                 embed_dim=768, depth=12, num_heads=12, num_cameras=0, camera_coe=3.0,
                 drop_path_rate=0.1, test_feature='bn', **vit_kwargs):
        super().__init__()
        self.backbone = ViTBackbone(
            img_size=img_size, patch_size=patch_size, stride_size=stride_size,
            num_cameras=num_cameras, camera_coe=camera_coe, embed_dim=embed_dim, depth=depth,
            num_heads=num_heads, drop_path_rate=drop_path_rate, **vit_kwargs)
        self.feature_dim = embed_dim
        self.head = BNNeck(embed_dim, num_classes, test_feature)

    def unused_parameters(self):
        """Names of parameters a training step leaves without a gradient: none (DDP can
        skip its search for them, ``train.ddp_find_unused_parameters auto``)."""
        return []

    def attention_spec(self):
        """The attention figure's layout: the backbone's last block, [CLS; patches]."""
        return self.backbone.attention_spec()

    def forward_global(self, x, modality=None, camid=None):
        """Pre-BN global feature (B, D) of images."""
        if x.dim() != 4:
            raise ValueError('{} expects images (B, C, H, W), got shape {}; use a *_video_* '
                             'model for clips'.format(type(self).__name__, tuple(x.shape)))
        return self.backbone(x, camid)

    def forward(self, x, modality=None, camid=None, named_outputs=False):
        return outputs_for(self, self.head(self.forward_global(x, modality, camid)),
                           named_outputs)


# timm_name: the ImageNet model whose weights pretrained=True downloads.
VIT_ARCHS = {
    'vit_base_reid': dict(embed_dim=768, depth=12, num_heads=12, img_size=(256, 128),
                          timm_name='vit_base_patch16_224'),
    'vit_small_reid': dict(embed_dim=384, depth=12, num_heads=6, img_size=(256, 128),
                           timm_name='vit_small_patch16_224'),
    # CPU demo / tests: no ImageNet weights exist for it.
    'vit_tiny_reid': dict(embed_dim=96, depth=4, num_heads=4, img_size=(128, 64),
                          timm_name=None),
}


VIT_SECTION = register_config_section('vit', {
    'stride_size': 16,          # < 16 gives overlapping patches (TransReID uses 12)
    'camera_embedding': True,   # SIE camera embedding, sized from the data's camids
    'camera_coe': 3.0,
    'drop_path_rate': 0.1,
    'test_feature': 'bn',       # 'bn' (after BNNeck) or 'pre_bn'
}, doc='ViT baseline (image and temporal-average video)',
    choices={'test_feature': ('bn', 'pre_bn')})


def build_vit_reid(arch, num_classes, pretrained=True, img_size=None, stride_size=16,
                   num_cameras=0, camera_coe=3.0, drop_path_rate=0.1, pretrained_path='',
                   test_feature='bn', camera_embedding=True):
    """Build ``VIT_ARCHS[arch]`` and load its weights.

    A non-empty ``pretrained_path`` is always loaded (an explicit file is an
    explicit request); otherwise ``pretrained`` downloads timm's ImageNet weights.
    """
    cfg = dict(VIT_ARCHS[arch])
    timm_name = cfg.pop('timm_name')
    default_size = cfg.pop('img_size')
    model = ViTReID(num_classes, img_size=tuple(img_size or default_size),
                    stride_size=stride_size,
                    num_cameras=num_cameras if camera_embedding else 0, camera_coe=camera_coe,
                    drop_path_rate=drop_path_rate, test_feature=test_feature, **cfg)
    if pretrained or pretrained_path:
        load_pretrained(model.backbone, timm_name, pretrained_path, arch=arch)
    return model


_weights = timm_weights_check(VIT_ARCHS)
vit_base_reid = register_arch('vit_base_reid', build_vit_reid, 'vit', _weights)
vit_small_reid = register_arch('vit_small_reid', build_vit_reid, 'vit', _weights)
vit_tiny_reid = register_arch('vit_tiny_reid', build_vit_reid, 'vit', _weights)
