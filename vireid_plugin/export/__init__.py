"""Trained models out of Python: ONNX export of the evaluation forward, checked in onnxruntime."""
from .onnx import (ExportError, INPUT_NAMES, OUTPUT_NAME, dataset_inputs, export_onnx,
                   max_abs_difference, run_onnx)

__all__ = ['ExportError', 'INPUT_NAMES', 'OUTPUT_NAME', 'dataset_inputs', 'export_onnx',
           'max_abs_difference', 'run_onnx']
