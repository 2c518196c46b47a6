"""Benchmarks of the plugin: training throughput and MFU of the registered models, the
training data loader, and the evaluation metric against the field's per-query loop.

``scripts/benchmark.py`` is the command line; ``run_benchmark`` returns the result dict
(also printed as JSON) and ``format_report`` its tables.
"""
from .eval_matrix import compare_metrics, eval_cases
from .loader import bench_loader
from .matmul_peak import matmul_peak
from .report import format_report
from .run import SECTIONS, VARIANTS, run_benchmark
from .train_step import bench_train, recipe_specs

__all__ = ['run_benchmark', 'format_report', 'compare_metrics', 'eval_cases', 'bench_train',
           'recipe_specs', 'bench_loader', 'matmul_peak', 'SECTIONS', 'VARIANTS']
