#!/usr/bin/env python
"""Train and evaluate visible-infrared ReID models with torchreid.

    python scripts/main.py --config-file configs/vit_sysu.yaml [-s ...] [-t ...]
        [--root DIR] [--transforms ...] [--resume [PATH] | --start-over] [KEY VALUE ...]

Same command line as torchreid's scripts/main.py; trailing KEY VALUE pairs
override config keys (e.g. ``train.max_epoch 10 test.protocol_matrix True``).
Several GPUs (or CPU processes): ``torchrun --nproc_per_node N scripts/main.py ...``
(docs/distributed.md); rank 0 prints, logs and writes checkpoints. A data.save_dir
that holds another run is refused unless the run continues it (--resume) or moves it
aside (--start-over); $VIREID_OPTS adds KEY VALUE pairs (docs/getting-started.md).

The run itself is ``vireid_plugin.runner`` (``run(cfg)`` and its ``build_*`` pieces).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vireid_plugin.runner import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
