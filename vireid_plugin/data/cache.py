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
The folder is ``data_cache.dir`` when set, else ``.vireid_cache`` in the training
files' common folder (the dataset folder), else, when that is not writable, a folder
per dataset under the user cache dir (``$XDG_CACHE_HOME`` or ``~/.cache``).

``CachedTrainItems`` is the training dataset on top of it (see its doc) and
``cached_train_loader`` swaps it into a data manager's train loader.
"""
import errno
import fcntl
import hashlib
import json
import os
import re
import uuid
import weakref
from contextlib import contextmanager

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image

from ..checkpoint_io import WriteError, atomic_write
from ..errors import ConfigError
from ..config.sections import register_config_section
from ..progress import progress
from .bad_images import check_bad_fraction
from .batch_augment import BatchAugment
from .clip_transform import transform_clip
from .frames import sample_frame_indices
from .wrapped import WrappedDataset
from .io import ImageReadError, read_image

__all__ = ['DATA_CACHE_SECTION', 'ImageCache', 'open_image_cache', 'cache_folder',
           'CachedTrainItems', 'cached_train_loader']

DATA_CACHE_SECTION = register_config_section('data_cache', {
    'enabled': False,       # train from pre-resized uint8 images (built once, then memory-mapped)
    'dir': '',              # '' = .vireid_cache in the dataset folder (user cache dir if read-only)
    'gpu_augment': True,    # augment per batch on the device; False: PIL pipeline on cached pixels
}, doc='uint8 training-image cache and batch augmentation', family=False)

CACHE_VERSION = 1
CACHE_SUBDIR = '.vireid_cache'
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


def _writable(folder):
    """Whether files can be created in ``folder`` (made if missing)."""
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, '.write-test-{}'.format(uuid.uuid4().hex))
        with open(probe, 'wb'):
            pass
        os.remove(probe)
        return True
    except OSError:
        return False


def user_cache_dir():
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'vireid_plugin')


def cache_folder(files, folder='', writable=_writable):
    """Where the cache of ``files`` lives (see the module doc); ``folder`` is
    ``data_cache.dir``."""
    if folder:
        folder = os.path.abspath(os.path.expanduser(folder))
        if not writable(folder):
            raise ConfigError('data_cache.dir {} is not writable; choose another folder or '
                              'leave it empty (next to the dataset)'.format(folder))
        return folder
    common = os.path.commonpath([os.path.dirname(os.path.abspath(f)) for f in files])
    beside = os.path.join(common, CACHE_SUBDIR)
    if writable(beside):
        return beside
    fallback = os.path.join(user_cache_dir(),
                            hashlib.sha1(common.encode()).hexdigest()[:16])
    if not writable(fallback):
        raise ConfigError('no writable folder for the image cache: {} and {} are not '
                          'writable; set data_cache.dir'.format(beside, fallback))
    print('=> Image cache: {} is read-only, using {}'.format(common, fallback))
    return fallback


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


def _current_array(manifest):
    try:
        with open(manifest) as f:
            return os.path.join(os.path.dirname(manifest), json.load(f)['array'])
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
        array = os.path.join(os.path.dirname(path), man['array'])
        shape = np.load(array, mmap_mode='r').shape
        if shape != (len(man['files']), 3) + tuple(size):
            return None
        rows = {f: (i, st) for i, (f, st) in enumerate(man['files'])}
        return rows, array, {f: msg for f, msg in man.get('bad', [])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def open_image_cache(files, size, name, folder='', workers=0, verbose=True, on_bad='stop'):
    """Open (building or updating as needed) the cache of ``files`` at ``size`` (H, W).

    ``name`` labels the files (the training sources); ``workers`` decode in parallel.
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
    folder = cache_folder(files, folder)
    stem = '{}_{}x{}'.format(name, *size)
    manifest = os.path.join(folder, stem + '.json')
    with _locked(os.path.join(folder, stem + '.lock')):
        stats = [_stat(f, missing_ok=on_bad == 'skip') for f in files]
        old = _read_manifest(manifest, size)
        old_rows, old_array, old_bad = old if old else ({}, None, {})
        reuse = [old_rows[f][0] if f in old_rows and list(old_rows[f][1]) == st else None
                 for f, st in zip(files, stats)]
        todo = [i for i, r in enumerate(reuse) if r is None]
        if old and not todo and len(old_rows) == len(files) and \
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


