"""The versioned store of the image cache: manifests, array versions, locks, sweeping.

``<folder>/<name>_<H>x<W>.json`` (the manifest) names the current array,
``<name>_<H>x<W>-<build>.npy``. A reader keeps the version it opened until it ends:
``ImageCache`` holds a shared ``flock`` on ``<array>.use`` for its lifetime (DataLoader
workers map the same file), and a superseded array is removed only when no process
holds that lock (by the last reader's ``close()`` or exit, else by the next open or
build, which sweeps the folder). A lock file (``<name>_<H>x<W>.lock``) serialises
builders, readers' opening and the sweeping (several ranks or runs at once).
"""
import fcntl
import json
import os
import re
import weakref
from contextlib import contextmanager

import numpy as np
import torch

from ..io import ImageReadError

__all__ = ['CACHE_VERSION', 'RESIZE', 'ImageCache']

CACHE_VERSION = 1
#: how the cached pixels were resized (recorded in the manifest; another value rebuilds)
RESIZE = 'torchvision.transforms.Resize(PIL, bilinear, antialias)'


def _stat(path, missing_ok=False):
    """[size, mtime_ns]; a missing file raises, or with ``missing_ok`` is [-1, -1] (it
    then fails to decode and is recorded as bad)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if missing_ok:
            return [-1, -1]
        raise ImageReadError('image file not found: {} (listed by the dataset, needed '
                             'by the image cache)'.format(path), path=path) from None
    return [int(st.st_size), int(st.st_mtime_ns)]


@contextmanager
def _locked(path, blocking=True):
    """An exclusive flock on ``path`` inside; with ``blocking=False`` yields False (and
    holds nothing) when another process has it."""
    with open(path, 'a+') as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _use_file(array):
    return array + '.use'


def _hold(array):
    """A shared flock on the array's use file: this process reads that version."""
    f = open(_use_file(array), 'a+')
    fcntl.flock(f, fcntl.LOCK_SH)
    return f


def _versions(folder, stem):
    """Paths of every array version of ``stem`` in ``folder`` and of leftover temporary
    arrays (interrupted builds)."""
    pattern = re.compile(r'^(\.tmp-)?{}-[0-9a-f]{{12}}\.npy$'.format(re.escape(stem)))
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    return [os.path.join(folder, n) for n in sorted(names) if pattern.match(n)]


def _remove_if_unused(array):
    """Remove ``array`` (and its use file) unless a process holds its use file; True when
    removed. Call with the builder lock held (no reader starts on a superseded version)."""
    use = _use_file(array)
    try:
        f = open(use, 'a+')
    except OSError:
        return False
    with f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False                      # a run still reads it
        for path in (array, use):
            try:
                os.remove(path)
            except FileNotFoundError:
                pass
            except OSError:
                return False
    return True


def _sweep(folder, stem, current):
    """Remove the superseded versions no process reads (and leftover temporary arrays:
    the caller holds the builder lock, so no build is running)."""
    kept = []
    for path in _versions(folder, stem):
        if current and os.path.abspath(path) == os.path.abspath(current):
            continue
        if os.path.basename(path).startswith('.tmp-'):
            try:
                os.remove(path)
            except OSError:
                pass
        elif not _remove_if_unused(path):
            kept.append(path)
    return kept


def _release(handle, owner, folder, stem, manifest):
    """End one reader (its owner process only: forked DataLoader workers share the lock);
    then remove its version if it is superseded and nobody else reads it."""
    if os.getpid() != owner or handle.closed:
        return
    fcntl.flock(handle, fcntl.LOCK_UN)
    handle.close()
    current = _current_array(manifest)
    if current is None:   # no readable manifest: the next open decides
        return
    try:
        with _locked(os.path.join(folder, stem + '.lock'), blocking=False) as got:
            if got:   # a builder at work sweeps when it is done
                _sweep(folder, stem, current)
    except OSError:
        pass


