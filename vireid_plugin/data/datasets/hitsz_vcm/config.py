"""HITSZ-VCM's config section ``cfg.vcm.*``: the options its loader reads (``dataset.py``)."""
from ....config.sections import register_config_section

VCM_SECTION = register_config_section('vcm', {
    'min_seq_len': 12,   # tracklets shorter than this leave train, query and gallery (MITML)
}, doc='HITSZ-VCM options', family=False)
