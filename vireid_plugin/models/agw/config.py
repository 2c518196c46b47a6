"""AGW's config section ``cfg.agw.*``: the authors' ``embed_net(no_local='on',
gm_pool='on')`` settings as defaults (``build_model('agw_resnet50', ...)`` uses them
without a config)."""
from ...config.sections import register_config_section
from .model import POOLINGS, TEST_FEATURES

AGW_SECTION = register_config_section('agw', {
    'non_local': True,          # non-local blocks after the last 2 / 3 blocks of layer2 / 3
    'pooling': 'gem',           # gem (their gm_pool 'on') | avg
    'gem_p': 3.0,
    'test_feature': 'bn',       # l2-normalised BN feature (their "FC" row) | pool ("POOL")
    'backbone_lr_mult': 0.1,    # their SGD groups: 0.1 x LR but on the neck and classifier
}, doc='AGW / CAJ (image, two-stream ResNet-50 with non-local blocks and GeM)', choices={
    'pooling': POOLINGS,
    'test_feature': TEST_FEATURES,
})
