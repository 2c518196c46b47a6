"""Throughput of the training data loader: what a training step waits for.

- :func:`loader_throughput` is the measurement: the next batch from a DataLoader, moved
  to the device and, on the uint8-cache path, augmented there by the batch transform;
  the first batches (worker start-up, page cache) apart.
- :func:`bench_loader`: the recipe's loader, built as a run builds it
  (``vireid_plugin.runner.build_data_manager``) on the recipe's datasets under ``root``
  (a dataset missing there is generated synthetic first: small JPEGs, whose decoding
  costs less than the real images'); the ``loader`` section of ``scripts/benchmark.py``.
- :func:`compare_train_loaders`: the same training set through the plain PIL pipeline
  and through the uint8 image cache (+ ``BatchAugment``), with the same sampler, batch
  size and workers; ``scripts/bench_loader.py`` (:func:`main`) prints its rows. Compare
  ``images_per_s`` with the model's training images/s (``scripts/benchmark.py``, section
  ``train``) to see whether the loader can keep the accelerator busy.
"""
import argparse
import json
import os
import platform
import sys
import time

import torch

from ..config import load_config
from ..data import CrossModalImageDataManager, CrossModalVideoDataManager
from ..data.prepare import prepare_datasets
from ..runner import build_data_manager
from .timing import timed

__all__ = ['loader_throughput', 'bench_loader', 'compare_train_loaders', 'BENCH_TRANSFORMS',
           'main']

#: the SYSU-MM01 ViT recipe (AGW / TransReID style) without the slow PIL blur
BENCH_TRANSFORMS = ('random_flip', 'random_pad_crop', 'random_erase', 'random_grayscale')


def _batches(loader, cycle):
    """The loader's batches, epoch after epoch when ``cycle`` (the sampler's epoch is short
    on small data), else one epoch. A generator: the workers start at the first batch."""
    while True:
        yield from loader
        if not cycle:
            return


def loader_throughput(loader, batches=20, warmup=3, batch_transform=None, device='cpu',
                      cycle=True):
    """Images per second (frames for video) ``loader`` delivers on ``device``.

    ``warmup`` batches first (the first one timed apart: worker start-up), then up to
    ``batches`` timed ones (fewer when ``cycle`` is off and the epoch ends), each moved
    to ``device`` and passed through ``batch_transform(imgs, aug_seed)`` when given.
    Returns {'images_per_s', 'images', 'batches', 'seconds', 'items', 'first_batch_s',
    'batch_shape'} (items: batch rows, i.e. images or clips; images: frames).
    """
    device = torch.device(device)
    stream = _batches(loader, cycle)

    def step():
        data = next(stream, None)
        if data is None:
            return None
        imgs = data['img'].to(device, non_blocking=True)
        if batch_transform is not None:
            imgs = batch_transform(imgs, data.get('aug_seed'))
        return imgs.shape

    def run(n):
        shapes = []
        for _ in range(n):
            shape = step()
            if shape is None:
                break
            shapes.append(shape)
        return shapes

    first, first_s = timed(lambda: run(min(1, warmup)), device)
    run(warmup - 1)
    shapes, seconds = timed(lambda: run(batches), device)
    stream.close()    # the loader's workers stop here
    items = sum(s[0] for s in shapes)
    images = sum(s[0] * (s[1] if len(s) == 5 else 1) for s in shapes)
    seen = first + shapes
    return {'images_per_s': images / seconds if seconds > 0 else None, 'images': images,
            'batches': len(shapes), 'seconds': seconds, 'items': items,
            'first_batch_s': first_s, 'batch_shape': list(seen[0]) if seen else None}


