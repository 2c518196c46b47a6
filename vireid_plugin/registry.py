"""The plugin's registries, in one place (fast-reid style).

Models, losses, datasets, optimizers, LR schedulers, train samplers and config
sections register here with a decorator; ``register_all`` copies datasets and models into
torchreid's own registries so torchreid's data managers and ``build_model``
accept them. An unknown name is one ``KeyError`` line listing close matches.
"""
import difflib


class Registry:
    """Name -> object table with a ``register`` decorator and helpful lookups."""

    def __init__(self, kind):
        self.kind = kind
        self._table = {}

    def register(self, name=None, obj=None):
        if obj is not None:
            return self._add(name or obj.__name__, obj)

        def deco(o):
            return self._add(name or o.__name__, o)
        return deco

    def _add(self, name, obj):
        # Re-registering (module reload) replaces the entry instead of raising.
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
