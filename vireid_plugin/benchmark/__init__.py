"""Benchmarks of the plugin: training throughput and MFU of the registered models, the
training data loader, and the evaluation metric against the field's per-query loop.

``scripts/benchmark.py`` is the command line (``run.main``); ``run_benchmark`` returns
the result dict (also printed as JSON) and ``format_report`` its tables.
``scripts/bench_loader.py`` (``loader.main``) compares the PIL loader with the uint8
image cache. Every timing waits for the device through ``timing.synchronize``.
"""
from .eval_matrix import compare_metrics, eval_cases
from .loader import BENCH_TRANSFORMS, bench_loader, compare_train_loaders, loader_throughput
from .matmul_peak import matmul_peak
from .report import format_report
from .run import SECTIONS, VARIANTS, run_benchmark
from .timing import synchronize, timed
from .train_step import bench_train, build_step_engine, recipe_specs

__all__ = ['run_benchmark', 'format_report', 'compare_metrics', 'eval_cases', 'bench_train',
           'build_step_engine', 'recipe_specs', 'bench_loader', 'compare_train_loaders',
           'loader_throughput', 'BENCH_TRANSFORMS', 'matmul_peak', 'synchronize', 'timed',
           'SECTIONS', 'VARIANTS']
