"""SYSU-MM01 family: the loader (``dataset.py``), its config section ``cfg.sysu.*``
(``config.py``) and its synthetic writer (``synthetic.py``)."""
from .config import SYSU_SECTION
from .dataset import SYSUMM01, SYSUMM01Indoor, load_rand_perm, mode_name
from .synthetic import make_sysu_mm01

__all__ = ['SYSUMM01', 'SYSUMM01Indoor', 'SYSU_SECTION', 'load_rand_perm', 'make_sysu_mm01',
           'mode_name']
