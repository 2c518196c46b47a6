"""Training throughput of the registered models at their recipe's input size and batch.

Which models, and at which size and batch, comes from the recipe configs under
``configs/``: every top-level ``*.yaml`` whose model is registered and is not a CPU
variant (``tiny`` in the name), the base recipe (no ``_BASE_``) first. ``--quick``
takes the ``demo*.yaml`` configs' tiny models instead. One step is the engine's:
forward under the recipe's precision, the recipe's loss terms, backward, the
recipe's optimizer step, on a random batch laid out as the cross-modal sampler lays
it out (P ids x (K visible + K infrared)).
"""
import glob
import inspect
import os
import resource
import time

import torch
import yaml
from torch.utils.flop_counter import FlopCounterMode

from ..config import load_config, loss_kwargs, model_kwargs, optimizer_kwargs
from ..config.loading import BASE_KEY
from ..engine.precision import Precision
from ..losses import build_loss
from ..models import build_model
from ..optim import build_optimizer

__all__ = ['recipe_specs', 'bench_train']

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


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _batch(cfg, device):
    k = cfg.sampler.num_instances
    b = cfg.train.batch_size
    per_id = 2 * k
    pid = torch.arange(b, device=device) // per_id % NUM_CLASSES
    modality = (torch.arange(b, device=device) % per_id >= k).long()
    camid = modality * 2          # visible camera 0, infrared camera 2
    h, w = cfg.data.height, cfg.data.width
    if cfg.data.type == 'video':
        shape = (b, cfg.video.seq_len, 3, h, w)
    else:
        shape = (b, 3, h, w)
    return torch.randn(shape, device=device), {'pid': pid, 'camid': camid, 'modality': modality}


def _peak_memory(device):
    if device.type == 'cuda':
        return torch.cuda.max_memory_allocated(device) / 2 ** 30
    # CPU: the process's peak resident set (cumulative over the run), GiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def bench_train(config_path, device, variants, steps=5, warmup=2, batch_size=None,
                compile_backend='inductor', peak_flops=None, peak_flops_fp32=None):
    """One row per variant ('fp32-eager', 'bf16-eager', 'fp32-compiled', 'bf16-compiled').

    ``mfu`` = counted FLOPs per step / step time / ``peak_flops`` (the measured dense
    bf16 matmul peak); ``mfu_fp32_peak`` the same against the fp32 peak (on a CPU
    without bf16 matrix units the bf16 peak is the lower one).
    """
    opts = ['model.pretrained', 'False']
    if batch_size:   # a smaller batch keeps at least 2 ids x (K visible + K infrared)
        k = load_config(config_path).sampler.num_instances
        opts += ['train.batch_size', str(batch_size),
                 'sampler.num_instances', str(max(1, min(k, batch_size // 4)))]
    cfg = load_config(config_path, opts)
    rows = []
    flops_per_step = None
    for variant in variants:
        amp, mode = variant.split('-')
        torch.manual_seed(0)
        if device.type == 'cuda':
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        model = build_model(cfg.model.name, NUM_CLASSES,
                            **model_kwargs(cfg, NUM_CAMERAS)).to(device).train()
        names, weights, options = loss_kwargs(cfg)
        criterion = build_loss(names, weights, options, num_classes=NUM_CLASSES,
                               model=model).to(device)
        optimizer = build_optimizer([model, criterion], **optimizer_kwargs(cfg))
        precision = Precision('bf16' if amp == 'bf16' else 'off', device)
        takes_pid = 'pid' in inspect.signature(model.forward).parameters
        x, batch = _batch(cfg, device)
        extra = {'pid': batch['pid']} if takes_pid else {}
        step_model = torch.compile(model, backend=compile_backend) if mode == 'compiled' \
            else model

        def step():
            with precision.autocast():
                out = step_model(x, modality=batch['modality'], camid=batch['camid'],
                                 named_outputs=True, **extra)
            loss, _ = criterion(out, batch)
            optimizer.zero_grad(set_to_none=True)
            precision.backward_step(loss, optimizer)

        if flops_per_step is None:   # forward + loss + backward, counted once (eager fp32)
            with FlopCounterMode(display=False) as counter:
                out = model(x, modality=batch['modality'], camid=batch['camid'],
                            named_outputs=True, **extra)
                criterion(out, batch)[0].backward()
            optimizer.zero_grad(set_to_none=True)
            flops_per_step = counter.get_total_flops()
        start = time.perf_counter()
        step()
        _sync(device)
        first_s = time.perf_counter() - start     # includes compilation when compiled
        for _ in range(max(warmup - 1, 0)):
            step()
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            step()
        _sync(device)
        sec = (time.perf_counter() - start) / steps
        video = cfg.data.type == 'video'
        b = cfg.train.batch_size
        achieved = flops_per_step / sec
        rows.append({
            'model': cfg.model.name, 'config': os.path.basename(config_path),
            'variant': variant, 'input': list(x.shape),
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
        model = criterion = optimizer = step_model = None   # free them before the next variant
    return rows
