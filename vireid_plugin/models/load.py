"""``load_weights(model, path)``: a full ReID checkpoint into a built model.

Reads the plugin's own checkpoints (``state_dict`` of a training checkpoint, a
bare state dict, ``.safetensors``) and foreign ones: a model family whose
published checkpoints use other names gives its model class a
``checkpoint_filter(state_dict, model) -> (state_dict, left_out)`` (timm's
``checkpoint_filter_fn`` idea), which maps the foreign names and shapes onto the
model's and says, for each foreign key it does not use, why (``left_out``:
{key: reason}). The model itself has no special case for any format.

By default the load is strict: every model tensor must come from the file with
the same shape, and every file tensor must be used or explained, else one
``CheckpointError`` lists the mismatched keys and shapes. ``strict=False``
(config ``model.load_weights_strict False``) loads what fits and reports the rest.
"""
from collections import OrderedDict

from ..checkpoint_io import CheckpointError, load_checkpoint, state_dict_of

__all__ = ['load_weights', 'check_fit', 'check_weights_fit', 'guess_model', 'LoadReport',
           'STRICT_HINT']

_SHOW = 8  # keys listed per kind in a message


class LoadReport:
    """What ``load_weights`` did: loaded keys, and the ones it could not use."""

    def __init__(self, path, loaded, mismatched, missing, unexpected, left_out, source):
        self.path = path
        self.loaded = loaded
        self.mismatched = mismatched      # [(key, file shape, model shape)]
        self.missing = missing            # model keys the file lacks
        self.unexpected = unexpected      # file keys the model lacks, unexplained
        self.left_out = left_out          # {file key: reason} from the family's filter
        self.source = source

    def summary(self):
        parts = ['Loaded {} tensors from "{}"{}'.format(
            len(self.loaded), self.path, ' ({})'.format(self.source) if self.source else '')]
        if self.left_out:
            by_reason = OrderedDict()
            for key, reason in self.left_out.items():
                by_reason.setdefault(reason, []).append(key)
            parts.append('left out (not used by this model): ' + '; '.join(
                '{} [{}]'.format(_short(keys), reason) for reason, keys in by_reason.items()))
        if self.mismatched:
            parts.append('skipped, shape differs: ' + _short(
                ['{} (file {}, model {})'.format(*m) for m in self.mismatched]))
        if self.missing:
            parts.append('kept at initialisation (not in the file): ' + _short(self.missing))
        if self.unexpected:
            parts.append('ignored (not in the model): ' + _short(self.unexpected))
        return '; '.join(parts)


def _short(keys):
    keys = list(keys)
    more = ' and {} more'.format(len(keys) - _SHOW) if len(keys) > _SHOW else ''
    return ', '.join(map(str, keys[:_SHOW])) + more


STRICT_HINT = 'Set model.load_weights_strict False to load only what fits'


def load_weights(model, path, strict=True):
    """Load the checkpoint at ``path`` into ``model``; returns a :class:`LoadReport`."""
    report, loaded = check_fit(model, state_dict_of(load_checkpoint(path), path), path, strict)
    model.load_state_dict(loaded, strict=False)
    return report


def check_fit(model, state, path, strict=True, ignore=(), hint=STRICT_HINT, name=''):
    """What ``load_weights`` would do with the state dict ``state`` (read from ``path``):
    (:class:`LoadReport`, {key: tensor} to load), or the one ``CheckpointError`` it raises
    (nothing fits; with ``strict``, any key or shape that differs). ``ignore``: model keys
    left out of the comparison (their shape follows the data: the run's class and camera
    counts, unknown before the data is read; ``check_weights_fit``); ``name``: the model's
    registered name, for the message."""
    label = '{} ({})'.format(name, type(model).__name__) if name else type(model).__name__
    left_out, source, original = {}, '', state
    own = {k: v for k, v in model.state_dict().items() if k not in ignore}
    filter_fn = getattr(model, 'checkpoint_filter', None)
    if filter_fn is not None and not set(state) <= set(model.state_dict()):
        try:
            state, left_out, source = filter_fn(state, model)
        # a foreign file's odd shapes or values fail inside the filter in many ways
        except (KeyError, ValueError, RuntimeError, IndexError, TypeError, AttributeError) as exc:
            raise CheckpointError('{} cannot be mapped onto {}: {}'.format(
                path, label, str(exc).splitlines()[0][:1000] if str(exc)
                else type(exc).__name__)) from None
    state = {k: v for k, v in state.items() if k not in ignore}
    mismatched = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state.items()
                  if k in own and v.shape != own[k].shape]
    bad_shape = {m[0] for m in mismatched}
    loaded = {k: v for k, v in state.items() if k in own and k not in bad_shape}
    missing = sorted(k for k in own if k not in state)
    unexpected = sorted(k for k in state if k not in own)
    report = LoadReport(path, sorted(loaded), mismatched, missing, unexpected, left_out, source)
    if not loaded:
        raise CheckpointError('{} does not fit model {}: no parameter matches by name and '
                              'shape (first keys in file: {}){}'.format(
                                  path, label, list(state)[:3], _belongs_to(original, model, name)))
    if strict and (mismatched or missing or unexpected):
        problems = []
        if mismatched:
            problems.append('shapes differ: ' + _short(
                ['{} (file {}, model {})'.format(*m) for m in mismatched]))
        if missing:
            problems.append('missing from the file: ' + _short(missing))
        if unexpected:
            problems.append('not in the model: ' + _short(unexpected))
        guess = _belongs_to(original, model, name)
        raise CheckpointError('{} does not fit model {} ({}){}'.format(
            path, label, '; '.join(problems), guess or '; is it a checkpoint of another model '
            'or class count? ' + hint))
    return report, loaded


