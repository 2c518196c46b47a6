"""Dataset options that torchreid's data managers cannot pass through.

torchreid's ``init_image_dataset``/``init_video_dataset`` call a dataset class
with a fixed set of keyword arguments (root, split_id, mode, ...). Options of
the cross-modal datasets (SYSU train+val, gallery shots, official permutation
file, trials, VCM minimum length, LLCM/BUPTCampus protocol, auxiliary set) are
set here from the config by the plugin's data managers, and read by the dataset
constructors as defaults; an explicit constructor keyword always wins. Options
with a closed set of values are checked (``DatasetOptionError``, a user error).
"""
import copy

DEFAULTS = {
    'num_trials': 10,          # SYSU gallery draws scored and averaged
    'sysu_train_with_val': True,   # 395 classes (train+val ids) as the field does
    'sysu_shots': 1,           # gallery images per (id, RGB camera): 1 or 10
    'sysu_gallery_draw': 'seeded',  # 'seeded' (random.seed(trial)) | 'official'
    'sysu_perm_file': '',      # path to the kit's rand_perm_cam.mat ('official')
    'vcm_min_seq_len': 12,     # HITSZ-VCM tracklets shorter than this are dropped
    'llcm_protocol': 'corrected',   # LLCM: 'corrected' (paper) | 'reference' (test.py)
    'bupt_protocol': 'corrected',   # BUPTCampus: 'corrected' (M3-ReID) | 'reference' (test.py)
    'bupt_use_auxiliary': False,    # BUPTCampus: train_auxiliary.txt joins training
}

#: options with a closed set of values, and the config key a user sets them with
CHOICES = {'llcm_protocol': ('llcm.protocol', ('corrected', 'reference')),
           'bupt_protocol': ('bupt.protocol', ('corrected', 'reference'))}


class DatasetOptionError(ValueError):
    """A dataset option has a value the dataset does not know (a user error)."""

_current = copy.deepcopy(DEFAULTS)


def set_dataset_options(**options):
    """Replace the current options (unknown names are an error)."""
    unknown = sorted(set(options) - set(DEFAULTS))
    if unknown:
        raise KeyError('unknown dataset option(s) {}; known: {}'.format(
            unknown, sorted(DEFAULTS)))
    for name, value in options.items():
        _check(name, value)
    _current.clear()
    _current.update(copy.deepcopy(DEFAULTS))
    _current.update(options)


def _check(name, value):
    if name in CHOICES and value not in CHOICES[name][1]:
        key, allowed = CHOICES[name]
        raise DatasetOptionError('config key {!r} (dataset option {}) must be one of {}, got '
                                 '{!r}'.format(key, name, allowed, value))


def dataset_option(name, explicit=None):
    """The explicit constructor value when given, else the configured one."""
    value = _current[name] if explicit is None else explicit
    _check(name, value)
    return value
