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

__all__ = ['load_weights', 'LoadReport']

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


def load_weights(model, path, strict=True):
    """Load the checkpoint at ``path`` into ``model``; returns a :class:`LoadReport`."""
    state = state_dict_of(load_checkpoint(path), path)
    left_out, source = {}, ''
    own = model.state_dict()
    filter_fn = getattr(model, 'checkpoint_filter', None)
    if filter_fn is not None and not set(state) <= set(own):
        try:
            state, left_out, source = filter_fn(state, model)
        # a foreign file's odd shapes or values fail inside the filter in many ways
        except (KeyError, ValueError, RuntimeError, IndexError, TypeError, AttributeError) as exc:
            raise CheckpointError('{} cannot be mapped onto {}: {}'.format(
                path, type(model).__name__, str(exc).splitlines()[0][:1000] if str(exc)
                else type(exc).__name__)) from None
    mismatched = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state.items()
                  if k in own and v.shape != own[k].shape]
    bad_shape = {m[0] for m in mismatched}
    loaded = {k: v for k, v in state.items() if k in own and k not in bad_shape}
    missing = sorted(k for k in own if k not in state)
    unexpected = sorted(k for k in state if k not in own)
    report = LoadReport(path, sorted(loaded), mismatched, missing, unexpected, left_out, source)
    if not loaded:
        raise CheckpointError('{} does not fit model {}: no parameter matches by name and '
                              'shape (first keys in file: {})'.format(
                                  path, type(model).__name__, list(state)[:3]))
    if strict and (mismatched or missing or unexpected):
        problems = []
        if mismatched:
            problems.append('shapes differ: ' + _short(
                ['{} (file {}, model {})'.format(*m) for m in mismatched]))
        if missing:
            problems.append('missing from the file: ' + _short(missing))
        if unexpected:
            problems.append('not in the model: ' + _short(unexpected))
        raise CheckpointError('{} does not fit model {} ({}); is it a checkpoint of another '
                              'model or class count? Set model.load_weights_strict False to '
                              'load only what fits'.format(path, type(model).__name__,
                                                           '; '.join(problems)))
    model.load_state_dict(loaded, strict=False)
    return report
