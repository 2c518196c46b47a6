"""The package's one checkpoint writer and one checkpoint reader.

torchreid's ``save_model`` fails when the scheduler is None and stores numpy
scalars that ``torch.load(weights_only=True)`` (the default since torch 2.6)
refuses. Here a checkpoint holds only tensors and plain Python values, is
written atomically (a crash mid-write never replaces a good file), is read with
``weights_only=True`` (or as .safetensors), and every error names the file and
what was expected.
"""
import os
import tempfile

import numpy as np
import torch

__all__ = ['CheckpointError', 'save_checkpoint', 'load_checkpoint', 'state_dict_of']


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
    """The object stored in a torch checkpoint (``weights_only``) or a .safetensors file."""
    path = os.fspath(path) if path else path
    if not path or not os.path.isfile(path):
        raise CheckpointError('checkpoint file not found: {}'.format(path))
    try:
        if path.lower().endswith('.safetensors'):
            from safetensors.torch import load_file
            return load_file(path)
        with torch.serialization.safe_globals(_numpy_scalar_types()):
            return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # corrupt file, pickle with foreign objects, not a torch file
        raise CheckpointError('cannot load checkpoint {}: {} (expected a file written by '
                              'torch.save holding tensors and plain values, or .safetensors)'
                              .format(path, str(exc).splitlines()[0])) from None


def state_dict_of(ckpt, path):
    """The {name: tensor} inside a loaded checkpoint: unwraps 'state_dict' / 'model' (also
    nested) and strips the 'module.' prefix of DataParallel/DDP checkpoints."""
    for _ in range(2):
        if isinstance(ckpt, dict):
            for key in ('state_dict', 'model'):
                if isinstance(ckpt.get(key), dict):
                    ckpt = ckpt[key]
                    break
    if not isinstance(ckpt, dict) or not ckpt or \
            not all(torch.is_tensor(v) for v in ckpt.values()):
        raise CheckpointError('{} holds no model state dict (expected a dict of tensors, '
                              'possibly under "state_dict" or "model")'.format(path))
    return {k[7:] if k.startswith('module.') else k: v for k, v in ckpt.items()}
