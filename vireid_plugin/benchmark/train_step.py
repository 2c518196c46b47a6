"""Training throughput of the registered models at their recipe's input size and batch.

Which models, and at which size and batch, comes from the recipe configs under
``configs/``: every top-level ``*.yaml`` whose model is registered and is not a CPU
variant (``tiny`` in the name), the base recipe (no ``_BASE_``) first. ``--quick``
takes the ``demo*.yaml`` configs' tiny models instead.

One step is the engine's own ``CrossModalEngine.forward_backward``, on an engine built
from the recipe as a run builds it (``vireid_plugin.runner``: model, loss terms,
optimizer, LR schedule, precision, ``torch.compile``): forward, the loss terms,
backward, the non-finite check, the optimizer step. Its batch is random, already on
the device, laid out as the cross-modal sampler lays it out (P ids x (K visible + K
infrared)).
"""
import contextlib
import gc
import glob
import os
import resource

import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from ..config import load_config
from ..config.loading import BASE_KEY
from ..runner import build_criterion, build_engine, build_reid_model, build_solver
from .timing import timed

__all__ = ['recipe_specs', 'bench_train', 'build_step_engine', 'RandomBatch']

#: classifier width used for every model (HITSZ-VCM's 500 training ids; SYSU-MM01's
#: 395 would change a ViT-B step's FLOPs by well under 0.1 %)
NUM_CLASSES = 500
NUM_CAMERAS = 6


def _has_base(path):
    with open(path) as f:
        return BASE_KEY in (yaml.safe_load(f) or {})


def recipe_specs(config_dir, quick=False, models=None):
    """[(model name, config path)]: one recipe per registered model (see module doc)."""
    from ..registry import MODELS
    paths = sorted(glob.glob(os.path.join(config_dir, '*.yaml')))
    paths = [p for p in paths if os.path.basename(p).startswith('demo') == quick]
    paths.sort(key=_has_base)   # stable: base recipes first, then derived ones
    chosen = {}
    for path in paths:
        cfg = load_config(path)
        name = cfg.model.name
        if name not in MODELS or name in chosen or (('tiny' in name) != quick):
            continue
        if models and name not in models:
            continue
        chosen[name] = path
    return sorted(chosen.items())


class RandomBatch:
    """The data side of a step benchmark, as the engine reads a data manager: one random
    training batch on ``device`` (``train_loader``), no test sets."""

    def __init__(self, cfg, device):
        k = cfg.sampler.num_instances
        b = cfg.train.batch_size
        per_id = 2 * k
        pid = torch.arange(b, device=device) // per_id % NUM_CLASSES
        modality = (torch.arange(b, device=device) % per_id >= k).long()
        camid = modality * 2          # visible camera 0, infrared camera 2
        h, w = cfg.data.height, cfg.data.width
        shape = (b, cfg.video.seq_len, 3, h, w) if cfg.data.type == 'video' else (b, 3, h, w)
        self.batch = {'img': torch.randn(shape, device=device), 'pid': pid, 'camid': camid,
                      'modality': modality}
        self.train_loader = [self.batch]
        self.test_loader = {}


def build_step_engine(cfg, device, compile_backend='inductor'):
    """(engine, batch): ``cfg``'s model, loss terms, optimizer and LR schedule on ``device``
    (``NUM_CLASSES`` ids, ``NUM_CAMERAS`` cameras) in a ``CrossModalEngine`` in train mode,
    and a ``RandomBatch`` for its ``forward_backward``."""
    model = build_reid_model(cfg, NUM_CLASSES, NUM_CAMERAS).to(device)
    criterion = build_criterion(cfg, model, NUM_CLASSES).to(device)
    source = RandomBatch(cfg, device)
    optimizer, scheduler = build_solver(cfg, [model, criterion], len(source.train_loader),
                                        device)
    # the engine runs on the current CUDA device: make it this one
    with torch.cuda.device(device) if device.type == 'cuda' else contextlib.nullcontext():
        engine = build_engine(cfg, source, model, criterion, optimizer, scheduler,
                              use_gpu=device.type == 'cuda')
    if cfg.train.compile and compile_backend != 'inductor':
        # the engine compiles with torch's default backend (inductor); another backend
        # goes on its training wrapper (one process: the wrapper is the model itself)
        engine._wrapped = (engine.model, None,
                           torch.compile(engine.model, backend=compile_backend))
    engine.set_model_mode('train')
    return engine, source.batch


