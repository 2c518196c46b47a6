"""BUPTCampus's config section ``cfg.bupt.*``: the options its loader reads (``dataset.py``)."""
from ....config.sections import register_config_section
from .dataset import PROTOCOL_ALIASES, PROTOCOLS

BUPT_SECTION = register_config_section('bupt', {
    'protocol': 'auxnet',   # 'auxnet' (the dataset authors' test.py) or 'm3reid' (M3-ReID's)
    'use_auxiliary': False,    # train_auxiliary.txt tracklets join training (dsetid 1)
}, doc='BUPTCampus options', choices={'protocol': PROTOCOLS + tuple(PROTOCOL_ALIASES)},
    family=False)
