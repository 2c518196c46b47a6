"""Inference speed: the plugin's extractor against torchreid's ``FeatureExtractor`` on the
same model and image files, and gallery search (exact and faiss) at a given size.

The model is the tiny ViT of ``configs/demo.yaml`` (random weights: speed does not
depend on them) saved as a run folder; the images are a synthetic SYSU-MM01 (JPEG files
at the generator's size, resized to the run's 128x64). Both extractors read every file
from disk, in batches of ``batch_size``; torchreid's transforms, stacks and runs one
batch per call (its ``__call__`` on a list of paths).
"""
import contextlib
import glob
import io
import os
import tempfile
import time

import numpy as np
import torch

from .. import compat
from ..checkpoint_io import atomic_write, save_checkpoint
from ..config import load_config
from ..data.synthetic import make_sysu_mm01
from ..runner import CONFIG_FILE, build_reid_model

__all__ = ['bench_extraction', 'bench_search', 'bench_inference']


def _demo_run(folder, config_dir, opts=()):
    cfg = load_config(os.path.join(config_dir, 'demo.yaml'), list(opts))
    model = build_reid_model(cfg, 8, 6, pretrained=False, pretrained_path='')
    os.makedirs(os.path.join(folder, 'model'), exist_ok=True)
    atomic_write(os.path.join(folder, CONFIG_FILE), lambda f: f.write(cfg.dump()), mode='w')
    path = os.path.join(folder, 'model', 'model.pth.tar-1')
    save_checkpoint({'state_dict': model.state_dict(), 'epoch': 1}, path)
    return cfg, path


def _timed(fn, repeats):
    best = float('inf')
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bench_extraction(config_dir, num_ids=16, batch_size=64, workers=0, repeats=5,
                     image_size=(256, 128), log=print):
    """Images/s of ``Extractor.extract`` and torchreid's ``FeatureExtractor`` running the
    same model object (best of ``repeats`` alternating passes over the same files, after
    one warm-up batch each). The files are
    ``image_size`` (height, width) JPEGs, larger than the model's input as camera crops
    are."""
    from ..inference import Extractor
    from ..inference.inputs import ItemReader
    with tempfile.TemporaryDirectory(prefix='vireid_bench_inference_') as tmp:
        make_sysu_mm01(os.path.join(tmp, 'data'), num_train=2, num_val=2, num_test=num_ids,
                       images_per_cam=4, size=tuple(image_size))
        files = sorted(glob.glob(os.path.join(tmp, 'data', '**', '*.jpg'), recursive=True))
        cfg, ckpt = _demo_run(os.path.join(tmp, 'run'), config_dir)
        ours = Extractor.from_run(os.path.join(tmp, 'run'), device='cpu', batch_size=batch_size,
                                  workers=workers, log=lambda *a: None)
        size = (cfg.data.height, cfg.data.width)
        with contextlib.redirect_stdout(io.StringIO()):
            theirs = compat.utils.FeatureExtractor(
                cfg.model.name, ckpt, image_size=size, pixel_mean=list(cfg.data.norm_mean),
                pixel_std=list(cfg.data.norm_std), device='cpu', verbose=False)
        # the same model object in both: torchreid's builds the name with its own defaults
        # (no camera embedding, ...), not the run's options
        theirs.model = ours.model
        batches = [files[i:i + batch_size] for i in range(0, len(files), batch_size)]

        def run_theirs():
            with torch.no_grad():
                for b in batches:
                    theirs(b)

        def run_ours():
            ours.extract(files, modality=0, camid=None, batch_size=batch_size)

        theirs(batches[0])
        ours.extract(batches[0], modality=0)
        log('extraction: torchreid FeatureExtractor and vireid_plugin Extractor, {} files, '
            '{} loader processes, alternating'.format(len(files), workers))
        t_theirs = t_ours = float('inf')
        for _ in range(repeats):   # alternating: a load change hits both alike
            t_theirs = min(t_theirs, _timed(run_theirs, 1))
            t_ours = min(t_ours, _timed(run_ours, 1))
        # the two parts alone, one after the other in this thread: what overlapping them
        # can at best reach is their sum over the cores (docs/inference.md)
        reader = ItemReader(files, ours.pre)
        inputs = [ours.pre.normalize(torch.stack([reader[i][1] for i in range(s, min(
            s + batch_size, len(files)))])) for s in range(0, len(files), batch_size)]
        t_decode = _timed(lambda: [reader[i] for i in range(len(files))], repeats)
        t_model = _timed(lambda: [ours.forward(x, torch.zeros(len(x), dtype=torch.long))
                                  for x in inputs], repeats)
    return {'model': cfg.model.name, 'input': [3, *size], 'files': list(image_size),
            'images': len(files),
            'batch': batch_size, 'workers': workers,
            'torchreid_images_per_s': len(files) / t_theirs,
            'plugin_images_per_s': len(files) / t_ours, 'speedup': t_theirs / t_ours,
            'decode_resize_s': t_decode, 'model_s': t_model, 'plugin_s': t_ours,
            'torchreid_s': t_theirs}


def bench_search(gallery=100000, dim=768, queries=1000, topk=10, metric='euclidean', seed=0,
                 log=print):
    """Seconds to search ``queries`` against a random (gallery, dim) index, exact and with
    faiss (when installed), and whether faiss's top-k equals the exact one."""
    from ..inference.index import exact_topk, faiss_topk
    rng = np.random.default_rng(seed)
    g = torch.from_numpy(rng.standard_normal((gallery, dim), dtype=np.float32))
    q = torch.from_numpy(rng.standard_normal((queries, dim), dtype=np.float32))
    rows = []
    log('search: exact, {} x {} gallery, {} queries'.format(gallery, dim, queries))
    start = time.perf_counter()
    d_exact, i_exact = exact_topk(q, g, topk, metric)
    rows.append({'engine': 'exact', 'gallery': gallery, 'dim': dim, 'queries': queries,
                 'topk': topk, 'seconds': time.perf_counter() - start, 'same_topk': True})
    try:
        import faiss  # noqa: F401
    except ImportError:
        rows.append({'engine': 'faiss', 'gallery': gallery, 'dim': dim, 'queries': queries,
                     'topk': topk, 'seconds': None, 'same_topk': 'faiss not installed'})
        return rows
    log('search: faiss (flat)')
    start = time.perf_counter()
    d_f, i_f = faiss_topk(q, g, topk, metric)
    rows.append({'engine': 'faiss', 'gallery': gallery, 'dim': dim, 'queries': queries,
                 'topk': topk, 'seconds': time.perf_counter() - start,
                 'same_topk': bool(torch.equal(i_f, i_exact)),
                 'max_abs_diff': float((d_f - d_exact).abs().max())})
    return rows


def bench_inference(config_dir, quick=False, log=print):
    """Both parts; ``quick``: a handful of images and a small gallery (a CPU test)."""
    if quick:
        extraction = [bench_extraction(config_dir, num_ids=2, batch_size=8, repeats=1,
                                       log=log)]
        search = bench_search(gallery=2000, dim=64, queries=20, log=log)
    else:   # in-process decoding, then a loader of 2 processes (overlaps decode and model)
        extraction = [bench_extraction(config_dir, workers=w, log=log) for w in (0, 2)]
        search = bench_search(log=log)
    return {'extraction': extraction, 'search': search}
