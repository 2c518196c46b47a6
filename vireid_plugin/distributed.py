"""Multi-process training with torchrun: process group, ranks, gathering, DDP wrapping.

``torchrun --nproc_per_node N scripts/main.py ...`` starts N processes with the
environment variables ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``; :func:`init_distributed` turns them into a process group (NCCL on
GPUs, gloo on the CPU) and pins each process to its GPU. A plain ``python`` run has
none of them and stays a single process: every helper here then does nothing.

The rank and world size are torch.distributed's own state (no module-level state
here): :func:`rank`, :func:`world_size` and :func:`is_main` read it.
"""
import datetime
import os
from collections import namedtuple

import torch
import torch.distributed as dist

from .errors import UserError

__all__ = ['DistInfo', 'init_distributed', 'shutdown', 'is_distributed', 'rank', 'world_size',
           'is_main', 'barrier', 'all_gather_rows', 'all_reduce_mean', 'all_reduce_grads',
           'broadcast_buffers', 'wrap_model', 'shard_range', 'gather_objects', 'JobStopped',
           'stop_restarts', 'STOP_KEY', 'collective_device', 'any_rank', 'find_unused_choice']

#: where this process trains: rank among world_size processes, its GPU (local_rank)
DistInfo = namedtuple('DistInfo', 'rank world_size local_rank device backend')

ENV = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK')

#: the key of torchrun's store that ends restarted workers at once (:func:`stop_restarts`)
STOP_KEY = 'vireid_plugin/stopped'


class JobStopped(UserError, RuntimeError):
    """The job stops for good: another rank's error (printed there: ``quiet``), or, in a
    worker restarted by torchrun, the error that stopped the previous attempt."""

    def __init__(self, message, quiet=False):
        super().__init__(message)
        #: True: the rank that met the error prints it; this rank exits without a word
        self.quiet = quiet


def init_distributed(use_gpu=True, env=None):
    """Initialise the process group from torchrun's variables (once per process).

    Returns a :class:`DistInfo`. Without ``WORLD_SIZE`` > 1 (a plain ``python``
    run) nothing is initialised: rank 0 of 1, device ``cuda`` or ``cpu``.
    Backend: ``nccl`` when ``use_gpu`` and CUDA is available (each process takes GPU
    ``LOCAL_RANK``), else ``gloo``.
    """
    env = os.environ if env is None else env
    on_gpu = bool(use_gpu) and torch.cuda.is_available()
    size = int(env.get('WORLD_SIZE', '1') or 1)
    if size <= 1:
        return DistInfo(0, 1, 0, torch.device('cuda' if on_gpu else 'cpu'), None)
    missing = [k for k in ENV if k not in env]
    if missing:
        raise RuntimeError('WORLD_SIZE={} but {} not set: start multi-process runs with '
                           'torchrun'.format(size, ', '.join(missing)))
    local_rank = int(env['LOCAL_RANK'])
    backend = 'nccl' if on_gpu else 'gloo'
    if on_gpu:
        if local_rank >= torch.cuda.device_count():
            raise RuntimeError('LOCAL_RANK {} but this node has {} GPU(s): --nproc_per_node '
                               'must not exceed the GPUs'.format(local_rank,
                                                                 torch.cuda.device_count()))
        torch.cuda.set_device(local_rank)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend,
                                 device_id=torch.device('cuda', local_rank) if on_gpu else None,
                                 **_restart_store(env))
    device = torch.device('cuda', local_rank) if on_gpu else torch.device('cpu')
    return DistInfo(dist.get_rank(), dist.get_world_size(), local_rank, device, backend)


