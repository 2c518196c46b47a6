"""Several processes (DistributedDataParallel, gloo on the CPU): the rank-aware sampler, and
a 2-process run of scripts/main.py against a 1-process run with the same global batch."""
import glob
import json
import os

import pytest
import torch
import torch.multiprocessing as mp
import torch.nn as nn

from vireid_plugin import distributed
from vireid_plugin.data.sampler import CrossModalIdentitySampler
from vireid_plugin.models import register_model
from vireid_plugin.registry import MODELS
from vireid_plugin.runner import main as run_main

from tests.helpers import free_port, gloo_rank, synthetic_sysu

TOY = 'toy_ddp_linear'


# ---------------------------------------------------------------- sampler

def items(num_ids=10, per_modality=5):
    out = []
    for pid in range(num_ids):
        for m in (0, 1):
            out += [('x', pid, 0, 0, m)] * per_modality
    return out


def batches(sampler, size):
    flat = list(iter(sampler))
    return [flat[i:i + size] for i in range(0, len(flat), size)]


def test_ranks_take_disjoint_identity_blocks_whose_union_is_the_single_process_batch():
    data = items()
    pid_of = [it[1] for it in data]
    one = CrossModalIdentitySampler(data, 16, 2, seed=3, item_seeds=True)
    ranks = [CrossModalIdentitySampler(data, 16, 2, seed=3, item_seeds=True, num_replicas=2,
                                       rank=r) for r in range(2)]
    assert [len(s) for s in ranks] == [len(one) // 2] * 2
    for epoch in (0, 1):
        for s in [one] + ranks:
            s.set_epoch(epoch)
        full = batches(one, 16)
        parts = [batches(s, 8) for s in ranks]
        assert len(full) == len(parts[0]) == len(parts[1]) == one.num_batches
        for b, p0, p1 in zip(full, *parts):
            # rank 0 the first 2 ids (K + K items each), rank 1 the next 2; item seeds too
            assert p0 + p1 == b
            ids0, ids1 = {pid_of[i] for i, _ in p0}, {pid_of[i] for i, _ in p1}
            assert len(ids0) == len(ids1) == 2 and not ids0 & ids1
    # resuming rank 1 after 3 of its batches continues its own stream
    ranks[1].set_start(3 * 8)
    assert list(iter(ranks[1])) == [x for b in parts[1][3:] for x in b]


def test_sampler_refuses_a_batch_the_processes_cannot_split():
    with pytest.raises(ValueError, match='P to be a multiple of 2'):
        CrossModalIdentitySampler(items(), 12, 2, seed=0, num_replicas=2, rank=0)
    with pytest.raises(ValueError, match='need a seed'):
        CrossModalIdentitySampler(items(), 16, 2, num_replicas=2, rank=1)


def test_single_process_helpers_are_no_ops():
    x = torch.arange(6.).reshape(3, 2)
    assert not distributed.is_distributed() and distributed.is_main()
    assert distributed.all_gather_rows(x, 3) is x
    info = distributed.init_distributed(use_gpu=False, env={})
    assert (info.rank, info.world_size, info.device.type) == (0, 1, 'cpu')
    assert [distributed.shard_range(7, r, 3) for r in range(3)] == [(0, 2), (2, 4), (4, 7)]
    model = nn.Linear(2, 2)
    assert distributed.wrap_model(model, 'cpu') is model


# ---------------------------------------------------------------- 2 processes vs 1

class ToyReID(nn.Module):
    """No BatchNorm and no dropout: the mean loss of two half batches is the loss of the
    whole batch, so DDP must reproduce the single-process run up to float rounding."""

    def __init__(self, num_classes):
        super().__init__()
        self.embed = nn.Linear(3 * 4 * 2, 16)
        self.head = nn.Linear(16, num_classes)

    def forward(self, x, modality=None, camid=None, named_outputs=False):
        f = self.embed(nn.functional.adaptive_avg_pool2d(x, (4, 2)).flatten(1))
        if not self.training:
            return f
        # torchreid's contract unless asked: the dict proves DDP passed the keyword through
        return {'features': f, 'logits': self.head(f)} if named_outputs else self.head(f)


def register_toy():
    if TOY not in MODELS:
        register_model(TOY)(lambda num_classes, **_: ToyReID(num_classes))


def argv(root, save_dir, max_epoch=1, print_freq=1):
    """scripts/main.py's arguments for the toy model on a ``toy_root`` tree (also the
    torchrun tests' workers)."""
    return ['--root', root, 'data.save_dir', save_dir, 'model.name', TOY,
            'model.pretrained', 'False', 'data.synthetic', 'True', 'data.workers', '0',
            'data.height', '32', 'data.width', '16', 'data.transforms', '[random_flip]',
            'loss.terms', '[id]', 'loss.weights', '[1.0]', 'train.optim', 'sgd',
            'train.lr', '0.5', 'train.batch_size', '16', 'sampler.num_instances', '2',
            'train.max_epoch', str(max_epoch), 'train.print_freq', str(print_freq),
            'train.warmup_epochs', '0', 'test.num_trials', '1']


def _worker(rank, world, port, args, errors):
    gloo_rank(rank, port, world)
    register_toy()
    try:
        rc = run_main(args)
    except BaseException as exc:   # reported by the parent
        errors.put('rank {}: {!r}'.format(rank, exc))
        raise
    if rc != 0:
        errors.put('rank {}: exit status {}'.format(rank, rc))


def scalars(save_dir, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    files = glob.glob(os.path.join(save_dir, 'events.out.tfevents.*'))
    assert len(files) == 1, files          # one writer: rank 0
    acc = EventAccumulator(files[0])
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


@pytest.fixture(scope='module')
def toy_root(tmp_path_factory):
    return synthetic_sysu(tmp_path_factory, 8, 2, 4, size=(32, 16), name='ddp_sysu')


def test_two_gloo_processes_follow_the_single_process_loss_curve(toy_root, tmp_path,
                                                                 monkeypatch):
    for key in ('RANK', 'WORLD_SIZE', 'LOCAL_RANK'):
        monkeypatch.delenv(key, raising=False)
    register_toy()
    try:
        single = str(tmp_path / 'single')
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            assert run_main(argv(toy_root, single)) == 0
        finally:
            torch.set_num_threads(threads)
        double = str(tmp_path / 'double')
        ctx = mp.get_context('spawn')
        errors = ctx.SimpleQueue()
        mp.start_processes(_worker, args=(2, free_port(), argv(toy_root, double), errors),
                           nprocs=2, join=True, start_method='spawn')
        assert errors.empty(), errors.get()
    finally:
        MODELS._table.pop(TOY, None)

    one, two = scalars(single, 'Train/loss'), scalars(double, 'Train/loss')
    a = torch.load(os.path.join(single, 'model', 'model.pth.tar-1'), weights_only=True)
    b = torch.load(os.path.join(double, 'model', 'model.pth.tar-1'), weights_only=True)
    # every step of the epoch logged (print_freq 1), one global batch each
    steps = list(range(1, a['schedule']['iterations per epoch'] + 1))
    assert len(steps) >= 4 and [s for s, _ in one] == [s for s, _ in two] == steps
    assert one[-1][1] < one[0][1] - 0.05           # the curve moves: the run learns
    for (_, loss_one), (_, loss_two) in zip(one, two):
        assert loss_two == pytest.approx(loss_one, rel=1e-4, abs=1e-5)

    # rank 0 alone writes: one log, one results record per evaluation, plain state_dict keys
    assert len(glob.glob(os.path.join(double, 'train.log-*'))) == 1
    with open(os.path.join(single, 'results.json')) as f:
        rows_one = json.load(f)
    with open(os.path.join(double, 'results.json')) as f:
        rows_two = json.load(f)
    assert len(rows_two) == len(rows_one) == 1
    # evaluation: each rank extracted half of the pool, gathered in pool order
    for key in ('R1', 'mAP', 'mINP'):
        assert rows_two[0]['rows'][0][key] == pytest.approx(rows_one[0]['rows'][0][key], abs=0.01)
    assert set(b['state_dict']) == set(a['state_dict']) == {'embed.weight', 'embed.bias',
                                                            'head.weight', 'head.bias'}
    for k, v in a['state_dict'].items():
        assert torch.allclose(b['state_dict'][k], v, atol=1e-5), k
