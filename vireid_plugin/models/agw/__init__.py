"""AGW (Ye et al., TPAMI 2021) and the network CAJ (Ye et al., ICCV 2021) trains: the
two-stream ResNet-50 of mangye16/Cross-Modal-Re-ID-baseline."""
from .builder import AGW_ARCHS, agw_resnet50, agw_resnet_tiny, build_agw
from .config import AGW_SECTION
from .model import AGWReID, gem
from .nonlocal_block import NonLocal
from .released import released_checkpoint_filter

__all__ = ['AGWReID', 'NonLocal', 'gem', 'AGW_ARCHS', 'AGW_SECTION', 'build_agw',
           'agw_resnet50', 'agw_resnet_tiny', 'released_checkpoint_filter']
