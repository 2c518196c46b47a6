"""One benchmark run: the sections the caller asks for, as one result dict."""
import os
import platform
import sys
import tempfile
import time

import torch

from ..data.synthetic import make_sysu_mm01
from .eval_matrix import compare_metrics
from .loader import bench_loader
from .matmul_peak import matmul_peak
from .train_step import bench_train, recipe_specs

__all__ = ['SECTIONS', 'VARIANTS', 'run_benchmark', 'device_name']

SECTIONS = ('matmul', 'train', 'loader', 'eval')
VARIANTS = ('fp32-eager', 'bf16-eager', 'fp32-compiled', 'bf16-compiled')


def device_name(device):
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return '{} CPU, {} cores'.format(platform.machine(), os.cpu_count())


def _say(msg):
    print('[benchmark] ' + msg, file=sys.stderr, flush=True)


def run_benchmark(device, sections=SECTIONS, quick=False, config_dir='configs', models=None,
                  variants=VARIANTS, steps=5, warmup=2, batch_size=None, data_root=None,
                  loader_batches=20, compile_backend='inductor', reference=True,
                  command=''):
    """Run ``sections`` on ``device``; ``quick``: tiny demo models, small sizes (CPU test)."""
    device = torch.device(device)
    result = {'header': {'device': device_name(device), 'device_type': device.type,
                         'torch': torch.__version__, 'threads': torch.get_num_threads(),
                         'date': time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()),
                         'quick': quick, 'command': command}}
    peak = peak32 = None
    if 'matmul' in sections:
        size = 256 if quick else None
        _say('dense matmul peak')
        result['matmul'] = [matmul_peak(device, dt, size=size, min_seconds=0.1 if quick else 0.5)
                            for dt in (torch.bfloat16, torch.float32)]
        peak, peak32 = (m['flops'] for m in result['matmul'])
    # --quick: the tiny ViT of configs/demo.yaml only, small batches
    specs = recipe_specs(config_dir, quick=quick, models=models or (
        ['vit_tiny_reid'] if quick else None))
    quick_opts = ['train.batch_size', '8', 'sampler.num_instances', '2'] if quick else []
    if quick:
        batch_size = batch_size or 8
        steps, warmup = min(steps, 2), min(warmup, 1)
    if 'train' in sections:
        result['train'] = []
        for name, path in specs:
            _say('training step: {} ({})'.format(name, os.path.basename(path)))
            result['train'] += bench_train(path, device, variants, steps=steps, warmup=warmup,
                                           batch_size=batch_size,
                                           compile_backend=compile_backend, peak_flops=peak,
                                           peak_flops_fp32=peak32)
    if 'loader' in sections:
        with tempfile.TemporaryDirectory(prefix='vireid_benchmark_') as tmp:
            root = data_root or os.path.join(tempfile.gettempdir(), 'vireid_benchmark_data')
            if quick:   # a small synthetic SYSU-MM01 (generated in well under a second)
                root = tmp
                make_sysu_mm01(root, num_train=8, num_val=2, num_test=4, images_per_cam=2)
            result['loader'] = []
            for name, path in specs:   # one row per recipe: transforms differ
                _say('data loader: {}'.format(os.path.basename(path)))
                result['loader'].append(bench_loader(
                    path, root, batches=3 if quick else loader_batches, opts=quick_opts))
    if 'eval' in sections:
        result['eval'] = compare_metrics(device, quick=quick, reference=reference,
                                         progress=_say)
    return result
