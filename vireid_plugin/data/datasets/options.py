"""How the options a config sets for a dataset reach it.

A dataset takes its options as constructor keywords (``SYSUMM01(root, shots=10)``).
torchreid's ``init_image_dataset``/``init_video_dataset`` call a dataset class with a
fixed set of keywords (root, split_id, mode, ...), so when torchreid's data manager
code builds the datasets the options cannot travel that way. The plugin's data
managers therefore build them inside ``scoped_options(...)``: a context variable that
holds the options ({config key: value}, e.g. ``{'sysu.shots': 10, 'test.num_trials':
10}``) only while the data manager is being constructed, and is reset when that ends
or fails. Nothing is left behind for the next data manager or test.

A dataset reads each option with ``dataset_option(key, explicit)``: the explicit
keyword when given, else the scoped value, else the default of the config (what a
plain torchreid data manager that builds a plugin dataset gets). Values outside the
choices the option's config section declares are a ``DatasetOptionError``.
"""
import contextlib
import contextvars
from types import MappingProxyType

from ...errors import DatasetOptionError
from ...registry import CONFIG_SECTIONS

__all__ = ['DatasetOptionError', 'dataset_option', 'scoped_options', 'default_option',
           'scoped_value']

#: the options of the data manager being constructed (None outside a construction)
_SCOPE = contextvars.ContextVar('vireid_plugin_dataset_options', default=None)


def default_option(key):
    """The default value of config key ``key`` ('sysu.shots', 'test.num_trials', ...)."""
    from ...config.defaults import get_default_config
    node = get_default_config()
    for part in key.split('.'):
        if not hasattr(node, 'get') or part not in node:
            raise KeyError('dataset option {!r} is not a config key'.format(key))
        node = node[part]
    return list(node) if isinstance(node, tuple) else node


@contextlib.contextmanager
def scoped_options(options):
    """Datasets built inside the block read ``options`` ({config key: value})."""
    options = dict(options or {})
    for key in options:
        default_option(key)   # a key that is not a config key is a programming error
    token = _SCOPE.set(MappingProxyType(options))
    try:
        yield
    finally:
        _SCOPE.reset(token)


def scoped_value(key):
    """The value a run's data manager set for ``key``, or None outside a run's scope (a
    plain torchreid data manager, a dataset built by hand)."""
    scoped = _SCOPE.get()
    return scoped.get(key) if scoped is not None else None


def dataset_option(key, explicit=None):
    """The explicit constructor value when given, else the scoped option, else the default."""
    if explicit is not None:
        value = explicit
    else:
        scoped = _SCOPE.get()
        value = scoped[key] if scoped is not None and key in scoped else default_option(key)
    _check(key, value)
    return value


def _check(key, value):
    section, _, name = key.partition('.')
    allowed = CONFIG_SECTIONS.get(section).choices.get(name) if section in CONFIG_SECTIONS \
        else None
    if allowed is not None and value not in allowed:
        raise DatasetOptionError('config key {!r} must be one of {}, got {!r}'.format(
            key, tuple(allowed), value))
