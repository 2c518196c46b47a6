"""Loss terms and their weighted sum.

A loss term is an ``nn.Module`` registered in ``vireid_plugin.registry.LOSSES``,
built from keyword options, with ``forward(outputs, batch) -> scalar Tensor``:
``outputs`` is the model's train-mode dict of named outputs, ``batch`` the
engine's dict of labels (``pid``, ``camid``, ``modality``). A term reads the
output named by its ``key`` option, so the same term can serve another head.

A term declares its options in a ``config`` class attribute ({option: default});
they appear as ``cfg.loss.<name>.*`` (``config_section`` renames the section, as
``id`` reads torchreid's ``loss.softmax``) and ``from_config`` turns a section
into constructor keywords. A term whose constructor takes ``num_classes`` and/or
``model`` receives the number of training identities and the built model, so it
can own parameters (IAEL's BN + classifiers): those move to the device with the
model, are optimised and are saved in checkpoints. ``set_epoch(epoch)`` is
called at the start of every epoch on terms that define it.
"""
import inspect

import torch
import torch.nn as nn

from ..registry import LOSSES


class LossTerm(nn.Module):
    """Base of the registered terms: the ``key`` option and checked look-ups."""

    #: output key read by default; ``key=...`` in the options overrides it
    default_key = None
    #: options read from ``cfg.loss.<config_section or name>`` ({option: default})
    config = {}
    config_section = None

    @classmethod
    def from_config(cls, section):
        """Constructor keywords from this term's config section (a mapping)."""
        return {k: section[k] for k in cls.config}

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

    def heads(self, outputs):
        """``outputs[key]`` as a non-empty list of per-head tensors."""
        value = self.output(outputs)
        heads = list(value) if isinstance(value, (list, tuple)) else [value]
        if not heads:
            raise ValueError('{}: outputs[{!r}] is an empty list'.format(type(self).__name__,
                                                                        self.key))
        return heads

    @staticmethod
    def reduce_heads(values, outputs):
        """Combine per-head losses: the model's ``outputs['head_weights']`` when it declares
        them (TransReID's JPM: 0.5 global + 0.5 mean of the parts), else their mean."""
        weights = outputs.get('head_weights')
        if weights is None or len(values) == 1:
            return sum(values) / len(values)
        if len(weights) != len(values):
            raise ValueError('outputs["head_weights"] has {} weights for {} heads'.format(
                len(weights), len(values)))
        return sum(w * v for w, v in zip(weights, values))

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

    def set_epoch(self, epoch):
        for term in self.terms.values():
            if hasattr(term, 'set_epoch'):
                term.set_epoch(epoch)

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


def build_loss(names, weights, options=None, num_classes=None, model=None):
    """Build a :class:`CompositeLoss` from registered term names.

    Args:
        names: term names, e.g. ``['id', 'triplet']`` (each at most once).
        weights: one weight per name.
        options: ``{name: {kwarg: value}}`` passed to that term's constructor.
        num_classes, model: given to the terms whose constructor asks for them.
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
    context = {'num_classes': num_classes, 'model': model}
    terms = {}
    for name in names:
        cls = LOSSES.get(name)
        wanted = inspect.signature(cls.__init__).parameters
        extra = {k: v for k, v in context.items() if k in wanted}
        missing = [k for k, v in extra.items() if v is None and
                   wanted[k].default is inspect.Parameter.empty]
        if missing:
            raise ValueError('build_loss: loss term {!r} needs {} (pass {} to build_loss)'.format(
                name, ' and '.join(missing), ', '.join('{}='.format(m) for m in missing)))
        terms[name] = cls(**extra, **options.get(name, {}))
    return CompositeLoss(terms, weights)

