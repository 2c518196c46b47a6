"""distributed.all_reduce_grads: 2 gloo processes take the single-process step, also when a
loss term skips its parameters on some ranks or on all of them (SGD with momentum and
weight decay would move a parameter whose missing gradient became a zero)."""
import importlib
import os
import sys
import types

import torch
import torch.multiprocessing as mp
import torch.nn as nn

from tests.helpers import REPO, free_port, gloo_rank
LR, MOMENTUM, DECAY = 0.1, 0.9, 0.05


def distributed_module():
    """vireid_plugin/distributed.py itself (it needs torch and errors.py only): the spawned
    processes load it under a bare stand-in package, without the package's __init__ and its
    registrations (torchreid, timm, open_clip), seconds each."""
    name = 'vireid_distributed_under_test'
    if name not in sys.modules:
        package = types.ModuleType(name)
        package.__path__ = [os.path.join(REPO, 'vireid_plugin')]
        sys.modules[name] = package
    return importlib.import_module(name + '.distributed')


def build():
    torch.manual_seed(0)
    parts = nn.ModuleDict({'model': nn.Linear(4, 3),      # every step, every rank
                           'some': nn.Linear(4, 1),       # only items flagged special
                           'never': nn.Linear(4, 2)})     # its term is off: never used
    opt = torch.optim.SGD(parts.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=DECAY)
    return parts, opt


def data():
    """Two global batches of 8 items. Batch 1: only items 0..3 (rank 0's half) are special;
    batch 2: none is."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 8, 4, generator=g)
    y = torch.randint(3, (2, 8), generator=g)
    special = torch.zeros(2, 8, dtype=torch.bool)
    special[0, :3] = True
    return x, y, special


def loss_of(parts, x, y, special):
    """Batch means; the 'some' term is skipped (its parameters untouched) when no item of
    the batch is special, as loss terms with heads do."""
    n = len(x)
    loss = nn.functional.cross_entropy(parts['model'](x), y)
    if special.any():
        loss = loss + parts['some'](x[special]).pow(2).sum() / n
    return loss


def train(parts, opt, shard=None, reduce=None):
    x, y, special = data()
    for step in range(2):
        lo, hi = shard or (0, 8)
        opt.zero_grad(set_to_none=True)
        loss_of(parts, x[step, lo:hi], y[step, lo:hi], special[step, lo:hi]).backward()
        if reduce is not None:
            reduce(list(parts.parameters()))
        opt.step()
    return {k: v.detach().clone() for k, v in parts.state_dict().items()}


def _rank(rank, port, out):
    gloo_rank(rank, port)
    dist_mod = distributed_module()
    dist_mod.init_distributed(use_gpu=False)
    try:
        parts, opt = build()
        state = train(parts, opt, shard=(4 * rank, 4 * rank + 4),
                      reduce=dist_mod.all_reduce_grads)
        torch.save(state, os.path.join(out, 'rank{}.pt'.format(rank)))
    finally:
        dist_mod.shutdown()


def test_two_ranks_take_the_single_process_step_when_terms_skip_parameters(tmp_path,
                                                                           monkeypatch):
    for key in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK'):
        monkeypatch.delenv(key, raising=False)
    parts, opt = build()
    init = {k: v.detach().clone() for k, v in parts.state_dict().items()}
    single = train(parts, opt)
    parts, opt = build()
    x, y, special = data()
    opt.zero_grad(set_to_none=True)
    loss_of(parts, x[0], y[0], special[0]).backward()
    opt.step()
    after_first = {k: v.detach().clone() for k, v in parts.state_dict().items()}

    # what one process does, by SGD's definition: a parameter without a gradient is skipped
    for k in ('never.weight', 'never.bias'):
        assert torch.equal(single[k], init[k])
    for k in ('some.weight', 'some.bias'):   # moved in step 1, untouched in step 2
        assert not torch.equal(after_first[k], init[k])
        assert torch.equal(single[k], after_first[k])

    mp.start_processes(_rank, args=(free_port(), str(tmp_path)), nprocs=2, join=True,
                       start_method='spawn')
    for rank in range(2):
        state = torch.load(str(tmp_path / 'rank{}.pt'.format(rank)), weights_only=True)
        assert set(state) == set(single)
        for k, v in single.items():
            # 'some' had a gradient on rank 0 only in step 1: sum / 2 is the union's gradient
            assert torch.allclose(state[k], v, atol=1e-6), (rank, k)
        for k in ('never.weight', 'never.bias'):
            assert torch.equal(state[k], init[k]), (rank, k)   # no decay, no momentum


def test_zero_filled_gradients_would_move_the_parameters_the_fix_keeps():
    """The fault the fix removes, shown on one process: a zero gradient in place of None
    lets weight decay and momentum move the parameter."""
    parts, opt = build()
    before = parts['never'].weight.detach().clone()
    parts['never'].weight.grad = torch.zeros_like(parts['never'].weight)
    opt.step()
    # SGD: p <- p - lr * (0 + decay * p): a shrink by (1 - lr * decay)
    assert torch.allclose(parts['never'].weight, before * (1 - LR * DECAY))
    assert not torch.equal(parts['never'].weight, before)


def test_single_process_all_reduce_grads_leaves_gradients_alone():
    dist_mod = distributed_module()
    p, q = nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(2))
    p.grad = torch.full((2,), 3.0)
    dist_mod.all_reduce_grads([p, q])
    assert torch.equal(p.grad, torch.full((2,), 3.0)) and q.grad is None

