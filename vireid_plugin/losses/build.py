"""Loss terms and their weighted sum.

A loss term is an ``nn.Module`` registered in ``vireid_plugin.registry.LOSSES``,
built from keyword options, with ``forward(outputs, batch) -> scalar Tensor``:
``outputs`` is the model's train-mode dict of named outputs, ``batch`` the
engine's dict of labels (``pid``, ``camid``, ``modality``). A term reads the
output named by its ``key`` option, so the same term can serve another head.
"""
import torch
import torch.nn as nn

from ..registry import LOSSES


class LossTerm(nn.Module):
    """Base of the registered terms: the ``key`` option and checked look-ups."""

    #: output key read by default; ``key=...`` in the options overrides it
    default_key = None

    def __init__(self, key=None):
        super().__init__()
        self.key = key or self.default_key

    def _fetch(self, mapping, key, what):
        # A bare KeyError('logits') from deep inside a training step says neither
        # which loss asked nor what the model actually returned.
        try:
            return mapping[key]
        except KeyError:
            raise KeyError('{} loss needs {}[{!r}], but {} has only: {}'.format(
                type(self).__name__, what, key, what,
                ', '.join(map(repr, sorted(mapping))) or 'no keys')) from None

    def output(self, outputs):
        return self._fetch(outputs, self.key, 'outputs')

    def label(self, batch, key='pid'):
        return self._fetch(batch, key, 'batch')

    def extra_repr(self):
        return 'key={!r}'.format(self.key)


class CompositeLoss(nn.Module):
    """Weighted sum of loss terms.

    ``forward(outputs, batch)`` returns ``(total, parts)`` where ``total`` is
    ``sum(weight * term)`` and ``parts`` maps each name to its detached,
    *unweighted* value (what a log should show next to the weights).
    """

    def __init__(self, terms, weights):
        super().__init__()
        if len(terms) != len(weights):
            raise ValueError('got {} loss terms but {} weights'.format(len(terms), len(weights)))
        self.terms = nn.ModuleDict(terms)
        self.weights = {name: float(w) for name, w in zip(terms, weights)}

    def forward(self, outputs, batch):
        total, parts = 0., {}
        for name, term in self.terms.items():
            value = term(outputs, batch)
            total = total + self.weights[name] * value
            parts[name] = value.detach()
        if not torch.is_tensor(total):  # no terms at all
            raise RuntimeError('CompositeLoss has no terms')
        return total, parts

    def extra_repr(self):
        return 'weights={}'.format(self.weights)


def build_loss(names, weights, options=None):
    """Build a :class:`CompositeLoss` from registered term names.

    Args:
        names: term names, e.g. ``['id', 'triplet']`` (each at most once).
        weights: one weight per name.
        options: ``{name: {kwarg: value}}`` passed to that term's constructor.
    """
    names, weights, options = list(names), list(weights), dict(options or {})
    if len(names) != len(weights):
        raise ValueError('build_loss: {} names {} but {} weights {}'.format(
            len(names), names, len(weights), weights))
    if not names:
        raise ValueError('build_loss: no loss names given')
    if len(set(names)) != len(names):
        raise ValueError('build_loss: duplicate loss names in {}'.format(names))
    # Options for a term that is not used are almost always a typo.
    stray = sorted(set(options) - set(names))
    if stray:
        raise ValueError('build_loss: options given for {} which are not among the loss '
                         'names {}'.format(stray, names))
    terms = {name: LOSSES.get(name)(**options.get(name, {})) for name in names}
    return CompositeLoss(terms, weights)
