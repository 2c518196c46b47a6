"""MIP's config section ``cfg.mip.*``: the paper's settings as defaults.

The same defaults are what ``build_model('mip_vit_base_patch16', ...)`` uses
without a config. Backbone keys (stride, SIE, drop path) live here rather than in
``vit.*``: the MIP family reads this section only.
"""
from ...config.sections import register_config_section
from .instance import QUERY_MODES
from .model import INSTANCE_PROMPTS, TEST_FEATURES

MIP_SECTION = register_config_section('mip', {
    # backbone (TransReID tricks)
    'stride_size': 12,            # overlapping 16x16 patches: 21 x 10 tokens at 256 x 128
    'camera_embedding': True,     # SIE, sized from the data's camids
    'camera_coe': 3.0,
    'drop_path_rate': 0.1,
    'jpm': True,                  # JPM local branch (global + 4 part features)
    'jpm_shift': 5,
    'jpm_groups': 2,
    'jpm_parts': 4,
    'jpm_rearrange': True,
    # MPL: modality-aware prompts
    'modality_prompts': True,
    'naive_prompts': False,       # ablation: one prompt set for both modalities
    'num_tokens': 16,
    'prompt_init_scale': 20.0,    # VPT bound x 20 = U(-1.25, 1.25) at ViT-B/16
    'prompt_dropout': 0.1,
    # IPG: instance-aware prompts
    'instance_prompts': 'generation',   # generation | fusion | none
    'num_instance_tokens': 16,
    'instance_bank_size': 64,     # fusion-based bank size
    'fusion_temperature': 0.0,    # fusion softmax temperature (0 = none)
    'instance_queries': 'learnable',    # learnable | zeros (the released code's)
    'released_compat': False,     # the released forward: zero queries, early exit
    'force_released_weights': False,  # load the authors' checkpoint though the forward differs
    # inference
    'test_feature': 'before',     # concat of the features before (or after) the BNNecks
    'normalize_test_feature': True,
    # learning-rate multipliers (released: WEIGHT_MPLR 5, WEIGHT_IPLR 15)
    'prompt_lr_mult': 5.0,
    'generator_lr_mult': 15.0,
}, doc='MIP (image, ViT with modality- and instance-aware prompts)', choices={
    'instance_prompts': INSTANCE_PROMPTS,
    'instance_queries': QUERY_MODES,
    'test_feature': TEST_FEATURES,
})