def _restart_store(env):
    """After ``torchrun --max-restarts`` restarted the workers, a store of their own.

    torchrun's workers share the agent's TCPStore; a restarted group's backend reads the
    addresses the previous group left there under the same keys and fails to connect
    ("Gloo connectFullMesh failed ... Connection refused"). A key prefix per restart gives
    each group its own keys. First starts (and plain torchrun without restarts) keep
    torch's default. Returns init_process_group keywords."""
    restart = int(env.get('TORCHELASTIC_RESTART_COUNT', '0') or 0)
    if not restart or 'MASTER_ADDR' not in env or 'MASTER_PORT' not in env:
        return {}
    store = dist.TCPStore(env['MASTER_ADDR'], int(env['MASTER_PORT']),
                          int(env['WORLD_SIZE']), is_master=False,
                          timeout=datetime.timedelta(minutes=10))
    if store.check([STOP_KEY]):   # an earlier attempt stopped for good (stop_restarts)
        raise JobStopped('{} (stopped by restart {} of torchrun: the previous attempt ended '
                         'on this error and a restart cannot mend it; mend it, then start '
                         'again with --resume)'.format(store.get(STOP_KEY).decode(), restart),
                         quiet=int(env['RANK']) != 0)
    return dict(store=dist.PrefixStore('vireid_plugin/restart{}'.format(restart), store),
                rank=int(env['RANK']), world_size=int(env['WORLD_SIZE']))


def stop_restarts(message, env=None):
    """Make torchrun's restarts of this job end at once, with ``message``.

    torchrun (torch.distributed.elastic) restarts every worker after any failure while
    ``--max-restarts`` allows, whatever the exit status: it has no status for "do not
    restart" (pytorch/pytorch#133877; the agent looks at failed or not). So the reason is
    left in torchrun's own store, which outlives the restarts of one job: a restarted
    worker finds it in :func:`init_distributed` and ends with ``message`` before any data
    or model work, instead of training again into the same failure. Best effort (a
    store that cannot be reached changes nothing); without torchrun it does nothing.
    Returns whether the message was left."""
    env = os.environ if env is None else env
    if 'TORCHELASTIC_RUN_ID' not in env or 'MASTER_ADDR' not in env or \
            'MASTER_PORT' not in env:
        return False
    try:
        store = dist.TCPStore(env['MASTER_ADDR'], int(env['MASTER_PORT']), is_master=False,
                              timeout=datetime.timedelta(seconds=10))
        store.set(STOP_KEY, str(message))
    except (RuntimeError, OSError, ValueError):
        return False
    return True


def shutdown():
    if is_distributed():
        dist.destroy_process_group()


def is_distributed():
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank():
    return dist.get_rank() if is_distributed() else 0


def world_size():
    return dist.get_world_size() if is_distributed() else 1


def is_main():
    """Rank 0 (or a single process): the one that prints, writes checkpoints and logs."""
    return rank() == 0


def barrier():
    if is_distributed():
        dist.barrier()


def shard_range(n, rank_, world):
    """[start, stop) of the ``rank_``-th of ``world`` contiguous, near-equal shards of n."""
    return n * rank_ // world, n * (rank_ + 1) // world


def all_gather_rows(x, n):
    """Concatenate every rank's rows of ``x`` (rank order); shard sizes may differ by one
    (:func:`shard_range` of ``n`` rows). Single process: ``x``."""
    if not is_distributed():
        return x
    world = world_size()
    sizes = [shard_range(n, r, world) for r in range(world)]
    longest = max(b - a for a, b in sizes)
    padded = x.new_zeros((longest,) + tuple(x.shape[1:]))
    padded[:len(x)] = x
    parts = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:b - a] for p, (a, b) in zip(parts, sizes)], 0)


def gather_objects(obj):
    """Every rank's ``obj`` (picklable, small), in rank order. Single process: [obj]."""
    if not is_distributed():
        return [obj]
    out = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def all_reduce_mean(x):
    """The mean of ``x`` over the ranks (a new tensor; ``x`` itself single-process)."""
    if not is_distributed():
        return x
    x = x.clone()
    dist.all_reduce(x)
    return x / world_size()


