"""Checkpoints that save and load on current PyTorch.

torchreid's ``save_model`` fails when the scheduler is None and stores numpy
scalars that ``torch.load(weights_only=True)`` (the default since torch 2.6)
refuses. Here a checkpoint holds only tensors and plain Python values, is
written atomically (a crash mid-write never replaces a good file), and every
loading error names the file and what was expected.
"""
import os
import tempfile

import numpy as np
import torch


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, unreadable or does not fit the model."""


def _plain(value):
    """numpy/torch scalars -> Python numbers, recursively, so weights_only loading works."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    if hasattr(value, 'item') and getattr(value, 'ndim', None) == 0 and not torch.is_tensor(value):
        return value.item()
    return value


def save_checkpoint(state, path):
    """Write ``state`` to ``path`` via a temporary file in the same folder, then rename."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.tmp-', suffix='.pth', dir=folder)
    os.close(fd)
    try:
        torch.save(_plain(state), tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _numpy_scalar_types():
    """The pickled classes of numpy scalars: plain data, so safe to allow. torchreid's own
    checkpoints store rank1 as one, which weights_only loading otherwise refuses (#592)."""
    core = getattr(np, '_core', None) or np.core
    dtype_classes = {type(np.dtype(t)) for t in (np.float16, np.float32, np.float64,
                                                   np.int32, np.int64, np.bool_)}
    return [core.multiarray.scalar, np.dtype, *dtype_classes]


def load_checkpoint(path):
    if not path or not os.path.isfile(path):
        raise CheckpointError('checkpoint file not found: {}'.format(path))
    try:
        with torch.serialization.safe_globals(_numpy_scalar_types()):
            ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # corrupt file, pickle with foreign objects, not a torch file
        raise CheckpointError('cannot load checkpoint {}: {} (expected a file written by '
                              'torch.save holding tensors and plain values)'.format(
                                  path, str(exc).splitlines()[0])) from None
    return ckpt


def _state_dict(ckpt, path):
    if isinstance(ckpt, dict) and 'state_dict' in ckpt:
        ckpt = ckpt['state_dict']
    if not isinstance(ckpt, dict) or not all(torch.is_tensor(v) for v in ckpt.values()):
        raise CheckpointError('{} holds no model state dict (expected a dict of tensors, '
                              'possibly under "state_dict")'.format(path))
    # checkpoints saved from nn.DataParallel/DDP prefix every key with 'module.'
    return {k[7:] if k.startswith('module.') else k: v for k, v in ckpt.items()}


def load_weights(model, path, strict_shapes=True):
    """Load model weights from a checkpoint; returns (loaded keys, skipped keys).

    Keys whose shape differs (e.g. a classifier trained on another number of
    identities) are skipped and reported; a file sharing no key with the model is
    an error rather than a silent no-op.
    """
    state = _state_dict(load_checkpoint(path), path)
    own = model.state_dict()
    loaded, skipped = {}, []
    for k, v in state.items():
        if k in own and own[k].shape == v.shape:
            loaded[k] = v
        elif k in own:
            skipped.append('{} (file {}, model {})'.format(k, tuple(v.shape), tuple(own[k].shape)))
    if not loaded:
        raise CheckpointError('{} does not fit model {}: no parameter matches by name and '
                              'shape (first keys in file: {})'.format(
                                  path, type(model).__name__, list(state)[:3]))
    model.load_state_dict(loaded, strict=False)
    return sorted(loaded), skipped


def resume(path, model, optimizer=None, scheduler=None, criterion=None):
    """Restore model/optimizer/scheduler (and the loss terms' parameters); returns the
    epoch to start from."""
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt, dict) or 'state_dict' not in ckpt or 'epoch' not in ckpt:
        raise CheckpointError('{} is not a training checkpoint (expected keys state_dict and '
                              'epoch, found {})'.format(path, sorted(ckpt)[:6] if isinstance(
                                  ckpt, dict) else type(ckpt).__name__))
    try:
        model.load_state_dict(_state_dict(ckpt, path))
    except RuntimeError as exc:
        raise CheckpointError('{} does not fit model {}: {}'.format(
            path, type(model).__name__, str(exc).splitlines()[1:3])) from None
    if criterion is not None and ckpt.get('criterion'):
        try:
            criterion.load_state_dict(ckpt['criterion'])
        except RuntimeError as exc:
            raise CheckpointError('{}: its loss-term parameters do not fit loss.terms {}: {}'
                                  .format(path, list(getattr(criterion, 'terms', {})),
                                          str(exc).splitlines()[1:3])) from None
    if optimizer is not None and ckpt.get('optimizer'):
        optimizer.load_state_dict(ckpt['optimizer'])
    if scheduler is not None and ckpt.get('scheduler'):
        scheduler.load_state_dict(ckpt['scheduler'])
    return int(ckpt['epoch'])