class CachedTrainItems(WrappedDataset):
    """A torchreid training dataset read from an ``ImageCache`` (no decoding, no resize).

    Item dicts have the dataset's keys (img, pid, camid, impath, dsetid, modality).
    With ``augment='batch'`` ``img`` is the cached uint8 ``(3, H, W)`` image or
    ``(T, 3, H, W)`` clip and the item adds ``aug_seed``: ``BatchAugment`` augments the
    batch on the device with it. Keys may be ``(index, seed)`` pairs (the sampler's
    ``item_seeds``): the seed is then ``aug_seed`` and seeds the clip's frame choice, so
    nothing depends on worker processes and no global generator is touched (seeding
    them, as ``SeededItems`` does, costs more than reading the item); plain indices
    draw ``aug_seed`` and frames from the global generators. With ``augment='pil'``
    the dataset's own transform (the PIL pipeline; its resize then leaves the cached
    size unchanged) runs on the cached pixels, as on the plain path (wrap it in
    ``SeededItems`` for seeded items). Video clips take their frames with the
    dataset's rule (``frames.py``). Other attributes are the wrapped dataset's.
    """

    def __init__(self, dataset, cache, augment='batch'):
        if augment not in ('batch', 'pil'):
            raise ValueError("augment must be 'batch' or 'pil', got {!r}".format(augment))
        super().__init__(dataset)
        self.cache = cache
        self.augment = augment

    def _rows(self, paths):
        rows = []
        for p in paths:
            p = os.path.abspath(p)
            self.cache.check(p)   # a file the cache could not decode: ImageReadError
            rows.append(self.cache.row[p])
        return rows

    def __getitem__(self, key):
        index, seed = key if isinstance(key, (tuple, list)) else (key, None)
        ds = self.dataset
        path, pid, camid, dsetid, modality = ds.data[index]
        video = isinstance(path, (tuple, list))
        if video:
            if getattr(ds, 'sample_method', None) == 'all':
                idx = np.arange(len(path))
            else:
                # RandomState(seed) draws what the plain path draws under SeededItems
                rng = None if seed is None else np.random.RandomState(seed % 2 ** 32)
                idx = sample_frame_indices(len(path), ds.seq_len, train=True, rng=rng,
                                           rule=getattr(ds, 'frame_rule', 'chunk'))
            frames = [path[int(i)] for i in idx]
            img = self.cache.read(self._rows(frames))
            impath = frames[0]
        else:
            img = self.cache.read(self._rows([path])[0])
            impath = path
        item = {'pid': pid, 'camid': camid, 'impath': impath, 'dsetid': dsetid,
                'modality': modality}
        if self.augment == 'batch':
            item['img'] = img
            item['aug_seed'] = int(torch.randint(2 ** 62, ()).item()) if seed is None \
                else int(seed)
        elif video:
            pil = [Image.fromarray(f.permute(1, 2, 0).numpy()) for f in img]
            item['img'] = torch.stack(transform_clip(ds.transform, pil), 0)
        else:
            pil = Image.fromarray(img.permute(1, 2, 0).numpy())
            item['img'] = ds._transform_image(ds.transform, ds.k_tfm, pil)
        return item


def _training_files(items):
    files = []
    for it in items:
        files.extend(it[0] if isinstance(it[0], (tuple, list)) else [it[0]])
    return files


def cached_train_loader(loader, dataset, name, size, transforms, norm_mean, norm_std,
                        seed=None, folder='', gpu_augment=True, workers=0, pin_memory=False,
                        wrap=None, on_bad='stop', max_bad_fraction=0.01):
    """(train loader reading ``dataset`` through the image cache, batch transform or None).

    ``loader``: the data manager's train loader (its sampler, batch size and options
    are kept); ``wrap``: how the loader's dataset wraps items (``SeededItems``) or None
    (the PIL path on cached pixels uses it; batch items read ``(index, seed)`` keys).
    With ``gpu_augment`` the returned ``BatchAugment`` does the augmentation and
    normalisation on the device (the engine applies it); else the PIL pipeline runs in
    the workers on the cached pixels and no batch transform is returned.
    ``on_bad`` / ``max_bad_fraction``: ``data.on_bad_image`` / ``data.max_bad_fraction``
    (unreadable files become bad rows with 'skip'; too many of them stop here).
    """
    augment = None
    if gpu_augment:
        if getattr(dataset, 'k_tfm', 1) > 1:
            raise ConfigError('data.k_tfm {} > 1 has no batch form; set data_cache.'
                              'gpu_augment False'.format(dataset.k_tfm))
        try:
            augment = BatchAugment(transforms, size[0], size[1], norm_mean, norm_std,
                                   seed=0 if seed is None else seed)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    cache = open_image_cache(_training_files(dataset.data), size, name, folder=folder,
                             workers=workers, on_bad=on_bad)
    if cache.bad:
        print('=> Image cache: {} unreadable training image(s), replaced in training by other '
              'items of the same identity and modality (data.on_bad_image skip): {}'.format(
                  len(cache.bad), '; '.join(list(cache.bad.values())[:5])))
        check_bad_fraction(len(cache.bad), len(cache), max_bad_fraction,
                           next(iter(cache.bad.values())))
    items = CachedTrainItems(dataset, cache, 'batch' if gpu_augment else 'pil')
    if wrap is not None and not gpu_augment:   # batch items take (index, seed) themselves
        items = wrap(items)
    new = torch.utils.data.DataLoader(
        items, sampler=loader.sampler, batch_size=loader.batch_size, shuffle=False,
        num_workers=loader.num_workers, pin_memory=pin_memory, drop_last=loader.drop_last,
        persistent_workers=loader.num_workers > 0, generator=loader.generator)
    return new, augment
