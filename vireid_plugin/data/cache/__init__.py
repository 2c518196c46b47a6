"""Pre-resized uint8 training images, built once beside the dataset (``data_cache.*``).

``open_image_cache(files, (H, W), name)`` returns an ``ImageCache``: every file
decoded once with the dataset's reader (``io.read_image``), resized to the training
size with the training pipeline's own resize (torchvision ``Resize((H, W))`` on the
PIL image: bilinear, antialiased) and stored as a uint8 ``(N, 3, H, W)`` array in a
``.npy`` file read through a memory map, plus a JSON manifest listing each source
file with its (size, mtime_ns). Next time the manifest is compared with the files:
any file changed, missing or added re-reads those files only (the other rows are
copied from the old array) and says so; an unchanged set opens at once.

Versions: ``<folder>/<name>_<H>x<W>.json`` (the manifest) names the current array,
``<name>_<H>x<W>-<build>.npy``; every build writes a new array (under a temporary name,
then renamed) and switches by replacing the manifest atomically
(``checkpoint_io.atomic_write``), so a crash leaves the old cache or the new one, never
a mix. A reader keeps the version it opened until it ends: ``ImageCache`` holds a
shared ``flock`` on ``<array>.use`` for its lifetime (DataLoader workers map the same
file), and a superseded array is removed only when no process holds that lock (by the
last reader's ``close()`` or exit, else by the next open or build, which sweeps the
folder). A lock file (``<name>_<H>x<W>.lock``) serialises builders, readers' opening
and the sweeping (several ranks or runs at once).
The folder is ``data_cache.dir`` when set, else ``.vireid_cache`` in ``data.root``
(beside the dataset folders), else, when that is not writable, a folder per root under
the user cache dir (``$XDG_CACHE_HOME`` or ``~/.cache``): it never depends on the files
the dataset lists (``location.py``). A manifest's array is read only from its own folder.

One job per file: this module builds and opens (``open_image_cache``); ``store.py``
keeps the versions (manifests, arrays, locks, sweeping; ``ImageCache``); ``location.py``
says where the folder is; ``dataset.py`` is the training dataset on top of it
(``CachedTrainItems``) and ``cached_train_loader``, which swaps it into a data manager's
train loader.
"""
import errno
import json
import os
import uuid
from contextlib import ExitStack

import numpy as np
import torch
import torchvision.transforms as T

from ...checkpoint_io import WriteError, atomic_write
from ...config.sections import register_config_section
from ...progress import progress
from ..io import ImageReadError, read_image
from .location import cache_folder, legacy_folder
from .store import (CACHE_VERSION, RESIZE, ImageCache, _hold, _locked, _read_manifest,
                    _remove_if_unused, _stat, _sweep)

__all__ = ['DATA_CACHE_SECTION', 'ImageCache', 'open_image_cache', 'cache_folder',
           'resize_to_cache']

DATA_CACHE_SECTION = register_config_section('data_cache', {
    'enabled': False,       # train from pre-resized uint8 images (built once, then memory-mapped)
    'dir': '',              # '' = .vireid_cache in data.root (user cache dir if read-only)
    'gpu_augment': True,    # augment per batch on the device; False: PIL pipeline on cached pixels
}, doc='uint8 training-image cache and batch augmentation', family=False)


def resize_to_cache(path, size):
    """The cached pixels of ``path``: read as the dataset reads, resized as training does."""
    img = T.Resize(size)(read_image(path))
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


class _Resized(torch.utils.data.Dataset):
    """(cached pixels, '') of each file; with ``skip_bad`` an unreadable file gives
    (zeros, the error message) instead of raising."""

    def __init__(self, files, size, skip_bad=False):
        self.files, self.size, self.skip_bad = files, size, skip_bad

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        try:
            return resize_to_cache(self.files[i], self.size), ''
        except ImageReadError as exc:
            if not self.skip_bad:
                raise
            return torch.zeros((3,) + tuple(self.size), dtype=torch.uint8), str(exc)


