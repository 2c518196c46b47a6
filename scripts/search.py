#!/usr/bin/env python
"""Search a gallery folder for each query image with a trained run.

    python scripts/search.py RUN_DIR --query DIR --query-modality infrared \
        --gallery DIR --gallery-modality visible --topk 10 --out results.json \
        --html results.html [--index gallery.index] [--backend onnx --onnx model.onnx]
        [--search faiss] [--rerank] [--on-bad stop]

Folders are read recursively; the run's test preprocessing, checkpoint and distance
are used (docs/inference.md). The command is ``vireid_plugin.inference.search.main``.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vireid_plugin.inference.search import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
