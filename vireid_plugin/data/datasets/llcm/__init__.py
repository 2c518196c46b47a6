"""LLCM family: the loader (``dataset.py``), its config section ``cfg.llcm.*``
(``config.py``) and its synthetic writer (``synthetic.py``)."""
from .config import LLCM_SECTION
from .dataset import LLCM, LLCMVisibleToInfrared
from .synthetic import make_llcm

__all__ = ['LLCM', 'LLCMVisibleToInfrared', 'LLCM_SECTION', 'make_llcm']
