"""The package's one atomic file writer and one checkpoint reader.

``atomic_write`` is how every file the package writes reaches the disk
(checkpoints, results.json): a temporary file in the same folder, flushed and
fsync'ed, then renamed over the target and the folder fsync'ed, so a crash or a
pre-emption leaves either the old file or the new one, never half of one.

torchreid's ``save_model`` fails when the scheduler is None and stores numpy
scalars that ``torch.load(weights_only=True)`` (the default since torch 2.6)
refuses. Here a checkpoint holds only tensors and plain Python values, is read
with ``weights_only=True`` (or as .safetensors) so a file cannot run code when
loaded, and every error names the file and what was expected.
"""
import os
import pickle
import re
import tempfile

import numpy as np
import torch

__all__ = ['CheckpointError', 'atomic_write', 'save_checkpoint', 'load_checkpoint',
           'state_dict_of']


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


def atomic_write(path, write, mode='wb'):
    """Write ``path`` through ``write(file_object)`` atomically (see the module doc)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix='.tmp-', suffix='-' + os.path.basename(path), dir=folder)
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(folder)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _fsync_dir(folder):
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:   # some filesystems do not open folders
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save_checkpoint(state, path):
    """Write ``state`` (tensors and plain values) to ``path`` atomically."""
    plain = _plain(state)
    return atomic_write(path, lambda f: torch.save(plain, f))


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
    except pickle.UnpicklingError as exc:
        if 'weights_only' not in str(exc):
            raise _unreadable(path, exc) from None
        # a pickle that names Python classes: loading it could run their code
        found = re.search(r'(?:Unsupported global|GLOBAL) ?:? ?(?:GLOBAL )?([\w.]+)', str(exc))
        raise CheckpointError(
            'refused to load {}: it holds pickled Python objects{} that could run code when '
            'loaded (only tensors and plain values are read, torch.load(weights_only=True)). '
            'If you trust the file, convert it once: python -c "import torch; c = torch.load('
            "'{}', weights_only=False); torch.save(c.get('state_dict', c), '{}.weights.pth')"
            '" and use the .weights.pth file'.format(
                path, ' ({})'.format(found.group(1)) if found else '', path, path)) from None
    except Exception as exc:  # corrupt or truncated file, not a torch file
        raise _unreadable(path, exc) from None


def _unreadable(path, exc):
    return CheckpointError('cannot load checkpoint {}: {} (expected a complete file written by '
                           'torch.save holding tensors and plain values, or .safetensors; a '
                           'truncated or corrupted file reads like this)'.format(
                               path, str(exc).splitlines()[0]))


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