def _belongs_to(state, model, name=''):
    """': it looks like a checkpoint of GUESS ...' when a registered model built with its
    defaults fits the file's keys and shapes better than ``model`` (registered as
    ``name``) does, else ''."""
    guess = guess_model(state, model.state_dict())
    if not guess:
        return ''
    if guess == name:   # the same model, with another input size or other options
        return (': it looks like a checkpoint of {} with its default input size and options, '
                'which this run changes (data.height, data.width, the model\'s config '
                'section): use those of the run that wrote it'.format(guess))
    return ': it looks like a checkpoint of {}, another model (model.name {} reads it)'.format(
        guess, guess)


def _fit_score(shapes, own):
    """The share of the keys of both state dicts ({key: shape}) with the same shape."""
    same = sum(1 for k, s in shapes.items() if own.get(k) == s)
    return same / max(1, len(set(shapes) | set(own)))


def guess_model(state, loading=None, threshold=0.9):
    """The registered model whose state dict has the keys and shapes of ``state`` (at
    least ``threshold`` of the union of both: a class- or camera-sized key may differ),
    and fits it better than the state dict ``loading`` (of the model it is loaded into)
    does; else None. Each model is built without weights on the meta device (no memory,
    a fraction of a second; on the CPU where a model cannot be built there)."""
    from .build import build_model, model_names   # the registry: filled by the families
    shapes = {k: tuple(v.shape) for k, v in state.items() if hasattr(v, 'shape')}
    best, best_score = None, threshold
    if loading is not None:
        best_score = max(threshold, _fit_score(shapes, {k: tuple(v.shape)
                                                        for k, v in loading.items()}))
    for name in model_names():
        try:
            own = {k: tuple(v.shape) for k, v in _build_shapes(build_model, name).items()}
        except Exception:   # a model that cannot be built bare here is not the answer
            continue
        score = _fit_score(shapes, own)
        if score > best_score:
            best, best_score = name, score
    return best


def check_weights_fit(build, path, strict=True, hint=STRICT_HINT, name='', ckpt=None):
    """Before any data is read: would ``load_weights`` (``strict``) take the checkpoint at
    ``path`` into the model ``build(num_classes, num_cameras)`` makes (built bare on the
    CPU)? The keys whose shape follows the class or camera count are left to the load
    after the data (a classifier of another size is then reported, or skipped with
    ``strict`` False, as always); ``ckpt``: the file's content when it was read already.
    Raises the ``CheckpointError`` of :func:`check_fit`."""
    model = _quiet(lambda: build(2, 2))
    other = _bare_state(lambda: build(3, 3))
    own = model.state_dict()
    ignore = {k for k in set(own) | set(other)
              if k not in own or k not in other or own[k].shape != other[k].shape}
    ckpt = load_checkpoint(path) if ckpt is None else ckpt
    check_fit(model, state_dict_of(ckpt, path), path, strict, ignore, hint, name)


def _build_shapes(build_model, name):
    """The state dict of model ``name`` built bare."""
    return _bare_state(lambda: build_model(name, 2, pretrained=False, num_cameras=2))


def _bare_state(make):
    """The state dict of the model ``make()`` builds: on the meta device (no memory, no
    initialisation), else on the CPU (a model whose building reads its tensors)."""
    import torch
    try:
        with torch.device('meta'):
            return _quiet(make).state_dict()
    except (NotImplementedError, RuntimeError):
        return _quiet(make).state_dict()


def _quiet(make):
    """``make()`` without its warnings and log lines ('no pretrained weights loaded': a
    bare build is meant so), which would break a one-line error."""
    import logging
    import warnings
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            return make()
    finally:
        logging.disable(previous)
