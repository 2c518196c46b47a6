"""LLCM's config section ``cfg.llcm.*``: the options its loader reads (``dataset.py``).

The number of gallery draws scored is ``test.num_trials`` (torchreid's test section).
"""
from ....config.sections import register_config_section
from .dataset import PROTOCOLS

LLCM_SECTION = register_config_section('llcm', {
    'protocol': 'corrected',   # 'corrected' (the paper's VIS->IR) or 'reference' (test.py)
}, doc='LLCM options', choices={'protocol': PROTOCOLS}, family=False)
