"""Pre-resized uint8 training images, built once beside the dataset (``data_cache.*``).

``open_image_cache(files, (H, W), name)`` returns an ``ImageCache``: every file
decoded once with the dataset's reader (``io.read_image``), resized to the training
size with the training pipeline's own resize (torchvision ``Resize((H, W))`` on the
PIL image: bilinear, antialiased) and stored as a uint8 ``(N, 3, H, W)`` array in a
``.npy`` file read through a memory map, plus a JSON manifest listing each source
file with its (size, mtime_ns). Next time the manifest is compared with the files:
any file changed, missing or added re-reads those files only (the other rows are
copied from the old array) and says so; an unchanged set opens at once.

Files: ``<folder>/<name>_<H>x<W>.json`` and the array it names
(``<name>_<H>x<W>-<build>.npy``). The array is written under a temporary name and
renamed, then the manifest is written atomically (``checkpoint_io.atomic_write``)
and the previous array removed, so a crash leaves the old cache or the new one,
never a mix. A lock file serialises builders (several ranks or runs at once).
The folder is ``data_cache.dir`` when set, else ``.vireid_cache`` in the training
files' common folder (the dataset folder), else, when that is not writable, a folder
per dataset under the user cache dir (``$XDG_CACHE_HOME`` or ``~/.cache``).

``CachedTrainItems`` is the training dataset on top of it (see its doc) and
``cached_train_loader`` swaps it into a data manager's train loader.
"""
import fcntl
import hashlib
import json
import os
import uuid
from contextlib import contextmanager

import numpy as np
import torch
import torchvision.transforms as T
from PIL import Image

from ..checkpoint_io import atomic_write
from ..config.loading import ConfigError
from ..config.sections import register_config_section
from ..progress import progress
from .batch_augment import BatchAugment
from .clip_transform import transform_clip
from .frames import sample_frame_indices
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


def _stat(path):
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise ImageReadError('image file not found: {} (listed by the dataset, needed '
                             'by the image cache)'.format(path)) from None
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
def _locked(path):
    with open(path, 'a+') as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


class ImageCache:
    """Rows of a uint8 ``(N, 3, H, W)`` array, one per source file (memory-mapped on first
    read in each process, so DataLoader workers share the page cache)."""

    def __init__(self, array_path, files, size):
        self.array_path = array_path
        self.files = list(files)
        self.size = tuple(size)
        self.row = {f: i for i, f in enumerate(self.files)}
        self._array = None

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

    def __getstate__(self):   # workers open their own map
        state = dict(self.__dict__)
        state['_array'] = None
        return state


def resize_to_cache(path, size):
    """The cached pixels of ``path``: read as the dataset reads, resized as training does."""
    img = T.Resize(size)(read_image(path))
    return torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1)


class _Resized(torch.utils.data.Dataset):
    def __init__(self, files, size):
        self.files, self.size = files, size

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        return resize_to_cache(self.files[i], self.size)


def _read_manifest(path, size):
    """The manifest's {path: (row, [size, mtime_ns])} and array path, or None when absent,
    unreadable or for another version / size / resize."""
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
        return {f: (i, st) for i, (f, st) in enumerate(man['files'])}, array
    except (OSError, ValueError, KeyError, TypeError):
        return None


