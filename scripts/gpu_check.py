#!/usr/bin/env python
"""Confirm on a GPU what the CPU tests emulate (issue 28): one PASS/FAIL/SKIP line per
check, exit status 1 on a failure. A few minutes on one GPU; on a machine without one it
says so, runs the CPU-possible checks and skips the rest.

    python scripts/gpu_check.py                 # cuda if present
    python scripts/gpu_check.py --device cuda:1

The checks are ``vireid_plugin.benchmark.gpu_check`` (see its module doc and
docs/fast-path.md).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vireid_plugin.benchmark.gpu_check import main  # noqa: E402

if __name__ == '__main__':
    sys.exit(main())
