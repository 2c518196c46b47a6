#!/usr/bin/env python
"""Training-loader throughput (images/s): PIL pipeline vs uint8 image cache + batch augment.

    python scripts/bench_loader.py --root /tmp/bench_data [--height 288 --width 144]
        [--workers 2] [--batch-size 64] [--batches 20] [--device cuda]

Uses the synthetic SYSU-MM01 under ``--root`` (generated there first when missing,
at ``--source-size``) unless ``--dataset`` names a real one. Prints one JSON line per
data path (``vireid_plugin.data.loader_benchmark.compare_train_loaders``).
"""
import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

import vireid_plugin  # noqa: E402,F401  (registers the datasets)
from vireid_plugin.data.loader_benchmark import (BENCH_TRANSFORMS,  # noqa: E402
                                                 compare_train_loaders)
from vireid_plugin.data.synthetic import make_sysu_mm01  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
    args = p.parse_args(argv)
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