def open_image_cache(files, size, name, folder='', workers=0, verbose=True):
    """Open (building or updating as needed) the cache of ``files`` at ``size`` (H, W).

    ``name`` labels the files (the training sources); ``workers`` decode in parallel.
    """
    files = list(dict.fromkeys(os.path.abspath(f) for f in files))
    if not files:
        raise ValueError('no training files to cache')
    size = (int(size[0]), int(size[1]))
    folder = cache_folder(files, folder)
    stem = '{}_{}x{}'.format(name, *size)
    manifest = os.path.join(folder, stem + '.json')
    with _locked(os.path.join(folder, stem + '.lock')):
        stats = [_stat(f) for f in files]
        old = _read_manifest(manifest, size)
        old_rows, old_array = old if old else ({}, None)
        reuse = [old_rows[f][0] if f in old_rows and list(old_rows[f][1]) == st else None
                 for f, st in zip(files, stats)]
        todo = [i for i, r in enumerate(reuse) if r is None]
        if old and not todo and len(old_rows) == len(files) and \
                all(r == i for i, r in enumerate(reuse)):
            if verbose:
                print('=> Image cache {}: {} images at {}x{}, up to date'.format(
                    manifest, len(files), *size))
            return ImageCache(old_array, files, size)
        if verbose:
            print('=> Image cache {}: {}'.format(manifest, _describe(old_rows, files, todo,
                                                                       size)))
        array = _build(folder, stem, files, size, reuse, todo, old_array, workers)
        record = {'version': CACHE_VERSION, 'size': list(size), 'resize': RESIZE,
                  'array': os.path.basename(array),
                  'files': [[f, st] for f, st in zip(files, stats)]}
        atomic_write(manifest, lambda f: f.write(json.dumps(record).encode()))
        if old_array and os.path.abspath(old_array) != os.path.abspath(array):
            try:
                os.remove(old_array)
            except OSError:
                pass
    return ImageCache(array, files, size)


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


def _build(folder, stem, files, size, reuse, todo, old_array, workers):
    """Write the new array (rows reused from ``old_array`` where ``reuse`` says, the rest
    decoded) under a temporary name, then rename it; returns its path."""
    final = os.path.join(folder, '{}-{}.npy'.format(stem, uuid.uuid4().hex[:12]))
    tmp = os.path.join(folder, '.tmp-' + os.path.basename(final))
    try:
        out = np.lib.format.open_memmap(tmp, mode='w+', dtype=np.uint8,
                                        shape=(len(files), 3) + tuple(size))
        if old_array is not None:
            old = np.load(old_array, mmap_mode='r')
            for i, r in enumerate(reuse):
                if r is not None:
                    out[i] = old[r]
            del old
        loader = torch.utils.data.DataLoader(
            _Resized([files[i] for i in todo], size), batch_size=32, num_workers=workers)
        at = 0
        for batch in progress(loader, 'caching {} images'.format(len(todo))):
            rows = todo[at:at + len(batch)]
            out[rows] = batch.numpy()
            at += len(batch)
        out.flush()
        del out
        os.replace(tmp, final)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return final


class CachedTrainItems(torch.utils.data.Dataset):
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
        self.dataset = dataset
        self.cache = cache
        self.augment = augment

    def __len__(self):
        return len(self.dataset)

    def __getattr__(self, name):
        if name == 'dataset':   # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def _rows(self, paths):
        return [self.cache.row[os.path.abspath(p)] for p in paths]

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
                        wrap=None):
    """(train loader reading ``dataset`` through the image cache, batch transform or None).

    ``loader``: the data manager's train loader (its sampler, batch size and options
    are kept); ``wrap``: how the loader's dataset wraps items (``SeededItems``) or None
    (the PIL path on cached pixels uses it; batch items read ``(index, seed)`` keys).
    With ``gpu_augment`` the returned ``BatchAugment`` does the augmentation and
    normalisation on the device (the engine applies it); else the PIL pipeline runs in
    the workers on the cached pixels and no batch transform is returned.
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
                             workers=workers)
    items = CachedTrainItems(dataset, cache, 'batch' if gpu_augment else 'pil')
    if wrap is not None and not gpu_augment:   # batch items take (index, seed) themselves
        items = wrap(items)
    new = torch.utils.data.DataLoader(
        items, sampler=loader.sampler, batch_size=loader.batch_size, shuffle=False,
        num_workers=loader.num_workers, pin_memory=pin_memory, drop_last=loader.drop_last,
        persistent_workers=loader.num_workers > 0, generator=loader.generator)
    return new, augment
