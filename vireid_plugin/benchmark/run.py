"""One benchmark run: the sections the caller asks for, as one result dict; ``main(argv)``
is its command line (``scripts/benchmark.py``: tables, then the result as one JSON line)."""
import argparse
import json
import os
import platform
import sys
import tempfile
import time

import torch

from ..checkpoint_io import atomic_write
from ..data.synthetic import make_sysu_mm01
from .eval_matrix import compare_metrics
from .inference import bench_inference
from .host_syncs import recipe_syncs
from .loader import bench_loader
from .matmul_peak import matmul_peak
from .report import format_report
from .train_step import bench_train, recipe_specs

__all__ = ['SECTIONS', 'VARIANTS', 'run_benchmark', 'device_name', 'build_parser', 'main']

SECTIONS = ('matmul', 'train', 'loader', 'eval', 'inference', 'syncs')
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
    if 'inference' in sections:   # CPU: the extractors and the search run on the CPU
        result['inference'] = bench_inference(config_dir, quick=quick, log=_say)
    if 'syncs' in sections:
        # counted on the CPU whatever --device: the ops that would sync a GPU, per step of
        # each registered model's tiny variant (the demo configs: same loss terms)
        tiny = recipe_specs(config_dir, quick=True, models=models or (
            ['vit_tiny_reid'] if quick else None))
        result['syncs'] = []
        for name, path in tiny:
            _say('host syncs per training step: {} ({})'.format(name, os.path.basename(path)))
            result['syncs'].append(recipe_syncs(path, ['train.batch_size', '8',
                                                       'sampler.num_instances', '2']))
    return result


# ---- the command line (scripts/benchmark.py) ---------------------------------------------
#: the recipes: configs/ of the source tree this package sits in
CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), 'configs')


def build_parser():
    p = argparse.ArgumentParser(
        description="Benchmark the plugin on whatever device it runs on; prints tables, then "
                    "one JSON object.", formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--quick', action='store_true',
                   help='tiny demo model, small sizes, 2 trials: a few seconds on CPU')
    p.add_argument('--sections', nargs='+', choices=SECTIONS, default=list(SECTIONS))
    p.add_argument('--models', nargs='+', default=None,
                   help='restrict the train/loader sections to these registered models')
    p.add_argument('--variants', nargs='+', choices=VARIANTS, default=list(VARIANTS))
    p.add_argument('--steps', type=int, default=5, help='timed training steps per variant')
    p.add_argument('--warmup', type=int, default=2, help='untimed steps first (compilation)')
    p.add_argument('--batch-size', type=int, default=None,
                   help="override the recipe's batch size (default: the recipe's)")
    p.add_argument('--compile-backend', default='inductor')
    p.add_argument('--data-root', default=None,
                   help='datasets for the loader section (missing ones are generated '
                        'synthetic; default: a temporary folder)')
    p.add_argument('--loader-batches', type=int, default=20)
    p.add_argument('--no-reference', action='store_true',
                   help='eval: time evaluate_rank only (no per-query loop, no identity check)')
    p.add_argument('--config-dir', default=CONFIG_DIR)
    p.add_argument('--threads', type=int, default=0,
                   help='torch CPU threads (default: torch\'s own choice)')
    p.add_argument('--json', default='', help='also write the JSON result to this file')
    return p


def main(argv=None):
    """``scripts/benchmark.py``: exit status 1 when the evaluation comparison differs."""
    args = build_parser().parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    command = 'python scripts/benchmark.py ' + ' '.join(sys.argv[1:] if argv is None else argv)
    result = run_benchmark(
        args.device, sections=args.sections, quick=args.quick, config_dir=args.config_dir,
        models=args.models, variants=args.variants, steps=args.steps, warmup=args.warmup,
        batch_size=args.batch_size, data_root=args.data_root,
        loader_batches=args.loader_batches, compile_backend=args.compile_backend,
        reference=not args.no_reference, command=command.strip())
    print(format_report(result))
    text = json.dumps(result)
    print(text)
    if args.json:
        atomic_write(args.json, lambda f: f.write(text.encode()))
    ok = result.get('eval', {}).get('identical') is not False
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
