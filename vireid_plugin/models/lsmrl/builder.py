"""The ``lsmrl`` config section and the registered builders ``lsmrl_clip_vit_b16`` /
``lsmrl_clip_tiny``.

Section defaults are this implementation's reading of the paper (docs/lsmrl.md
says which ones the abstract states and which are ours), so
``build_model('lsmrl_clip_vit_b16', num_classes, pretrained=False)`` needs no config.
"""
import warnings

from ...config.sections import register_config_section
from ..build import register_arch
from .clip_towers import TINY_CONFIG, check_hub_weights, create_clip, get_tokenizer
from .cmi import CMI_ATTENTION
from .model import CMI_TOKENS, LSMRL
from .prompts import DEFAULT_TEMPLATE
from .sd import SD_MODES

__all__ = ['LSMRL_ARCHS', 'LSMRL_SECTION', 'build_lsmrl']

# clip: open_clip config; tag: weights pretrained=True asks open_clip's hub for;
# quick_gelu: the activation those weights were trained with (OpenAI's CLIP: QuickGELU)
LSMRL_ARCHS = {
    'lsmrl_clip_vit_b16': dict(clip='ViT-B-16', quick_gelu=True, img_size=(288, 144)),
    # CPU tests and demo: open_clip config LSMRL-tiny.json beside this file; no weights
    'lsmrl_clip_tiny': dict(clip=TINY_CONFIG, quick_gelu=False, img_size=(128, 64)),
}

LSMRL_SECTION = register_config_section('lsmrl', {
    'pretrained_tag': 'openai',      # open_clip hub weights for model.pretrained True (ViT-B/16)
    'stfl': True,                    # spatial-temporal feature learning (no new weights)
    'stfl_grouped_blocks': 2,        # blocks before the TPS ones that attend within frame groups
    'stfl_tps_blocks': 2,            # last blocks with temporal patch shift
    'stfl_group_size': 3,            # frames per group in the grouped blocks
    'sd': True,                      # semantic diffusion of the identity text features
    'sd_mode': 'bank',               # bank (label-free, train = test) or label (injection)
    'cmi': True,                     # cross-modal interaction of paired sequences (training)
    'cmi_tokens': 'all',             # all tokens of every frame, or the frame CLS tokens
    'cmi_attention': 'cross',        # cross (to the partner) or joint (over both sequences)
    'cmi_test': False,               # also at test, each sequence with itself
    'prompt_template': DEFAULT_TEMPLATE,
    'test_feature': 'bn',            # bn (after the BNNecks) or pre_bn
    'head_lr_mult': 25.0,            # LR multiplier of classifier heads and prompts
    'stage1_epochs': 0,              # prompt-only first stage (CLIP-ReID stage 1); 0 = none
    'stage1_lr': 3.5e-4,
    'stage1_batch_size': 64,
    'stage1_warmup_epochs': 5.0,
}, doc='LSMRL (video, CLIP)', choices={
    'sd_mode': SD_MODES, 'cmi_tokens': CMI_TOKENS, 'cmi_attention': CMI_ATTENTION,
    'test_feature': ('bn', 'pre_bn')})


def build_lsmrl(arch, num_classes, pretrained=True, num_cameras=0, img_size=None,
                pretrained_path='', pretrained_tag='openai', stage1_epochs=0,
                stage1_lr=3.5e-4, stage1_batch_size=64, stage1_warmup_epochs=5.0,
                **options):
    """Build ``LSMRL_ARCHS[arch]``: open_clip towers at ``img_size`` (H, W), weights from
    ``pretrained_path`` (always loaded when set) or open_clip's hub (``pretrained``).

    ``num_cameras`` is accepted for the plugin's builder contract; LSMRL has no camera
    embedding.
    """
    spec = LSMRL_ARCHS[arch]
    tag = pretrained_tag if pretrained and spec['clip'] != TINY_CONFIG else ''
    if pretrained and not pretrained_path and not tag:
        warnings.warn('{} has no published weights; using random initialisation (set '
                      'model.pretrained_path to load a CLIP file)'.format(arch))
    clip = create_clip(spec['clip'], tuple(img_size or spec['img_size']), pretrained_tag=tag,
                       pretrained_path=pretrained_path, quick_gelu=spec['quick_gelu'])
    stage = dict(epochs=int(stage1_epochs), lr=float(stage1_lr),
                 batch_size=int(stage1_batch_size), warmup_epochs=float(stage1_warmup_epochs))
    return LSMRL(clip, num_classes, get_tokenizer(spec['clip']), prompt_stage=stage, **options)


def _weights(arch, pretrained_tag='openai', **options):
    """The open_clip hub weights ``pretrained=True`` asks for: cached or reachable."""
    spec = LSMRL_ARCHS[arch]
    if pretrained_tag and spec['clip'] != TINY_CONFIG:
        check_hub_weights(spec['clip'], pretrained_tag)


lsmrl_clip_vit_b16 = register_arch('lsmrl_clip_vit_b16', build_lsmrl, 'lsmrl', _weights)
lsmrl_clip_tiny = register_arch('lsmrl_clip_tiny', build_lsmrl, 'lsmrl', _weights)
