"""Plugin-side model factory: ``register_model`` and ``build_model(name, num_classes, ...)``.

A model family registers its builders here with the config section they read::

    register_config_section('mip', MIP_DEFAULTS)

    @register_model('mip_vit_base_patch16', config_section='mip')
    def mip_vit_base_patch16(num_classes, pretrained=True, num_cameras=0, img_size=None,
                             pretrained_path='', **options): ...

The registered callable fills ``options`` with the section's defaults (the
paper's settings), so ``build_model(name, num_classes, num_cameras=6,
pretrained=False)`` needs no config; it rejects option names the section does not
declare. torchreid's ``loss`` argument ('softmax', the default, or 'triplet') is kept
as ``model.loss``: it decides what the model returns when torchreid's engines call it
(``contract.py``); ``use_gpu`` is dropped (device placement is the engine's job).
"""
import functools

from ..registry import CONFIG_SECTIONS, MODELS
from .contract import check_loss

__all__ = ['register_model', 'register_arch', 'build_model', 'check_pretrained', 'model_names',
           'COMMON_ARGS']

#: keyword arguments every plugin builder takes besides its section's options
COMMON_ARGS = ('pretrained', 'num_cameras', 'img_size', 'pretrained_path')


def register_model(name, config_section=None):
    """Decorator: register ``builder`` as ``name``, reading ``cfg.<config_section>``."""

    def deco(fn):
        @functools.wraps(fn)
        def builder(num_classes, loss=None, use_gpu=None, **kwargs):
            defaults = CONFIG_SECTIONS.get(config_section).defaults if config_section else {}
            unknown = sorted(set(kwargs) - set(COMMON_ARGS) - set(defaults))
            if unknown:
                raise TypeError('model {!r} got unknown option(s) {}; it takes {}{}'.format(
                    name, unknown, ', '.join(COMMON_ARGS),
                    ' and the {} section keys: {}'.format(config_section, ', '.join(
                        sorted(defaults))) if defaults else ''))
            options = {k: v for k, v in defaults.items() if k not in kwargs}
            loss_name = check_loss(name, loss)
            model = fn(num_classes, **options, **kwargs)
            model.loss = loss_name
            return model

        builder.config_section = config_section
        MODELS.register(name, builder)
        return builder

    return deco


def register_arch(name, build_fn, config_section, weights_check=None):
    """Register ``name`` as ``build_fn(name, num_classes, pretrained, **kwargs)``: one build
    function serving every architecture of a family (base, tiny, ...). ``weights_check``:
    ``fn(name, **kwargs)`` that raises when the weights ``pretrained=True`` fetches are
    neither cached nor downloadable now, without building anything
    (:func:`check_pretrained`)."""
    def builder(num_classes, pretrained=True, **kwargs):
        return build_fn(name, num_classes, pretrained, **kwargs)
    builder.__name__ = builder.__qualname__ = name
    builder.__module__ = build_fn.__module__   # the family's module defines the name
    registered = register_model(name, config_section)(builder)
    registered.weights_check = (functools.partial(weights_check, name) if weights_check
                                else None)
    return registered


def check_pretrained(name, **kwargs):
    """Before a run reads any data: would ``build_model(name, pretrained=True, **kwargs)``
    get its pretrained weights (cached, or the hub reachable)? One
    ``PretrainedWeightsError`` (the folder searched, the command that fetches them) if not.
    A model without such a check (or without published weights) passes."""
    check = getattr(MODELS.get(name), 'weights_check', None)
    if check is not None:
        check(**kwargs)


def build_model(name, num_classes, **kwargs):
    """Build a registered model; unknown names raise KeyError listing close matches.

    kwargs: ``pretrained``, ``num_cameras``, ``img_size``, ``pretrained_path``, torchreid's
    ``loss`` ('softmax' or 'triplet': the training outputs torchreid's engines get) and the
    options of the model's config section (defaults: the paper's settings).
    """
    return MODELS.get(name)(num_classes, **kwargs)


def model_names():
    return MODELS.names()
