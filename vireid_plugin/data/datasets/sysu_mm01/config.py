"""SYSU-MM01's config section ``cfg.sysu.*``: the options its loader reads (``dataset.py``).

The number of gallery draws scored is ``test.num_trials`` (torchreid's test section).
"""
from ....config.sections import register_config_section
from .dataset import DRAWS


def check(cfg):
    """Rules across keys: None, or what is wrong."""
    if cfg.sysu.shots < 1:
        return 'sysu.shots must be >= 1, got {}'.format(cfg.sysu.shots)
    if cfg.test.select_on == 'val' and cfg.sysu.train_with_val:
        return ("test.select_on val scores SYSU-MM01's validation ids, which "
                "sysu.train_with_val True trains on: set sysu.train_with_val False")
    return None


SYSU_SECTION = register_config_section('sysu', {
    'train_with_val': True,    # 395 classes; False keeps val ids out for model selection
    'shots': 1,                # gallery images per (id, RGB camera): 1 single-shot, 10 multi-shot
    'gallery_draw': 'seeded',  # 'seeded' (random.seed(trial)) or 'official' (rand_perm_cam.mat)
    'perm_file': '',           # path to the evaluation kit's rand_perm_cam.mat
}, doc='SYSU-MM01 options', choices={'gallery_draw': DRAWS}, family=False, check=check)
