"""The two ways a plugin model is called, and what it returns to each.

torchreid's engines (``ImageSoftmaxEngine``, ``ImageTripletEngine``, the video
engines) call ``model(imgs)`` and expect torchreid's model contract: in training
the logits for ``loss='softmax'`` and ``(logits, features)`` for ``loss='triplet'``
(``loss`` as given to ``build_model``); in eval mode the (B, D) feature tensor.

``vireid_plugin.engine.CrossModalEngine`` calls ``model(imgs, modality=..., camid=...,
named_outputs=True)`` and gets, in training, the dict of named outputs its loss terms
read ('features', 'bn_features', 'logits', ...); in eval mode the same (B, D) tensor.
The keyword is explicit: a model never guesses its caller from the arguments.

A model that cannot work from images alone (MIP selects its prompts by modality;
LSMRL pairs visible and infrared clips of one identity and learns from its text
features) raises :func:`engine_required` when called the torchreid way.
"""
from ..errors import ConfigError, UserError

__all__ = ['ENGINE', 'TORCHREID_LOSSES', 'check_loss', 'outputs_for', 'engine_required',
           'EngineRequiredError']

#: the engine that passes what torchreid's engines do not (modality, camid, pid)
ENGINE = 'vireid_plugin.engine.CrossModalEngine'
#: ``loss`` values of torchreid's ``build_model`` and the training outputs they mean
TORCHREID_LOSSES = ('softmax', 'triplet')


def check_loss(name, loss):
    """torchreid's ``loss`` argument of model ``name`` (None: torchreid's default 'softmax')."""
    if loss is None:
        return 'softmax'
    if loss not in TORCHREID_LOSSES:
        raise ConfigError('model {!r}: loss must be one of {} (what torchreid\'s engines train '
                         'with), got {!r}'.format(name, ', '.join(TORCHREID_LOSSES), loss))
    return loss


def outputs_for(model, named, named_outputs):
    """What ``model``'s forward returns: ``named`` (the dict of named outputs in training,
    the feature tensor in eval) when ``named_outputs``, else torchreid's form of it."""
    if named_outputs or not model.training:
        return named
    loss = getattr(model, 'loss', 'softmax')
    if loss == 'softmax':
        return named['logits']
    if loss == 'triplet':
        return named['logits'], named['features']
    raise KeyError('Unsupported loss: {}'.format(loss))   # torchreid's own message


class EngineRequiredError(UserError, ValueError):
    """A model that needs the plugin's engine was called as torchreid's engines call it."""


def engine_required(model_name, why):
    """The error a model raises when called with images only (torchreid's engines)."""
    return EngineRequiredError(
        '{} cannot run from images alone, as torchreid\'s engines call it (model(imgs)): {}. '
        'Train and evaluate it with {} (python scripts/main.py --config-file ...), which '
        'passes modality=, camid= and pid= with every batch and named_outputs=True.'.format(
            model_name, why, ENGINE))
