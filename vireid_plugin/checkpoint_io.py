"""The package's one atomic file writer and one checkpoint reader.

``atomic_write`` is how every file the package writes reaches the disk
(checkpoints, results.json): a temporary file in the same folder, flushed and
fsync'ed, then renamed over the target and the folder fsync'ed, so a crash or a
pre-emption leaves either the old file or the new one, never half of one. A write
that fails (a full disk, a revoked mount or permission: ENOSPC, EIO, EACCES, ...)
removes its temporary file, leaves the previous file as it was and raises one
``WriteError`` naming the file and the cause.

torchreid's ``save_model`` fails when the scheduler is None and stores numpy
scalars that ``torch.load(weights_only=True)`` (the default since torch 2.6)
refuses. Here a checkpoint holds only tensors and plain Python values, is read
with ``weights_only=True`` (or as .safetensors) so a file cannot run code when
loaded, and every error names the file and what was expected.
"""
import errno
import os
import pickle
import re
import tempfile

import numpy as np
import torch

from .errors import UserError

__all__ = ['CheckpointError', 'WriteError', 'atomic_write', 'save_checkpoint', 'load_checkpoint',
           'state_dict_of']


class CheckpointError(UserError, RuntimeError):
    """A checkpoint file is missing, unreadable or does not fit the model."""


class WriteError(UserError, OSError):
    """A file could not be written (disk full, I/O error, no permission); the previous
    file of that name, if any, is unchanged. ``filename``: the file; ``errno`` and
    ``strerror``: the cause."""

    def __init__(self, path, cause):
        code = getattr(cause, 'errno', None)
        reason = getattr(cause, 'strerror', None) or str(cause)
        super().__init__(code, reason)
        self.filename = path
        self.message = 'cannot write {}: {}{}; {}'.format(
            path, reason, ' [{}]'.format(errno.errorcode[code]) if code in errno.errorcode
            else '', 'the previous file is unchanged and no partial file is left'
            if os.path.exists(path) else 'no partial file is left')

    def __str__(self):
        return self.message

    def __reduce__(self):   # DataLoader workers / multiprocessing re-raise it
        return _rebuild_write_error, (self.filename, self.errno, self.strerror, self.message)


def _rebuild_write_error(path, code, reason, message):
    exc = WriteError.__new__(WriteError)
    OSError.__init__(exc, code, reason)
    exc.filename, exc.message = path, message
    return exc


def _os_error(exc):
    """The OSError behind ``exc`` (itself, or its cause / context: torch.save reports a
    failed file write as a RuntimeError raised while handling it), or None."""
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, OSError):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


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
    """Write ``path`` through ``write(file_object)`` atomically (see the module doc).

    Any failure leaves ``path`` as it was and no temporary file; a failure of the file
    system (an ``OSError``, also when the writer reports it as another exception, as
    torch.save does) raises ``WriteError`` naming ``path`` and the cause."""
    folder = os.path.dirname(os.path.abspath(path))
    tmp = None
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix='.tmp-', suffix='-' + os.path.basename(path),
                                   dir=folder)
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        tmp = None
    except BaseException as exc:
        if tmp is not None:
            _remove_quietly(tmp)
        cause = _os_error(exc)
        if cause is None or isinstance(exc, WriteError):
            raise
        raise WriteError(path, cause) from exc
    _fsync_dir(folder)
    return path


def _remove_quietly(path):
    """Remove a temporary file; a failure here (the mount is gone) must not hide the
    write's own error."""
    try:
        os.remove(path)
    except OSError:
        pass


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
    """The {name: tensor} inside a loaded checkpoint: unwraps 'state_dict' / 'model' / 'net'
    (the AGW/CAJ authors' files; also nested) and strips the 'module.' prefix of
    DataParallel/DDP checkpoints."""
    for _ in range(2):
        if isinstance(ckpt, dict):
            for key in ('state_dict', 'model', 'net'):
                if isinstance(ckpt.get(key), dict):
                    ckpt = ckpt[key]
                    break
    if not isinstance(ckpt, dict) or not ckpt or \
            not all(torch.is_tensor(v) for v in ckpt.values()):
        raise CheckpointError('{} holds no model state dict (expected a dict of tensors, '
                              'possibly under "state_dict" or "model")'.format(path))
    return {k[7:] if k.startswith('module.') else k: v for k, v in ckpt.items()}