def bench_loader(config_path, root, batches=20, workers=None, opts=()):
    """Items/s of the recipe's training loader over ``batches`` batches after the first
    (worker start-up timed apart), within one epoch."""
    opts = ['data.root', root, 'data.synthetic', 'True'] + list(opts)
    if workers is not None:
        opts += ['data.workers', str(workers)]
    cfg = load_config(config_path, opts)
    prepare_datasets(cfg)
    video = cfg.data.type == 'video'
    dm = build_data_manager(cfg)
    t = loader_throughput(dm.train_loader, batches, warmup=1, cycle=False)
    sec = t['seconds']
    return {'config': config_path.rsplit('/', 1)[-1], 'datasets': list(cfg.data.sources),
            'workers': cfg.data.workers, 'batch': t['batch_shape'],
            'batches_timed': t['batches'], 'unit': 'tracklets/s' if video else 'images/s',
            'items_per_s': round(t['items'] / sec, 1) if sec > 0 else None,
            'frames_per_s': round(t['images'] / sec, 1) if sec > 0 else None,
            'first_batch_s': round(t['first_batch_s'], 2)}


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

    def row(path, dm, batch_transform=None):
        t = loader_throughput(dm.train_loader, batches, warmup, batch_transform, device)
        rows.append(dict(path=path, height=height, width=width, batch_size=batch_size,
                         workers=workers, transforms=list(transforms), device=str(device),
                         **{k: t[k] for k in ('images_per_s', 'images', 'batches', 'seconds')}))

    row('pil', manager(data_cache=None, **common))
    dm = manager(data_cache={'enabled': True, 'gpu_augment': True, 'dir': cache_dir}, **common)
    row('uint8 cache, loader only', dm)
    row('uint8 cache + batch augment', dm, dm.batch_transform)
    del dm
    row('uint8 cache + PIL augment in the workers',
        manager(data_cache={'enabled': True, 'gpu_augment': False, 'dir': cache_dir}, **common))
    return rows


# ---- the command line (scripts/bench_loader.py) ------------------------------------------
def build_parser():
    p = argparse.ArgumentParser(description='Training-loader throughput (images/s): PIL '
                                            'pipeline vs uint8 image cache + batch augment.')
    p.add_argument('--root', required=True, help='data root (synthetic SYSU-MM01 made here)')
    p.add_argument('--dataset', default='sysu_mm01')
    p.add_argument('--source-size', type=int, nargs=2, default=(384, 192),
                   help='synthetic images (H W) when generated')
    p.add_argument('--num-train', type=int, default=32, help='synthetic training ids')
    p.add_argument('--height', type=int, default=288)
    p.add_argument('--width', type=int, default=144)
    p.add_argument('--transforms', nargs='+', default=list(BENCH_TRANSFORMS))
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--num-instances', type=int, default=4)
    p.add_argument('--workers', type=int, default=2)
    p.add_argument('--batches', type=int, default=20)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--cache-dir', default='')
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    return p


def main(argv=None):
    """``scripts/bench_loader.py``: one JSON line per data path."""
    from ..data.synthetic import make_sysu_mm01
    args = build_parser().parse_args(argv)
    if args.dataset == 'sysu_mm01' and not os.path.isdir(os.path.join(args.root, 'SYSU-MM01')):
        start = time.time()
        make_sysu_mm01(args.root, num_train=args.num_train, size=tuple(args.source_size))
        print('generated synthetic SYSU-MM01 ({}x{}) in {:.1f} s'.format(
            *args.source_size, time.time() - start), file=sys.stderr)
    rows = compare_train_loaders(
        args.root, sources=[args.dataset], height=args.height, width=args.width,
        transforms=args.transforms, batch_size=args.batch_size,
        num_instances=args.num_instances, workers=args.workers, batches=args.batches,
        warmup=args.warmup, device=args.device, cache_dir=args.cache_dir)
    device = torch.device(args.device)
    header = {'date': time.strftime('%Y-%m-%d %H:%M'), 'torch': torch.__version__,
              'machine': torch.cuda.get_device_name(device) if device.type == 'cuda' else
              '{} ({} cores)'.format(platform.machine(), os.cpu_count()),
              'command': ' '.join(['scripts/bench_loader.py'] + (argv or sys.argv[1:]))}
    for row in rows:
        row['images_per_s'] = round(row['images_per_s'], 1)
        row['seconds'] = round(row['seconds'], 3)
        print(json.dumps(dict(header, **row)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
