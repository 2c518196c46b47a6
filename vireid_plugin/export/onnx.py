"""ONNX export of a model's evaluation forward, and its parity with PyTorch in onnxruntime.

The exported graph is ``model(x, modality=..., camid=...)`` in eval mode (the
plugin's model contract): inputs ``images`` (B, C, H, W) or ``clips``
(B, T, C, H, W) float32, ``modality`` and ``camid`` (B,) int64; output
``features`` (B, D) float32. The batch axis is dynamic; a clip's T is the
example's.
Exported with torch's own exporter (``torch.onnx.export(dynamo=True)``,
which needs ``onnxscript``); checked with ``onnxruntime`` (``pip install
'.[onnx]'``).
"""
import copy
import os
import warnings

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import default_collate

from ..errors import UserError

INPUT_NAMES = {'image': ('images', 'modality', 'camid'), 'video': ('clips', 'modality', 'camid')}
OUTPUT_NAME = 'features'
# one ONNX file holds at most 2 GB; larger weights go to a side file
_SINGLE_FILE_BYTES = 1800 * 2 ** 20


class ExportError(UserError, RuntimeError):
    """Export or its check failed for a reason the user can act on."""


class EvalForward(nn.Module):
    """The model's evaluation call with positional inputs, as the exporter traces it."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x, modality, camid):
        return self.model(x, modality=modality, camid=camid)


def _require(module):
    try:
        return __import__(module)
    except ImportError:
        raise ExportError('{} is not installed; pip install "vireid_plugin[onnx]" (onnx, '
                          'onnxruntime, onnxscript)'.format(module)) from None


def export_onnx(model, path, example, kind='image', opset=None):
    """Write ``model``'s eval forward to ``path``; ``example`` = (x, modality, camid).

    The example batch should hold at least 2 items: the exporter specialises a
    dimension of size 1. Returns ``path``.
    """
    if kind not in INPUT_NAMES:
        raise ValueError('kind must be one of {}, got {!r}'.format(sorted(INPUT_NAMES), kind))
    _require('onnxscript')
    x = example[0]
    if x.dim() != (5 if kind == 'video' else 4) or x.shape[0] < 2:
        raise ValueError('{} export needs an example batch of shape {} with B >= 2, got '
                         '{}'.format(kind, '(B, T, C, H, W)' if kind == 'video' else '(B, C, H, W)',
                                     tuple(x.shape)))
    # Only the batch is dynamic: a clip's T is fixed at export (the video models'
    # per-frame camera ids do not survive a symbolic T in onnxruntime), so export
    # with the seq_len the model is evaluated with.
    batch = torch.export.Dim('batch')
    dynamic = {'x': {0: batch}, 'modality': {0: batch}, 'camid': {0: batch}}
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    with torch.no_grad(), warnings.catch_warnings():
        # the three inputs share the batch Dim on purpose
        warnings.filterwarnings('ignore', message='# The axis name')
        program = torch.onnx.export(
            EvalForward(model).eval(), tuple(example), dynamo=True,
            input_names=list(INPUT_NAMES[kind]),
            output_names=[OUTPUT_NAME], dynamic_shapes=dynamic, opset_version=opset,
            external_data=size > _SINGLE_FILE_BYTES, verbose=False)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    program.save(path, external_data=size > _SINGLE_FILE_BYTES)
    return path


def run_onnx(path, x, modality, camid):
    """Features (numpy float32) of the exported model in onnxruntime on the CPU."""
    ort = _require('onnxruntime')
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    values = {'images': x, 'clips': x, 'modality': modality, 'camid': camid}
    feeds = {i.name: np.ascontiguousarray(torch.as_tensor(values[i.name]).cpu().numpy())
             for i in session.get_inputs()}
    return session.run([OUTPUT_NAME], feeds)[0]


@torch.no_grad()
def max_abs_difference(model, path, inputs):
    """(largest |onnxruntime - PyTorch| feature difference, largest |PyTorch feature|)."""
    x, modality, camid = inputs
    ref = model.eval()(x, modality=modality, camid=camid).float().cpu().numpy()
    got = run_onnx(path, x, modality, camid)
    if got.shape != ref.shape:
        raise ExportError('onnxruntime returned features of shape {}, PyTorch {}'.format(
            got.shape, ref.shape))
    return float(np.abs(got - ref).max()), float(np.abs(ref).max())


def dataset_inputs(dataset, num):
    """``num`` items spread over a dataset's test pool, through its (test) transform:
    (x, modality, camid) tensors as the evaluation feeds the model."""
    pool = getattr(dataset, 'test_pool', None) or list(dataset.query) + list(dataset.gallery)
    view = copy.copy(dataset)
    view.data = pool
    picks = sorted(set(np.linspace(0, len(pool) - 1, min(num, len(pool))).round().astype(int)))
    batch = default_collate([view[int(i)] for i in picks])
    return batch['img'], batch['modality'].long(), batch['camid'].long()
