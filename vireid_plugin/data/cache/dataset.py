"""The training dataset read from the image cache and the train loader that uses it."""
import os

import numpy as np
import torch
from PIL import Image

from ...errors import ConfigError
from ..bad_images import check_bad_fraction
from ..batch_augment import BatchAugment
from ..clip_transform import transform_clip
from ..frames import sample_frame_indices
from ..wrapped import WrappedDataset
from . import open_image_cache

__all__ = ['CachedTrainItems', 'cached_train_loader']


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
                        wrap=None, on_bad='stop', max_bad_fraction=0.01, root=''):
    """(train loader reading ``dataset`` through the image cache, batch transform or None).

    ``loader``: the data manager's train loader (its sampler, batch size and options
    are kept); ``wrap``: how the loader's dataset wraps items (``SeededItems``) or None
    (the PIL path on cached pixels uses it; batch items read ``(index, seed)`` keys).
    With ``gpu_augment`` the returned ``BatchAugment`` does the augmentation and
    normalisation on the device (the engine applies it); else the PIL pipeline runs in
    the workers on the cached pixels and no batch transform is returned.
    ``on_bad`` / ``max_bad_fraction``: ``data.on_bad_image`` / ``data.max_bad_fraction``
    (unreadable files become bad rows with 'skip'; too many of them stop here).
    ``folder`` / ``root``: ``data_cache.dir`` / ``data.root`` (where the cache lives).
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
        # the pipeline torchreid printed above ("Building train transforms") is replaced
        print('=> Training augmentation per batch on the device (data_cache.gpu_augment, '
              'from the cached {}x{} pixels): {}'.format(size[0], size[1],
                                                         ', '.join(augment.describe())))
    cache = open_image_cache(_training_files(dataset.data), size, name, folder=folder,
                             workers=workers, on_bad=on_bad, root=root)
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
