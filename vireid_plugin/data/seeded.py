"""Items loaded under their own random seed.

``SeededItems(dataset)[(index, seed)]`` loads ``dataset[index]`` with Python's,
NumPy's and torch's global generators seeded from ``seed`` and restored
afterwards. The sampler gives every position of an epoch its seed
(``CrossModalIdentitySampler(item_seeds=True)``), so an item's random flip, crop,
erasing or frame choice depends on (run seed, epoch, position) only: the same
with 0 or 8 DataLoader workers, and the same after resuming mid-epoch. Loading
in the main process (``workers=0``) leaves the training generators untouched.
"""
import random
from contextlib import contextmanager

import numpy as np
import torch

from .wrapped import WrappedDataset

__all__ = ['SeededItems', 'seeded_rng', 'rng_state', 'set_rng_state', 'preserved_rng']


@contextmanager
def seeded_rng(seed):
    """Python, NumPy and torch (CPU) generators seeded from ``seed`` inside, restored after."""
    with preserved_rng():
        random.seed(seed)
        np.random.seed(seed % 2 ** 32)
        # the CPU generator only: torch.manual_seed also seeds every CUDA/MTIA/XPU
        # generator (lazily, recording a stack trace each time when a device is not
        # initialised), a cost per item that changes nothing an item's transform draws
        torch.default_generator.manual_seed(seed)
        yield


@contextmanager
def preserved_rng():
    """Whatever runs inside leaves Python's, NumPy's and torch's (CPU) generators as they were."""
    py, npy = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=[]):
        try:
            yield
        finally:
            random.setstate(py)
            np.random.set_state(npy)


def rng_state():
    """Every global generator's state (Python, NumPy, torch CPU and CUDA), for a checkpoint."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    # plain Python values: a weights_only checkpoint cannot hold NumPy arrays
    state = {'python': random.getstate(),
             'numpy': [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
             'torch': torch.get_rng_state()}
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    random.setstate(_tuples(state['python']))
    name, keys, pos, has_gauss, cached = state['numpy']
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def _tuples(value):
    """Checkpoints store tuples as lists on some paths; the RNG setters want tuples."""
    if isinstance(value, list):
        return tuple(_tuples(v) for v in value)
    return value


class SeededItems(WrappedDataset):
    """A dataset read with ``(index, seed)`` keys (see the module doc); other attributes
    (``train``, ``transform``, ...) are the wrapped dataset's."""

    def __getitem__(self, key):
        index, seed = key
        with seeded_rng(seed):
            return self.dataset[index]