def open_image_cache(files, size, name, folder='', workers=0, verbose=True, on_bad='stop',
                     root=''):
    """Open (building or updating as needed) the cache of ``files`` at ``size`` (H, W).

    ``name`` labels the files (the training sources); ``workers`` decode in parallel.
    ``folder`` (``data_cache.dir``) or ``root`` (``data.root``) place it
    (``location.py``); a cache an earlier version left inside the dataset folder is
    carried over once (its rows copied, nothing decoded again) with a message.
    ``on_bad`` ('stop' or 'skip', ``data.on_bad_image``): an unreadable file stops the
    build with ``ImageReadError`` (the previous version stays current), or is recorded
    as bad (``ImageCache.bad``) and its row left empty. A cache holding bad rows opened
    with 'stop' raises at once, naming them.
    The returned cache reads its own version until it is closed (see the module doc).
    """
    if on_bad not in ('stop', 'skip'):
        raise ValueError("on_bad must be 'stop' or 'skip', got {!r}".format(on_bad))
    files = list(dict.fromkeys(os.path.abspath(f) for f in files))
    if not files:
        raise ValueError('no training files to cache')
    size = (int(size[0]), int(size[1]))
    folder = cache_folder(root, folder)
    stem = '{}_{}x{}'.format(name, *size)
    manifest = os.path.join(folder, stem + '.json')
    with _locked(os.path.join(folder, stem + '.lock')), ExitStack() as held:
        stats = [_stat(f, missing_ok=on_bad == 'skip') for f in files]
        old, moved = _read_manifest(manifest, size), False
        if old is None and not os.path.exists(manifest):
            old = _legacy_cache(files, size, manifest, held, verbose)
            moved = old is not None   # its rows are copied here: never used in place
        old_rows, old_array, old_bad = old if old else ({}, None, {})
        reuse = [old_rows[f][0] if f in old_rows and list(old_rows[f][1]) == st else None
                 for f, st in zip(files, stats)]
        todo = [i for i, r in enumerate(reuse) if r is None]
        if old and not moved and not todo and len(old_rows) == len(files) and \
                all(r == i for i, r in enumerate(reuse)):
            array, bad = old_array, old_bad
            if verbose:
                print('=> Image cache {}: {} images at {}x{}, up to date'.format(
                    manifest, len(files), *size))
        else:
            if verbose:
                print('=> Image cache {}: {}'.format(manifest, _describe(old_rows, files, todo,
                                                                           size)))
            array, new_bad = _build(folder, stem, files, size, reuse, todo, old_array, workers,
                                    skip_bad=on_bad == 'skip')
            bad = {f: old_bad[f] for f, r in zip(files, reuse) if r is not None and f in old_bad}
            bad.update(new_bad)
            record = {'version': CACHE_VERSION, 'size': list(size), 'resize': RESIZE,
                      'array': os.path.basename(array),
                      'files': [[f, st] for f, st in zip(files, stats)],
                      'bad': [[f, bad[f]] for f in files if f in bad]}
            try:
                atomic_write(manifest, lambda f: f.write(json.dumps(record).encode()))
            except BaseException:
                _remove_if_unused(array)          # never became current
                raise
        kept = _sweep(folder, stem, array)
        if kept and verbose:
            print('=> Image cache {}: {} superseded version(s) kept while other runs read '
                  'them (removed by the next open once they end)'.format(manifest, len(kept)))
        if bad and on_bad == 'stop':
            raise ImageReadError(
                'the image cache {} records {} unreadable training image(s) ({}); fix or '
                'remove them, or set data.on_bad_image skip'.format(
                    manifest, len(bad), '; '.join(bad[f] for f in list(bad)[:3])),
                path=next(iter(bad)))
        return ImageCache(array, files, size, bad=bad, manifest=manifest)


def _legacy_cache(files, size, manifest, held, verbose):
    """The cache an earlier version kept in the training files' common folder, as
    ``_read_manifest`` returns it, or None; its array is held (``held``: an ExitStack) so
    a run of the earlier version cannot remove it while its rows are copied."""
    old_manifest = os.path.join(legacy_folder(files), os.path.basename(manifest))
    if os.path.abspath(old_manifest) == os.path.abspath(manifest) or \
            not os.path.isfile(old_manifest):
        return None
    old = _read_manifest(old_manifest, size)
    if old is None:
        return None
    try:
        held.enter_context(_hold(old[1]))
    except OSError:   # a read-only folder: no run of ours writes there either
        pass
    if verbose:
        print('=> Image cache: moving {} to {} (a dataset loader that lists its folder '
              'would read the old place as a sample): its rows are copied once; delete {} '
              'when no run of an earlier version uses it'.format(
                  old_manifest, manifest, os.path.dirname(old_manifest)))
    return old


def _describe(old_rows, files, todo, size):
    if not old_rows:
        return 'building {} images at {}x{}'.format(len(files), *size)
    added = sum(f not in old_rows for f in files)
    removed = len(set(old_rows) - set(files))
    changed = len(todo) - added
    parts = ['{} changed'.format(changed)] if changed else []
    parts += ['{} added'.format(added)] if added else []
    parts += ['{} removed'.format(removed)] if removed else []
    return 'files differ from the cache ({}); re-reading {} of {} images'.format(
        ', '.join(parts), len(todo), len(files))


def _build(folder, stem, files, size, reuse, todo, old_array, workers, skip_bad=False):
    """Write a new version (rows reused from ``old_array`` where ``reuse`` says, the rest
    decoded) under a temporary name, then rename it; returns (its path, {path: message}
    of the files that could not be decoded, with ``skip_bad``)."""
    final = os.path.join(folder, '{}-{}.npy'.format(stem, uuid.uuid4().hex[:12]))
    tmp = os.path.join(folder, '.tmp-' + os.path.basename(final))
    bad = {}
    shape = (len(files), 3) + tuple(size)
    _check_space(folder, int(np.prod(shape)) + 4096, final)
    try:
        out = np.lib.format.open_memmap(tmp, mode='w+', dtype=np.uint8, shape=shape)
        if old_array is not None:
            old = np.load(old_array, mmap_mode='r')
            for i, r in enumerate(reuse):
                if r is not None:
                    out[i] = old[r]
            del old
        loader = torch.utils.data.DataLoader(
            _Resized([files[i] for i in todo], size, skip_bad), batch_size=32,
            num_workers=workers, generator=torch.Generator())   # the global RNG untouched
        at = 0
        for batch, errors in progress(loader, 'caching {} images'.format(len(todo))):
            rows = todo[at:at + len(batch)]
            out[rows] = batch.numpy()
            bad.update({files[r]: e for r, e in zip(rows, errors) if e})
            at += len(batch)
        out.flush()
        del out
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return final, bad


def _check_space(folder, nbytes, final):
    """A full disk is one ``WriteError`` naming the cache before anything is written (a
    memory-mapped write to a full disk would crash the process with SIGBUS instead)."""
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):
        return
    free = st.f_bavail * st.f_frsize
    if free < nbytes:
        raise WriteError(final, OSError(errno.ENOSPC, 'No space left on device (the cache '
                                        'needs {:.2f} GB, {:.2f} GB are free)'.format(
                                            nbytes / 1e9, free / 1e9)))
