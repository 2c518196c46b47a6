"""Host syncs per training step, counted on any device (the CPU included).

On a GPU, an op whose result size or value the host must know (``.item()``, ``bool()`` of
a tensor, ``nonzero``, boolean-mask indexing, ``torch.unique``, ``bincount``,
``repeat_interleave`` without ``output_size``, ...) makes the host wait until the device
has run everything queued before it: the pipeline drains once per such op. Those ops
are the same on the CPU, so :class:`HostSyncCounter`, a ``TorchDispatchMode``, counts
them where no GPU is: each aten call that would sync, with the plugin's source line that
made it.

Boolean-mask ``index_put_`` with a one-element value and no accumulation is aten's
``masked_fill`` (no sync) and is not counted. ``.tolist()``/``float()`` of a tensor are
``_local_scalar_dense`` per element, as on a GPU.
"""
import collections
import os
import traceback

import torch
from torch.utils._python_dispatch import TorchDispatchMode

__all__ = ['HostSyncCounter', 'SYNCING_OPS', 'count_step_syncs', 'recipe_syncs']

#: aten ops that always wait for the device (their output size or value goes to the host)
SYNCING_OPS = frozenset({'_local_scalar_dense', 'nonzero', 'masked_select', 'is_nonzero',
                         '_unique', '_unique2', 'unique_dim', 'unique_consecutive',
                         'unique_dim_consecutive', 'bincount', 'equal'})
_INDEX_OPS = ('index', 'index_put', 'index_put_', '_index_put_impl_')
_PACKAGE = os.sep + 'vireid_plugin' + os.sep


def _arg(args, kwargs, i, name):
    return args[i] if len(args) > i else kwargs.get(name)


def _syncing(name, args, kwargs):
    """The counted name of aten op ``name`` with these arguments, or None (no sync)."""
    if name in SYNCING_OPS:
        return name
    if name in _INDEX_OPS:
        indices = _arg(args, kwargs, 1, 'indices') or []
        if any(torch.is_tensor(i) and i.dtype == torch.bool for i in indices):
            value = _arg(args, kwargs, 2, 'values')
            accumulate = _arg(args, kwargs, 3, 'accumulate') or False
            masked_fill = name != 'index' and torch.is_tensor(value) and \
                value.numel() == 1 and not accumulate
            if not masked_fill:
                return name + '[bool mask]'
    if name == 'repeat_interleave' and kwargs.get('output_size') is None and args and \
            torch.is_tensor(args[0]) and (len(args) < 2 or torch.is_tensor(args[1])):
        return name + '[no output_size]'
    return None


def _caller():
    """'vireid_plugin/<file>:<line>' of the innermost package frame making the call."""
    for frame in reversed(traceback.extract_stack()[:-3]):
        if _PACKAGE in frame.filename and os.sep + 'benchmark' + os.sep not in frame.filename:
            rel = frame.filename[frame.filename.rindex(_PACKAGE) + 1:]
            return '{}:{}'.format(rel.replace(os.sep, '/'), frame.lineno)
    return '(autograd / outside the package)'


class HostSyncCounter(TorchDispatchMode):
    """``with HostSyncCounter() as c: ...``; then ``c.total`` and ``c.by_site``
    ({(op, 'file:line'): count})."""

    def __init__(self):
        super().__init__()
        self.by_site = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        op = _syncing(func.overloadpacket.__name__, args, kwargs)
        if op is not None:
            self.by_site[(op, _caller())] += 1
        return func(*args, **kwargs)

    @property
    def total(self):
        return sum(self.by_site.values())


def count_step_syncs(engine, batch, steps=1):
    """Host syncs of ``steps`` calls of ``engine.forward_backward(batch)`` after one
    uncounted warm-up step: (syncs per step, {(op, site): count per step})."""
    engine.forward_backward(batch)
    with HostSyncCounter() as counter:
        for _ in range(steps):
            engine.forward_backward(batch)
    per_site = {k: v / steps for k, v in sorted(counter.by_site.items())}
    return counter.total / steps, per_site


def recipe_syncs(path, opts=(), steps=2):
    """Host syncs per training step of config ``path``'s model, loss terms and optimizer,
    counted on the CPU: {'model', 'config', 'per_step', 'sites'}.

    The step is the engine's ``forward_backward`` on a random batch laid out as the
    cross-modal sampler lays it out, with every loss term on (``set_epoch`` at the last
    epoch: MSEL starts late) and the optimizer a GPU run builds (``fused`` where PyTorch
    has the kernel: ``optim.implementation`` for a CUDA device; the fused kernels run on
    the CPU too). What the count cannot see: kernels that sync inside a GPU library, and
    the GradScaler of ``train.amp fp16`` (its non-fused step reads ``found_inf``)."""
    from ..config import load_config
    from ..runner import build_criterion, build_engine, build_reid_model, build_solver
    from .train_step import NUM_CAMERAS, NUM_CLASSES, RandomBatch

    cfg = load_config(path, list(opts) + ['model.pretrained', 'False', 'train.amp', 'off',
                                          'train.compile', 'False'])
    cpu = torch.device('cpu')
    torch.manual_seed(0)
    model = build_reid_model(cfg, NUM_CLASSES, NUM_CAMERAS)
    criterion = build_criterion(cfg, model, NUM_CLASSES)
    source = RandomBatch(cfg, cpu)
    optimizer, scheduler = build_solver(cfg, [model, criterion], len(source.train_loader),
                                        device=torch.device('cuda'))   # its implementation
    engine = build_engine(cfg, source, model, criterion, optimizer, scheduler, use_gpu=False)
    engine.set_model_mode('train')
    if hasattr(engine.criterion, 'set_epoch'):
        engine.criterion.set_epoch(max(0, cfg.train.max_epoch - 1))
    per_step, sites = count_step_syncs(engine, source.batch, steps=steps)
    return {'model': cfg.model.name, 'config': os.path.basename(path), 'per_step': per_step,
            'sites': ['{:g} x {} at {}'.format(n, op, where) for (op, where), n in sites.items()]}
