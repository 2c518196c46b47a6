"""Throughput of the training data loader, built exactly as ``scripts/main.py`` builds it.

The recipe's data manager (sampler, transforms, batch size, worker count) on the
recipe's datasets under ``root``; a dataset missing there is generated synthetic
first (small JPEGs: decoding costs less than on the real images).
"""
import time

from ..config import imagedata_kwargs, load_config, videodata_kwargs
from ..data import CrossModalImageDataManager, CrossModalVideoDataManager
from ..data.prepare import prepare_datasets

__all__ = ['bench_loader']


def bench_loader(config_path, root, batches=20, workers=None, opts=()):
    """Items/s over ``batches`` batches after the first (worker start-up timed apart)."""
    opts = ['data.root', root, 'data.synthetic', 'True'] + list(opts)
    if workers is not None:
        opts += ['data.workers', str(workers)]
    cfg = load_config(config_path, opts)
    prepare_datasets(cfg)
    video = cfg.data.type == 'video'
    dm = (CrossModalVideoDataManager(**videodata_kwargs(cfg)) if video
          else CrossModalImageDataManager(**imagedata_kwargs(cfg)))
    loader = dm.train_loader
    start = time.perf_counter()
    it = iter(loader)
    first = next(it)
    first_s = time.perf_counter() - start
    items, done = 0, 0
    start = time.perf_counter()
    for batch in it:
        items += len(batch['pid'])
        done += 1
        if done == batches:
            break
    sec = time.perf_counter() - start
    del it
    shape = list(first['img'].shape)
    frames = items * (shape[1] if video else 1)
    return {'config': config_path.rsplit('/', 1)[-1], 'datasets': list(cfg.data.sources),
            'workers': cfg.data.workers, 'batch': shape, 'batches_timed': done,
            'unit': 'tracklets/s' if video else 'images/s',
            'items_per_s': round(items / sec, 1) if sec > 0 else None,
            'frames_per_s': round(frames / sec, 1) if sec > 0 else None,
            'first_batch_s': round(first_s, 2)}
