"""CUDA random streams per rank (issues 28.4 and 25.7), on the CPU: CPU ``torch.Generator``
objects stand in for the CUDA default generators of a fake device list. Each rank seeds
its own stream (seed + rank) and the CPU streams stay shared; a checkpoint holds every
rank's CUDA state and each rank restores its own, also on a node that shows each process
fewer GPUs than the writer's did."""
import random

import numpy as np
import torch

from vireid_plugin.data.seeded import cuda_rng_states, rng_state, seed_cuda, set_rng_state

CUDA0, CUDA1 = torch.device('cuda', 0), torch.device('cuda', 1)


def fake_gpus(n):
    return [torch.Generator() for _ in range(n)]


def draws(gen):
    return torch.rand(4, generator=gen)


def test_each_rank_seeds_its_own_cuda_stream_and_leaves_the_cpu_ones_alone():
    cpu_before = torch.get_rng_state()
    gpus = fake_gpus(2)                       # one node, rank r on GPU r
    seed_cuda(7, 0, CUDA0, gpus)
    seed_cuda(7, 1, CUDA1, gpus)
    assert gpus[0].initial_seed() == 7        # rank 0 (and a 1-GPU run): the seed itself
    assert gpus[1].initial_seed() == 8
    assert not torch.equal(draws(gpus[0]), draws(gpus[1]))
    assert torch.equal(torch.get_rng_state(), cpu_before)
    seed_cuda(7, 3, torch.device('cpu'), gpus)   # CPU runs: nothing to seed
    assert gpus[0].initial_seed() == 7


def test_each_rank_restores_its_own_cuda_stream():
    gpus = fake_gpus(2)
    for rank in (0, 1):
        seed_cuda(3, rank, torch.device('cuda', rank), gpus)
        draws(gpus[rank])                     # training moved each stream along
    saved = [g.get_state() for g in gpus]     # what cuda_rng_states gathers at a save
    expected = [draws(torch.Generator().set_state(s)) for s in saved]
    state = rng_state(saved)
    # resume on another node where each process sees one GPU (index 0)
    for rank in (0, 1):
        mine = fake_gpus(1)
        assert set_rng_state(state, rank, 2, CUDA0, mine) is None
        assert torch.equal(draws(mine[0]), expected[rank])


def test_a_checkpoint_of_an_eight_gpu_process_resumes_where_one_gpu_is_visible():
    """Older checkpoints hold the writing process's state of every GPU it saw; a process
    that sees one GPU takes its device's entry (before: IndexError)."""
    old = fake_gpus(8)
    for i, g in enumerate(old):
        g.manual_seed(100 + i)
    state = rng_state()
    state['cuda'] = [g.get_state() for g in old]
    mine = fake_gpus(1)
    assert set_rng_state(state, 0, 1, CUDA0, mine) is None
    assert torch.equal(draws(mine[0]), draws(torch.Generator().manual_seed(100)))


def test_another_process_count_keeps_the_seeded_stream_and_says_so():
    state = rng_state([torch.Generator().manual_seed(s).get_state() for s in (1, 2)])
    mine = fake_gpus(1)
    seed_cuda(5, 2, CUDA0, mine)
    note = set_rng_state(state, 2, 4, CUDA0, mine)
    assert '2 process(es)' in note and 'this run has 4' in note
    assert mine[0].initial_seed() == 7


def test_the_cpu_generators_round_trip_as_before():
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    state = rng_state()
    expected = (random.random(), float(np.random.rand()), float(torch.rand(())))
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    assert set_rng_state(state) is None       # no CUDA here: nothing else to restore
    assert (random.random(), float(np.random.rand()), float(torch.rand(()))) == expected
    assert 'cuda_per_rank' not in state and cuda_rng_states(torch.device('cpu')) is None


def test_one_process_gathers_its_own_state():
    gpus = fake_gpus(2)
    gpus[1].manual_seed(11)
    states = cuda_rng_states(CUDA1, gpus)
    assert len(states) == 1 and torch.equal(states[0], gpus[1].get_state())
