"""Config sections owned by the components that read them (fast-reid style).

A model family declares its section in its own module::

    register_config_section('mip', {'num_tokens': 16, ...}, doc='MIP (image, ViT)')

and the keys appear as ``cfg.mip.*`` with those defaults. A registered model
names the one section it reads (``register_model(..., config_section='mip')``);
setting a key of another family's section is a config error, so nothing is
silently ignored. Loss terms declare their options the same way through a
``config`` class attribute (``cfg.loss.<term>.*``). A dataset family registers the
section of its options the same way (``family=False``: read whenever its dataset is
used, e.g. ``cfg.sysu.*``), with ``check`` for rules that span keys. Nothing here is
a central list: importing a component registers its section.
"""
import copy

from yacs.config import CfgNode as CN

from ..registry import CONFIG_SECTIONS, LOSSES

__all__ = ['ConfigSection', 'register_config_section', 'add_registered_sections',
           'section_defaults', 'loss_section_name', 'changed_keys']

#: torchreid's own top-level sections; a plugin section may not take these names
RESERVED = ('model', 'data', 'market1501', 'cuhk03', 'sampler', 'video', 'train', 'sgd',
            'rmsprop', 'adam', 'loss', 'test', 'use_gpu')

_YACS_TYPES = (int, float, bool, str, list, tuple)


class ConfigSection:
    """A named set of keys with defaults (plain Python values yacs accepts)."""

    def __init__(self, name, defaults, doc='', choices=None, family=True, check=None):
        bad = {k: type(v).__name__ for k, v in defaults.items()
               if not isinstance(v, _YACS_TYPES)}
        if bad:
            raise TypeError('config section {!r}: defaults must be int/float/bool/str/list, '
                            'got {}'.format(name, bad))
        self.name = name
        self.defaults = copy.deepcopy(dict(defaults))
        self.doc = doc
        #: a model family's section (only its models read it) or, False, one every run reads
        self.family = bool(family)
        #: {key: allowed values} checked when a config is loaded
        self.choices = dict(choices or {})
        stray = sorted(set(self.choices) - set(self.defaults))
        if stray:
            raise ValueError('config section {!r}: choices for undeclared keys {}'.format(
                name, stray))
        #: ``check(cfg)`` -> None, or the message of what is wrong (rules that span keys)
        self.check = check

    def node(self):
        return CN(copy.deepcopy(self.defaults))

    def __repr__(self):
        return 'ConfigSection({!r}, {} keys)'.format(self.name, len(self.defaults))


def register_config_section(name, defaults, doc='', choices=None, family=True, check=None):
    """Declare ``cfg.<name>.*``; re-registering (module reload) replaces the entry.

    ``choices`` ({key: allowed values}) are checked when a config is loaded.
    ``family=False``: a feature's (or a dataset's) section, so setting its keys is never
    a "model does not read it" error. ``check(cfg)``, when given, runs when a config is
    loaded and returns None or a message naming the keys that are wrong (a config error).
    """
    if name in RESERVED:
        raise ValueError('config section name {!r} is one of torchreid\'s own sections'.format(
            name))
    section = ConfigSection(name, defaults, doc, choices, family, check)
    CONFIG_SECTIONS.register(name, section)
    return section


def section_defaults(name):
    """A fresh copy of the defaults of a registered section."""
    return copy.deepcopy(CONFIG_SECTIONS.get(name).defaults)


def loss_section_name(term_name):
    """``cfg.loss.<this>`` holds a term's options (torchreid's names for id/triplet)."""
    cls = LOSSES.get(term_name)
    return getattr(cls, 'config_section', None) or term_name


def add_registered_sections(cfg):
    """Add every registered model-family section and every loss term's options to ``cfg``."""
    for name, section in CONFIG_SECTIONS.items():
        cfg[name] = section.node()
    for term_name, cls in LOSSES.items():
        options = getattr(cls, 'config', None)
        if options:
            section = loss_section_name(term_name)
            node = cfg.loss.get(section) or CN()
            for key, value in options.items():
                if key not in node:
                    node[key] = copy.deepcopy(value)
            cfg.loss[section] = node
    return cfg


def changed_keys(cfg, name):
    """Keys of section ``name`` whose value in ``cfg`` differs from the registered default."""
    defaults = CONFIG_SECTIONS.get(name).defaults
    node = cfg[name]
    return sorted('{}.{}'.format(name, k) for k, v in defaults.items()
                  if _plain(node[k]) != _plain(v))


def _plain(value):
    return list(value) if isinstance(value, (list, tuple)) else value
