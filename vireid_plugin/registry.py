"""The plugin's registries, in one place (fast-reid style).

Models, losses, datasets, optimizers, LR schedulers, train samplers and config
sections register here with a decorator; ``register_all`` copies datasets and models into
torchreid's own registries so torchreid's data managers and ``build_model``
accept them, and what registers later is copied as it registers (``on_register``). An
unknown name is one ``KeyError`` line listing close matches; a name already taken by
another definition is a ``ValueError`` naming both (the same definition again, from a
re-import or ``importlib.reload``, replaces its entry).
"""
import difflib

__all__ = ['Registry', 'same_definition', 'origin', 'IMAGE_DATASETS', 'VIDEO_DATASETS',
           'MODELS', 'LOSSES', 'OPTIMIZERS', 'SCHEDULERS', 'SAMPLERS', 'CONFIG_SECTIONS',
           'SYNTHETIC_WRITERS', 'TRANSFORMS']


def _qualified(obj):
    module, qualname = getattr(obj, '__module__', None), getattr(obj, '__qualname__', None)
    return (module, qualname) if module and qualname else None


def origin(obj):
    """Where ``obj`` is defined, for messages: ``module.qualname`` (or its repr)."""
    name = _qualified(obj)
    return '{}.{}'.format(*name) if name else repr(obj)


def same_definition(old, new):
    """Whether ``new`` is ``old`` defined again (its module re-imported or reloaded): the
    same object, a class or function of the same module and qualified name, or an
    instance of the same class with equal attributes (a config section declared again)."""
    if old is new:
        return True
    name = _qualified(new)
    if name is not None:
        return _qualified(old) == name
    if _qualified(type(old)) != _qualified(type(new)):
        return False
    try:
        return vars(old) == vars(new)
    except TypeError:   # no __dict__
        return old == new


class Registry:
    """Name -> object table with a ``register`` decorator and helpful lookups."""

    def __init__(self, kind):
        self.kind = kind
        self._table = {}
        self._listeners = []

    def on_register(self, listener):
        """Call ``listener(name, obj)`` for every entry registered from now on (``import
        vireid_plugin`` mirrors datasets and models into torchreid's registries this way,
        so a module of one's own is visible to torchreid as soon as it is imported)."""
        self._listeners.append(listener)

    def register(self, name=None, obj=None):
        if obj is not None:
            return self._add(name or obj.__name__, obj)

        def deco(o):
            return self._add(name or o.__name__, o)
        return deco

    def _add(self, name, obj):
        old = self._table.get(name)
        if old is not None and not same_definition(old, obj):
            raise ValueError('{} name {!r} is already taken by {}; {} cannot be registered '
                             'under it too (give it another name)'.format(
                                 self.kind, name, origin(old), origin(obj)))
        for listener in self._listeners:   # a listener that refuses leaves nothing behind
            listener(name, obj)
        # the same definition again (a re-import, importlib.reload) replaces the entry
        self._table[name] = obj
        return obj

    def get(self, name):
        try:
            return self._table[name]
        except KeyError:
            close = difflib.get_close_matches(str(name), list(self._table), n=3)
            hint = ' (did you mean {}?)'.format(', '.join(close)) if close else ''
            raise KeyError('unknown {} {!r}{}; available: {}'.format(
                self.kind, name, hint, ', '.join(sorted(self._table)))) from None

    def __contains__(self, name):
        return name in self._table

    def __iter__(self):
        return iter(sorted(self._table))

    def items(self):
        return sorted(self._table.items())

    def names(self):
        return sorted(self._table)


IMAGE_DATASETS = Registry('image dataset')
VIDEO_DATASETS = Registry('video dataset')
MODELS = Registry('model')
LOSSES = Registry('loss term')
OPTIMIZERS = Registry('optimizer')
SCHEDULERS = Registry('LR scheduler')
#: training samplers of the plugin (``sampler.train_sampler``; torchreid's names work too)
SAMPLERS = Registry('train sampler')
#: config sections owned by model families (``cfg.<name>.*``)
CONFIG_SECTIONS = Registry('config section')
#: synthetic data writers of the dataset families (``data/datasets/<family>/synthetic.py``)
SYNTHETIC_WRITERS = Registry('synthetic dataset')
#: training-transform names ``data.transforms`` accepts (filled by ``data/transforms.py``)
TRANSFORMS = Registry('transform')
