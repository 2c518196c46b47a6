"""BUPTCampus family: the loader (``dataset.py``), its config section ``cfg.bupt.*``
(``config.py``) and its synthetic writer (``synthetic.py``)."""
from .config import BUPT_SECTION
from .dataset import (REFERENCE_TEST_BATCH, BUPTCampus, BUPTCampusInfraredToVisible,
                      reference_truncation)
from .synthetic import make_buptcampus

__all__ = ['BUPTCampus', 'BUPTCampusInfraredToVisible', 'BUPT_SECTION', 'REFERENCE_TEST_BATCH',
           'make_buptcampus', 'reference_truncation']
