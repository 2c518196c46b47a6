#!/usr/bin/env python
"""Export a trained model's evaluation forward to ONNX and check it in onnxruntime.

    python scripts/export_onnx.py --config-file CFG --weights CKPT --out model.onnx
        [--atol 1e-3] [--num-inputs 8] [--synthetic] [--root DIR] [KEY VALUE ...]

The model is built from the config as scripts/main.py builds it and loads CKPT.
Image models take images plus modality and camera ids, video models
(data.type video) clips (B, T, C, H, W) plus modality and camid; the batch axis
is dynamic. The file is then run in onnxruntime on real inputs (items of the
first target's test set through the test transform; --synthetic generates the
config's dataset first where it is missing) and the largest absolute difference
from PyTorch's features is printed; the exit status is 1 when it exceeds --atol.
The command is ``vireid_plugin.export.run.main``.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vireid_plugin.export.run import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
