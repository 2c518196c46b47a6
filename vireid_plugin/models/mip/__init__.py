"""MIP: modality- and instance-aware visual prompts (Wu et al., ICMR 2024) on a ViT."""
from .builder import MIP_ARCHS, build_mip, mip_vit_base_patch16, mip_vit_tiny
from .config import MIP_SECTION
from .instance import InstancePromptFusion, InstancePromptGenerator
from .model import MIPReID
from .prompts import ModalityPrompts
from .released import released_checkpoint_filter

__all__ = ['MIPReID', 'ModalityPrompts', 'InstancePromptGenerator', 'InstancePromptFusion',
           'MIP_ARCHS', 'MIP_SECTION', 'build_mip', 'mip_vit_base_patch16', 'mip_vit_tiny',
           'released_checkpoint_filter']