def _array_path(manifest, name):
    """The array ``name`` a manifest names, as a file of the manifest's own folder (one of
    its versions, ``<stem>-<build>.npy``); ``ForeignArray`` for any other name (a path
    elsewhere: a foreign file must never become training pixels)."""
    folder = os.path.dirname(manifest)
    stem = os.path.basename(manifest)[:-len('.json')]
    if not isinstance(name, str) or not re.fullmatch(
            r'{}-[0-9a-f]{{12}}\.npy'.format(re.escape(stem)), name):
        raise ForeignArray('=> Image cache {}: its array {!r} is not a version file of the '
                           'cache folder; the manifest is not used (rebuilt)'.format(
                               manifest, name))
    return os.path.join(folder, name)


class ForeignArray(ValueError):
    """A manifest names an array outside its folder (``_array_path``); never raised to the
    user: the manifest is set aside with its message."""


def _current_array(manifest):
    try:
        with open(manifest) as f:
            return _array_path(manifest, json.load(f)['array'])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class ImageCache:
    """Rows of a uint8 ``(N, 3, H, W)`` array, one per source file (memory-mapped on first
    read in each process, so DataLoader workers share the page cache).

    ``bad``: {path: message} of files that could not be decoded when the cache was built
    with ``on_bad='skip'`` (their rows are zeros and never handed out: reading one raises
    ``ImageReadError``). Opened by ``open_image_cache``, it holds its version until
    ``close()`` or the end of the process (see the module doc).
    """

    def __init__(self, array_path, files, size, bad=None, manifest=None):
        self.array_path = array_path
        self.files = list(files)
        self.size = tuple(size)
        self.row = {f: i for i, f in enumerate(self.files)}
        self.bad = dict(bad or {})
        self._array = None
        self._hold = None
        if manifest is not None:   # a reader of this version (open_image_cache's lock held)
            handle = _hold(array_path)
            folder = os.path.dirname(manifest)
            stem = os.path.basename(manifest)[:-len('.json')]
            self._hold = weakref.finalize(self, _release, handle, os.getpid(), folder, stem,
                                          manifest)

    def __len__(self):
        return len(self.files)

    @property
    def array(self):
        if self._array is None:
            self._array = np.load(self.array_path, mmap_mode='r')
        return self._array

    def read(self, rows):
        """uint8 tensor of one row (3, H, W) or of a list of rows (n, 3, H, W)."""
        if isinstance(rows, (int, np.integer)):
            return torch.from_numpy(np.array(self.array[rows]))      # a copy: writable
        return torch.from_numpy(np.take(self.array, rows, axis=0))

    def check(self, path):
        """Raise ``ImageReadError`` when ``path`` (a cached file) could not be decoded."""
        if path in self.bad:
            raise ImageReadError(self.bad[path], path=path)

    def close(self):
        """Stop reading this version (its file goes when it is superseded and unused)."""
        self._array = None
        if self._hold is not None:
            self._hold()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __getstate__(self):   # workers open their own map; the owner keeps the version
        state = dict(self.__dict__)
        state['_array'] = None
        state['_hold'] = None
        return state


def _read_manifest(path, size):
    """The manifest's {path: (row, [size, mtime_ns])}, array path and {path: message} of
    unreadable files, or None when absent, unreadable or for another version / size /
    resize, or when its array is gone."""
    try:
        with open(path) as f:
            man = json.load(f)
        if man.get('version') != CACHE_VERSION or list(man.get('size', ())) != list(size) \
                or man.get('resize') != RESIZE:
            return None
        try:
            array = _array_path(path, man['array'])
        except ForeignArray as exc:
            print(exc)
            return None
        shape = np.load(array, mmap_mode='r').shape
        if shape != (len(man['files']), 3) + tuple(size):
            return None
        rows = {f: (i, st) for i, (f, st) in enumerate(man['files'])}
        return rows, array, {f: msg for f, msg in man.get('bad', [])}
    except (OSError, ValueError, KeyError, TypeError):
        return None
