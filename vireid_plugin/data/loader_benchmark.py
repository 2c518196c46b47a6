"""Training-loader throughput: the PIL path against the uint8 image cache.

``loader_throughput(loader, ...)`` times what a training step waits for: the next
batch from a DataLoader, moved to the device and, on the cache path, augmented
there by the batch transform. ``compare_train_loaders(root, ...)`` builds the same
training set twice (plain PIL pipeline, uint8 cache + ``BatchAugment``) with the same
sampler, batch size and worker count and returns one row per path; the
``scripts/bench_loader.py`` command prints them. Compare ``images_per_s`` with the
model's training images/s (``scripts/benchmark.py train``) to see whether the loader
can keep the accelerator busy.
"""
import time

import torch

from .datamanager import CrossModalImageDataManager, CrossModalVideoDataManager

__all__ = ['loader_throughput', 'compare_train_loaders', 'BENCH_TRANSFORMS']

#: the SYSU-MM01 ViT recipe (AGW / TransReID style) without the slow PIL blur
BENCH_TRANSFORMS = ('random_flip', 'random_pad_crop', 'random_erase', 'random_grayscale')


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _batches(loader):
    while True:            # epoch after epoch (the sampler's epoch is short on small data)
        yield from loader


def loader_throughput(loader, batches=20, warmup=3, batch_transform=None, device='cpu'):
    """Images per second (frames for video) ``loader`` delivers on ``device``.

    ``warmup`` batches first (worker start-up, page cache), then ``batches`` timed ones,
    each moved to ``device`` and passed through ``batch_transform(imgs, aug_seed)`` when
    given. Returns {'images_per_s', 'images', 'batches', 'seconds'}.
    """
    device = torch.device(device)
    stream = _batches(loader)

    def step():
        data = next(stream)
        imgs = data['img'].to(device, non_blocking=True)
        if batch_transform is not None:
            imgs = batch_transform(imgs, data.get('aug_seed'))
        return imgs.shape[0] * (imgs.shape[1] if imgs.dim() == 5 else 1)

    for _ in range(warmup):
        step()
    _sync(device)
    start = time.perf_counter()
    images = sum(step() for _ in range(batches))
    _sync(device)
    seconds = time.perf_counter() - start
    return {'images_per_s': images / seconds, 'images': images, 'batches': batches,
            'seconds': seconds}


def compare_train_loaders(root, sources=('sysu_mm01',), height=288, width=144,
                          transforms=BENCH_TRANSFORMS, batch_size=64, num_instances=4,
                          workers=2, batches=20, warmup=3, device='cpu', cache_dir='',
                          video=False, seq_len=6, seed=0):
    """One row per data path with the throughput of ``loader_throughput`` and the
    settings: 'pil' (the plain loader: decode, resize and augment in the workers),
    'uint8 cache, loader only' (what the cache loader hands to the device) and
    'uint8 cache + batch augment' (that plus ``BatchAugment`` on ``device``) and
    'uint8 cache + PIL augment in the workers' (``gpu_augment False``). The same
    items, sampler, batch size and workers for all; the cache is built (or found up to
    date) before timing."""
    device = torch.device(device)
    common = dict(root=root, sources=list(sources), targets=list(sources)[:1], height=height,
                  width=width, transforms=list(transforms), batch_size_train=batch_size,
                  num_instances=num_instances, workers=workers, seed=seed,
                  use_gpu=device.type == 'cuda')
    manager = CrossModalImageDataManager
    if video:
        manager = CrossModalVideoDataManager
        common['seq_len'] = seq_len
    rows = []

    def row(path, result):
        rows.append(dict(path=path, height=height, width=width, batch_size=batch_size,
                         workers=workers, transforms=list(transforms), device=str(device),
                         **result))

    dm = manager(data_cache=None, **common)
    row('pil', loader_throughput(dm.train_loader, batches, warmup, None, device))
    del dm
    dm = manager(data_cache={'enabled': True, 'gpu_augment': True, 'dir': cache_dir},
                 **common)
    row('uint8 cache, loader only',
        loader_throughput(dm.train_loader, batches, warmup, None, device))
    row('uint8 cache + batch augment',
        loader_throughput(dm.train_loader, batches, warmup, dm.batch_transform, device))
    del dm
    dm = manager(data_cache={'enabled': True, 'gpu_augment': False, 'dir': cache_dir},
                 **common)
    row('uint8 cache + PIL augment in the workers',
        loader_throughput(dm.train_loader, batches, warmup, None, device))
    return rows
