#!/usr/bin/env python
"""Benchmarks: training-step throughput of a model and cross-modal evaluation cost.

    python scripts/benchmark.py train --model vit_base_reid --batch-size 64 [--amp bf16]
    python scripts/benchmark.py eval  [--device cuda]

``train`` times forward + backward + optimizer step on random input at the
model's default size (after warm-up steps) and reports images/s, with the
forward FLOPs counted by torch.utils.flop_counter and the achieved TFLOP/s
(training ~ 3x forward). ``eval`` scores random features with the real
protocol sizes (SYSU-MM01 3803 queries vs 301/3010 gallery x 10 trials, RegDB
2060 x 2060) and reports the seconds per protocol. Prints one JSON line per
measurement, so results can be collected into docs/.
"""
import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from timm.layers import PatchEmbed  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from vireid_plugin.engine.precision import Precision  # noqa: E402
from vireid_plugin.losses import build_loss  # noqa: E402
from vireid_plugin.metrics import compute_distance, evaluate_rank  # noqa: E402
from vireid_plugin.models import build_model  # noqa: E402


def device_name(device):
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return '{} ({} threads)'.format(platform.processor() or platform.machine(),
                                    torch.get_num_threads())


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def bench_train(args, device):
    extra = {'stride_size': args.stride} if args.stride else {}   # else the model's default
    model = build_model(args.model, args.num_classes, pretrained=False, num_cameras=6,
                        img_size=tuple(args.img_size) if args.img_size else None,
                        **extra).to(device)
    # the input size the model was built for (image and video models alike)
    h, w = next(m for m in model.modules() if isinstance(m, PatchEmbed)).img_size
    shape = (args.batch_size, args.seq_len, 3, h, w) if args.seq_len else (args.batch_size, 3, h, w)
    x = torch.randn(shape, device=device)
    pid = torch.arange(args.batch_size, device=device) // 8 % args.num_classes
    batch = {'pid': pid, 'camid': pid % 6, 'modality': pid % 2}
    criterion = build_loss(['id', 'triplet'], [1.0, 1.0])
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    precision = Precision(args.amp, device)
    model.train()
    step_model = torch.compile(model) if args.compile else model

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x, modality=batch['modality'], camid=batch['camid'])
    fwd_flops = counter.get_total_flops()

    def step():
        with precision.autocast():
            out = step_model(x, modality=batch['modality'], camid=batch['camid'])
        loss, _ = criterion(out, batch)
        opt.zero_grad(set_to_none=True)
        precision.backward_step(loss, opt)

    for _ in range(args.warmup):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync(device)
    sec = (time.perf_counter() - start) / args.steps
    frames = args.batch_size * (args.seq_len or 1)
    return {'bench': 'train', 'model': args.model, 'input': list(shape), 'amp': precision.mode,
            'compile': args.compile, 'sec_per_step': round(sec, 4),
            'images_per_sec': round(frames / sec, 1),
            'fwd_gflop_per_image': round(fwd_flops / frames / 1e9, 2),
            'train_tflops_achieved': round(3 * fwd_flops / sec / 1e12, 3),
            'max_memory_gib': round(torch.cuda.max_memory_allocated(device) / 2 ** 30, 2)
            if device.type == 'cuda' else None}


def bench_eval(args, device):
    rng = np.random.default_rng(0)
    cases = {
        # queries, gallery per trial, trials, protocol, ids
        'sysu all-search single-shot': (3803, 301, 10, 'sysu', 96),
        'sysu all-search multi-shot': (3803, 3010, 10, 'sysu', 96),
        'regdb one trial': (2060, 2060, 1, 'regdb', 206),
    }
    rows = []
    for name, (nq, ng, trials, protocol, ids) in cases.items():
        q = torch.randn(nq, 768, device=device)
        q_pids = rng.integers(0, ids, nq)
        q_cams = rng.choice([2, 5], nq)
        sync(device)
        start = time.perf_counter()
        for _ in range(trials):
            g = torch.randn(ng, 768, device=device)
            g_pids = np.resize(np.arange(ids), ng)
            g_cams = rng.choice([0, 1, 3, 4], ng)
            dist = compute_distance(q, g)
            evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, protocol)
        sync(device)
        rows.append({'bench': 'eval', 'case': name, 'queries': nq, 'gallery': ng,
                     'trials': trials, 'seconds': round(time.perf_counter() - start, 3)})
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('what', choices=['train', 'eval'])
    p.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    p.add_argument('--model', default='vit_base_reid')
    p.add_argument('--img-size', type=int, nargs=2, default=None)
    p.add_argument('--stride', type=int, default=0,
                   help="patch stride (default: the model's own, e.g. 12 for MIP, 16 for ViT)")
    p.add_argument('--seq-len', type=int, default=0, help='> 0 for video models')
    p.add_argument('--batch-size', type=int, default=64)
    p.add_argument('--num-classes', type=int, default=395)
    p.add_argument('--amp', default='auto', choices=['auto', 'bf16', 'fp16', 'off'])
    p.add_argument('--compile', action='store_true')
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--steps', type=int, default=10)
    args = p.parse_args()
    device = torch.device(args.device)
    header = {'device': device_name(device), 'torch': torch.__version__,
              'date': time.strftime('%Y-%m-%d'), 'command': ' '.join(sys.argv)}
    results = bench_train(args, device) if args.what == 'train' else bench_eval(args, device)
    for row in results if isinstance(results, list) else [results]:
        print(json.dumps(dict(header, **row)))


if __name__ == '__main__':
    main()
