"""Per-item seeding (data/seeded.py): an item's draws come from its seed alone, the
training generators are left as they were, and no other device's generator is touched."""
import random

import numpy as np
import pytest
import torch

from vireid_plugin.data.seeded import seeded_rng


def test_draws_inside_follow_the_seed_and_outside_state_is_restored():
    torch.manual_seed(123)
    random.seed(5)
    np.random.seed(7)
    expected_outside = (torch.rand(3), random.random(), np.random.rand())
    torch.manual_seed(123)
    random.seed(5)
    np.random.seed(7)
    seed = 2 ** 40 + 17
    with seeded_rng(seed):
        inside = (torch.rand(3), random.random(), np.random.rand())
    # independent definitions of "seeded from seed": fresh generators of each library
    assert torch.equal(inside[0], torch.rand(3, generator=torch.Generator().manual_seed(seed)))
    assert inside[1] == random.Random(seed).random()
    assert inside[2] == np.random.RandomState(seed % 2 ** 32).rand()
    outside = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(outside[0], expected_outside[0])
    assert outside[1:] == expected_outside[1:]


def test_no_other_device_generator_is_seeded(monkeypatch):
    # torch.manual_seed would seed CUDA, MTIA and XPU too (lazily, recording a stack trace
    # per call when the device is not initialised): an item must not pay for that
    def forbidden(*args, **kwargs):
        raise AssertionError('a non-CPU generator was seeded')
    for module in (torch.cuda, getattr(torch, 'mtia', None), getattr(torch, 'xpu', None)):
        if module is None:
            continue
        for name in ('manual_seed', 'manual_seed_all'):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, forbidden)
    with seeded_rng(3):
        a = torch.rand(2)
    with seeded_rng(3):
        b = torch.rand(2)
    assert torch.equal(a, b)


@pytest.mark.parametrize('seed', [0, 1, 2 ** 32 + 1])
def test_the_same_seed_gives_the_same_draws(seed):
    with seeded_rng(seed):
        first = (torch.randint(0, 1000, (4,)), random.random(), np.random.rand())
    with seeded_rng(seed):
        second = (torch.randint(0, 1000, (4,)), random.random(), np.random.rand())
    assert torch.equal(first[0], second[0]) and first[1:] == second[1:]
