"""BUPTCampus's config section ``cfg.bupt.*``: the options its loader reads (``dataset.py``)."""
from ....config.sections import register_config_section
from .dataset import PROTOCOLS

BUPT_SECTION = register_config_section('bupt', {
    'protocol': 'corrected',   # 'corrected' (M3-ReID: all queries) or 'reference' (test.py)
    'use_auxiliary': False,    # train_auxiliary.txt tracklets join training (dsetid 1)
}, doc='BUPTCampus options', choices={'protocol': PROTOCOLS}, family=False)
