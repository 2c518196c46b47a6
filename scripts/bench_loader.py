#!/usr/bin/env python
"""Training-loader throughput (images/s): PIL pipeline vs uint8 image cache + batch augment.

    python scripts/bench_loader.py --root /tmp/bench_data [--height 288 --width 144]
        [--workers 2] [--batch-size 64] [--batches 20] [--device cuda]

Uses the synthetic SYSU-MM01 under ``--root`` (generated there first when missing,
at ``--source-size``) unless ``--dataset`` names a real one. Prints one JSON line per
data path (``vireid_plugin.benchmark.loader.compare_train_loaders``; the command is
``vireid_plugin.benchmark.loader.main``).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vireid_plugin.benchmark.loader import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