def collective_device():
    """Where this process group's collectives take tensors: this process's GPU under
    NCCL, else the CPU."""
    if is_distributed() and dist.get_backend() == 'nccl':
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def any_rank(flag):
    """Whether ``flag`` is true on any rank (every rank gets the same answer). Single
    process: ``bool(flag)``."""
    if not is_distributed():
        return bool(flag)
    t = torch.tensor([float(bool(flag))], device=collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def all_reduce_grads(params):
    """Average the gradients of ``params`` over the ranks, as DistributedDataParallel does
    for its own parameters (these are outside the DDP model, e.g. loss terms with heads).

    A parameter without a gradient on every rank keeps ``grad = None``, so the optimizer
    leaves it alone (no weight decay, no momentum), exactly as a single process would.
    One with a gradient on some ranks only gets ``sum over ranks / world size``, the
    missing ones counting as zero: with loss terms that are means over the batch (each
    rank's batch is 1 / world size of the global one) that is the single-process gradient
    of the union batch. One collective: the gradients and a has-gradient flag per
    parameter travel together."""
    params = list(params)
    if not is_distributed() or not params:
        return
    present = [p.grad is not None for p in params]
    ref = next((p.grad for p in params if p.grad is not None), params[0])
    flags = torch.tensor(present, dtype=ref.dtype, device=ref.device)
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                      for p in params] + [flags])
    dist.all_reduce(flat)
    used = flat[-len(params):].tolist()   # ranks that had a gradient, per parameter
    flat = flat[:-len(params)] / world_size()
    offset = 0
    for p, count in zip(params, used):
        n = p.numel()
        if count > 0:
            grad = flat[offset:offset + n].view_as(p)
            if p.grad is None:
                p.grad = grad.to(p.dtype).clone()
            else:
                p.grad.copy_(grad)
        offset += n


@torch.no_grad()
def broadcast_buffers(module):
    """Rank 0's buffers (BatchNorm running statistics) to every rank: after training
    steps each rank's running statistics saw its own batches."""
    if not is_distributed():
        return
    for buf in module.buffers():
        dist.broadcast(buf, 0)


def find_unused_choice(model, setting='auto'):
    """DDP's ``find_unused_parameters`` for ``model``: ``setting`` when True/False; 'auto':
    False when the model declares which of its parameters a step leaves without a
    gradient (``unused_parameters()``: DDP ignores those, and every other parameter gets
    a gradient each step), True for a model that declares nothing (the safe choice:
    DDP searches the graph every step)."""
    if setting in (True, False):
        return setting
    if str(setting).lower() in ('true', 'false'):
        return str(setting).lower() == 'true'
    if setting != 'auto':
        raise ValueError("find_unused_parameters must be auto, True or False, got {!r}".format(
            setting))
    return not callable(getattr(model, 'unused_parameters', None))


def wrap_model(model, device, find_unused_parameters='auto', sync_bn=False):
    """``model`` in DistributedDataParallel when several processes run, else ``model``.

    ``find_unused_parameters``: True, False or 'auto' (:func:`find_unused_choice`). The
    parameters the model declares unused (``unused_parameters()``) are named to DDP as
    ignored: no gradient bucket, no all-reduce, no error when they get no gradient.
    ``sync_bn``: convert BatchNorm layers to SyncBatchNorm first (CUDA only: batch
    statistics over the global batch instead of each rank's part).
    The wrapper shares ``model``'s parameters: keep using ``model`` for state_dict,
    evaluation and checkpoints (no ``module.`` prefix).
    """
    if not is_distributed():
        return model
    device = torch.device(device)
    if sync_bn:
        if device.type != 'cuda':
            raise ValueError('train.sync_bn needs CUDA (SyncBatchNorm has no CPU kernel); '
                             'set it False for gloo/CPU runs')
        torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
    DDP = torch.nn.parallel.DistributedDataParallel
    declared = getattr(model, 'unused_parameters', None)
    if callable(declared) and declared():
        DDP._set_params_and_buffers_to_ignore_for_model(model, list(declared()))
    return DDP(model, device_ids=[device.index] if device.type == 'cuda' else None,
               find_unused_parameters=find_unused_choice(model, find_unused_parameters))
