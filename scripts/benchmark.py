#!/usr/bin/env python
"""Benchmark the plugin on whatever device it runs on; prints tables, then one JSON object.

    python scripts/benchmark.py                      # every section, full sizes
    python scripts/benchmark.py --quick              # tiny models, small sizes (CPU, seconds)
    python scripts/benchmark.py --sections eval      # only the evaluation comparison
    python scripts/benchmark.py --sections train --models vit_base_reid \\
        --variants fp32-eager bf16-eager --steps 3

Sections: ``matmul`` (the device's dense bf16 / fp32 matmul peak, the MFU denominator),
``train`` (training step of each full-size registered model at its recipe's input size
and batch: items/s, peak memory, FLOPs from FlopCounterMode, MFU; fp32 / bf16 x eager /
compiled), ``loader`` (the recipe's training data loader, with its worker count) and
``eval`` (the field's per-query evaluation loop against ``evaluate_rank`` on random
features of the real SYSU-MM01 / RegDB / HITSZ-VCM test sizes: times, ratio, identity).
See docs/performance.md.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

import vireid_plugin  # noqa: E402,F401  (registers models and datasets)
from vireid_plugin.benchmark import SECTIONS, VARIANTS, format_report, run_benchmark  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
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
    p.add_argument('--config-dir', default=os.path.join(ROOT, 'configs'))
    p.add_argument('--threads', type=int, default=0,
                   help='torch CPU threads (default: torch\'s own choice)')
    p.add_argument('--json', default='', help='also write the JSON result to this file')
    return p


def main(argv=None):
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
        from vireid_plugin.checkpoint_io import atomic_write
        atomic_write(args.json, lambda f: f.write(text.encode()))
    ok = result.get('eval', {}).get('identical') is not False
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
