#!/usr/bin/env python
"""Draw every figure of a finished run (PNG files and TensorBoard images).

    python scripts/visualize.py RUN_DIR [--compare OTHER_RUN ...] [--config-file CFG]
        [--checkpoint PATH] [--out DIR] [--queries 6] [--topk 10] [--ids 10] [--seed 0]

RUN_DIR is a run's data.save_dir: its features.safetensors (ranked lists, t-SNE),
results.json (CMC curves; --compare adds other runs' curves to the plot),
config.yaml and newest checkpoint (attention maps, MIP's instance prompts).
PNGs go to RUN_DIR/figures/ (or --out), images to RUN_DIR's TensorBoard log.
The command is ``vireid_plugin.visualize.run.main``.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vireid_plugin.visualize.run import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
