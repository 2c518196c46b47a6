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
features of the real SYSU-MM01 / RegDB / HITSZ-VCM test sizes: times, ratio, identity)
and ``syncs`` (host syncs per training step of each registered model, counted on the CPU).
See docs/performance.md. The command is ``vireid_plugin.benchmark.run.main``.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vireid_plugin.benchmark.run import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
