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
with ``weights_only=True`` (or as .safetensors, or a TorchScript archive's tensors
through ``torchscript_state``) so a file cannot run code when loaded. The first bytes
tell what a file is before torch reads it, so random bytes, zeros, text and empty
files get one line saying so; every error names the file (``quote_path``: safe to
paste) and what was expected, and torch's advice to retry with ``weights_only=False``
never reaches the user (``torch_error_detail``): a refused pickle's message lists the
Python names it holds and the safe remedy first.

New files get the permission bits of the file they replace, else ``0o666 & ~umask``.
"""
import errno
import os
import pickle
import re
import shlex
import stat
import tempfile

import numpy as np
import torch

from .errors import UserError
from .torchscript_state import ArchiveError, is_torchscript_archive, read_torchscript_state_dict

__all__ = ['CheckpointError', 'WriteError', 'atomic_write', 'save_checkpoint', 'load_checkpoint',
           'state_dict_of', 'quote_path', 'torch_error_detail']


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

    The new file keeps the permission bits of the file it replaces, else gets
    ``0o666 & ~umask`` like any file ``open()`` creates (a group-shared run folder stays
    readable by the group).

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
            _set_mode(f.fileno(), path)
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


def _umask():
    """The process umask, read without changing it where the system tells it
    (/proc/self/status, Linux >= 4.7); else set and restored at once."""
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('Umask:'):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _mode_for(path):
    """The permission bits of the file ``path`` replaces, else what ``open()`` would give
    a new file: 0o666 & ~umask (``mkstemp`` itself creates 0o600)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _set_mode(fd, path):
    try:
        os.fchmod(fd, _mode_for(path))
    except OSError:   # a file system without permission bits (some FUSE/SMB mounts)
        pass


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


def quote_path(path):
    """``path`` as it is safe to paste into a shell: ``shlex.quote``, or ``repr`` when it
    holds characters a terminal would not show (newlines, escapes)."""
    path = os.fspath(path)
    return shlex.quote(path) if path.isprintable() else repr(path)


#: how each kind of file starts (the first bytes decide what reads it)
_ZIP_MAGIC = b'PK\x03\x04'
_PICKLE_PROTOCOLS = tuple(bytes([0x80, p]) for p in range(2, 6))   # torch < 1.6 files
_EXPECTED = ('expected a checkpoint written by torch.save (a zip archive of tensors and '
             'plain values), a .safetensors file or a TorchScript archive')


def load_checkpoint(path, mmap=False):
    """The object stored in a torch checkpoint (``weights_only``), a .safetensors file, or
    the state dict of a TorchScript archive (``torchscript_state``: nothing in it runs).
    ``mmap``: a torch zip checkpoint's tensors are mapped from the file, not read (for a
    look at its keys and shapes: nothing is read until a tensor's values are).

    Every failure is one ``CheckpointError`` naming the file and what was expected;
    torch's advice to retry with ``weights_only=False`` never reaches the user."""
    path = os.fspath(path) if path else path
    if not path or not os.path.isfile(path):
        raise CheckpointError('checkpoint file not found: {}'.format(
            quote_path(path) if path else repr(path)))
    try:
        with open(path, 'rb') as f:
            head = f.read(16)
    except OSError as exc:
        raise CheckpointError('cannot read checkpoint {}: {}'.format(
            quote_path(path), exc.strerror or exc)) from None
    if not head:
        raise CheckpointError('checkpoint {} is empty (0 bytes); {}'.format(
            quote_path(path), _EXPECTED))
    if path.lower().endswith('.safetensors') or _looks_like_safetensors(head):
        return _load_safetensors(path)
    if head.startswith(_ZIP_MAGIC):
        if is_torchscript_archive(path):
            try:
                return read_torchscript_state_dict(path)
            except ArchiveError as exc:
                raise CheckpointError('cannot read the TorchScript archive {}: {}'.format(
                    quote_path(path), exc)) from None
    elif not head.startswith(_PICKLE_PROTOCOLS):
        raise CheckpointError('{} is not a checkpoint: {} (it starts with {!r})'.format(
            quote_path(path), _EXPECTED, head[:8]))
    try:
        with torch.serialization.safe_globals(_numpy_scalar_types()):
            return torch.load(path, map_location='cpu', weights_only=True,
                              mmap=bool(mmap) and head.startswith(_ZIP_MAGIC))
    except Exception as exc:  # noqa: BLE001 - every failure becomes one line
        raise _refusal(path, exc) from None


def _looks_like_safetensors(head):
    """A safetensors file: an 8-byte little-endian header length, then a JSON object."""
    return len(head) > 9 and head[8:9] == b'{' and 2 <= int.from_bytes(head[:8], 'little') \
        < (1 << 31)


def _load_safetensors(path):
    from safetensors import SafetensorError
    from safetensors.torch import load_file
    try:
        return load_file(path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError('cannot load {} as .safetensors: {}; {}'.format(
            quote_path(path), str(exc).splitlines()[0] if str(exc) else type(exc).__name__,
            _EXPECTED)) from None


def _unsafe_globals(path):
    """The Python names a checkpoint's pickle refers to that weights_only loading refuses
    (torch.serialization.get_unsafe_globals_in_checkpoint: reads the opcodes, runs
    nothing), or [] when that cannot be told."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # noqa: BLE001 - a file it cannot parse: no names to show
        return []


def _refusal(path, exc):
    """The one error for a file torch.load(weights_only=True) did not read."""
    text = str(exc)
    names = _unsafe_globals(path) if isinstance(exc, pickle.UnpicklingError) and (
        'GLOBAL' in text or 'global' in text) else []
    if not names:
        return _unreadable(path, exc)
    shown = quote_path(path)
    listing = 'import torch; print(torch.serialization.get_unsafe_globals_in_checkpoint({!r}))'
    return CheckpointError(
        'refused to load {}: its pickle names the Python object(s) {} that could run code '
        'when loaded (only tensors and plain values are read: torch.load(weights_only=True)). '
        'If the file is yours and these are plain data classes, allow exactly them: list '
        'them with python -c {} and load with torch.serialization.add_safe_globals([...]) '
        'or, better, save the state dict alone (tensors) or as .safetensors where the file '
        'was made. Loading it with weights_only=False would run whatever code it holds: never '
        'for a file someone sent you'.format(
            shown, ', '.join(names[:8]) + (' and {} more'.format(len(names) - 8)
                                           if len(names) > 8 else ''),
            shlex.quote(listing.format(os.path.abspath(path)))))


def torch_error_detail(exc):
    """The specific part of a torch.load error, without its advice to retry with
    weights_only=False (which would run the file's code)."""
    text = str(exc)
    found = re.search(r'WeightsUnpickler error: (.*?)(?:\n\nCheck the documentation|$)', text,
                      re.DOTALL)
    named = re.search(r'(Trying to load unsupported GLOBAL [^\n]*|Unsupported global: [^\n]*)',
                      text)
    if found:
        text = found.group(1)
    elif named:   # a pickled Python object: named, without the advice to load it anyway
        return '{} (only tensors and plain values are read)'.format(named.group(1).strip())
    elif 'weights_only' in text:
        if 'legacy .tar format' in text:
            return 'a legacy .tar-format file (PyTorch < 0.4), which is not read'
        text = text.split('In PyTorch 2.6')[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _unreadable(path, exc):
    return CheckpointError('cannot load checkpoint {}: {} ({}; a truncated or corrupted '
                           'file reads like this)'.format(quote_path(path), torch_error_detail(exc),
                                                          _EXPECTED))


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
