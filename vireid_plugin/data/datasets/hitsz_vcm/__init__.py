"""HITSZ-VCM family: the loader (``dataset.py``), its config section ``cfg.vcm.*``
(``config.py``) and its synthetic writer (``synthetic.py``)."""
from .config import VCM_SECTION
from .dataset import HITSZVCM, HITSZVCMVisibleToInfrared
from .synthetic import make_hitsz_vcm

__all__ = ['HITSZVCM', 'HITSZVCMVisibleToInfrared', 'VCM_SECTION', 'make_hitsz_vcm']