def _steps(engine, batch, n):
    for _ in range(n):
        engine.forward_backward(batch)


def _peak_memory(device):
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2 ** 30
    # CPU: the process's peak resident set (cumulative over the run), GiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def _variant_opts(variant):
    amp, mode = variant.split('-')
    return ['train.amp', 'bf16' if amp == 'bf16' else 'off',
            'train.compile', str(mode == 'compiled')]


def bench_train(config_path, device, variants, steps=5, warmup=2, batch_size=None,
                compile_backend='inductor', peak_flops=None, peak_flops_fp32=None):
    """One row per variant ('fp32-eager', 'bf16-eager', 'fp32-compiled', 'bf16-compiled').

    ``mfu`` = counted FLOPs per step / step time / ``peak_flops`` (the measured dense
    bf16 matmul peak); ``mfu_fp32_peak`` the same against the fp32 peak (on a CPU
    without bf16 matrix units the bf16 peak is the lower one).
    """
    device = torch.device(device)
    # no validation split is read (select_on val would look for one)
    opts = ['model.pretrained', 'False', 'test.select_on', 'last']
    if batch_size:   # a smaller batch keeps at least 2 ids x (K visible + K infrared)
        k = load_config(config_path).sampler.num_instances
        opts += ['train.batch_size', str(batch_size),
                 'sampler.num_instances', str(max(1, min(k, batch_size // 4)))]
    # forward + loss + backward (+ the step's uncounted element-wise updates), counted once
    # on an eager fp32 engine
    torch.manual_seed(0)
    engine, batch = build_step_engine(load_config(config_path, opts + _variant_opts(
        'fp32-eager')), device)
    with FlopCounterMode(display=False) as counter:
        engine.forward_backward(batch)
    flops_per_step = counter.get_total_flops()
    engine = batch = None
    rows = []
    for variant in variants:
        cfg = load_config(config_path, opts + _variant_opts(variant))
        gc.collect()
        if device.type == 'cuda':
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        torch.manual_seed(0)
        engine, batch = build_step_engine(cfg, device, compile_backend)
        _, first_s = timed(lambda: engine.forward_backward(batch), device)  # + compilation
        _steps(engine, batch, max(warmup - 1, 0))
        _, seconds = timed(lambda: _steps(engine, batch, steps), device)
        sec = seconds / steps
        video = cfg.data.type == 'video'
        b = cfg.train.batch_size
        achieved = flops_per_step / sec
        rows.append({
            'model': cfg.model.name, 'config': os.path.basename(config_path),
            'variant': variant, 'input': list(batch['img'].shape),
            'unit': 'tracklets/s' if video else 'images/s',
            'items_per_s': round(b / sec, 2),
            'frames_per_s': round(b * (cfg.video.seq_len if video else 1) / sec, 2),
            'sec_per_step': round(sec, 4), 'first_step_s': round(first_s, 2),
            'train_gflop_per_step': round(flops_per_step / 1e9, 1),
            'achieved_tflops': round(achieved / 1e12, 4),
            'mfu': round(achieved / peak_flops, 4) if peak_flops else None,
            'mfu_fp32_peak': round(achieved / peak_flops_fp32, 4) if peak_flops_fp32 else None,
            'peak_memory_gib': round(_peak_memory(device), 2),
            'peak_memory_kind': 'cuda max_memory_allocated' if device.type == 'cuda'
            else 'process peak RSS (cumulative)'})
        engine = batch = None   # free them before the next variant
    return rows
