"""Registered MIP models: ``mip_vit_base_patch16`` (the paper's) and ``mip_vit_tiny`` (CPU)."""
from ..build import register_arch
from ..weights import load_pretrained, timm_weights_check
from .config import MIP_SECTION  # noqa: F401  (the section must exist before building)
from .model import MIPReID

__all__ = ['MIP_ARCHS', 'build_mip', 'mip_vit_base_patch16', 'mip_vit_tiny']

# timm_name: the ImageNet weights pretrained=True downloads. The MIP authors used the
# original JAX ViT-B/16 (ImageNet-21k, fine-tuned on 1k): `jx_vit_base_p16_224-80ecf9dd.pth`,
# which is timm's `vit_base_patch16_224.orig_in21k_ft_in1k`.
MIP_ARCHS = {
    'mip_vit_base_patch16': dict(embed_dim=768, depth=12, num_heads=12, img_size=(256, 128),
                                 timm_name='vit_base_patch16_224.orig_in21k_ft_in1k'),
    # CPU demo and tests: no ImageNet weights exist for it
    'mip_vit_tiny': dict(embed_dim=96, depth=4, num_heads=4, img_size=(128, 64),
                         timm_name=None),
}

def build_mip(arch, num_classes, pretrained=True, num_cameras=0, img_size=None,
              pretrained_path='', camera_embedding=True, **options):
    """Build ``MIP_ARCHS[arch]``; ImageNet weights into the backbone, then the heads copy
    its last block + norm (TransReID); the prompt generator stays randomly initialised."""
    arch_cfg = dict(MIP_ARCHS[arch])
    timm_name = arch_cfg.pop('timm_name')
    default_size = arch_cfg.pop('img_size')
    model = MIPReID(num_classes, img_size=tuple(img_size or default_size),
                    num_cameras=num_cameras if camera_embedding else 0, **arch_cfg, **options)
    if pretrained or pretrained_path:
        load_pretrained(model.backbone, timm_name, pretrained_path, arch=arch)
        model.reset_heads_from_backbone()
    return model


mip_vit_base_patch16 = register_arch('mip_vit_base_patch16', build_mip, 'mip',
                                     timm_weights_check(MIP_ARCHS))
mip_vit_tiny = register_arch('mip_vit_tiny', build_mip, 'mip', timm_weights_check(MIP_ARCHS))
