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

from .. import distributed
from .wrapped import WrappedDataset

__all__ = ['SeededItems', 'seeded_rng', 'rng_state', 'set_rng_state', 'preserved_rng',
           'seed_cuda', 'cuda_rng_states']


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


def _cuda_generator(device, generators=None):
    """The default CUDA generator of ``device`` (its index, else the current device), or
    None when ``device`` is not a CUDA device. ``generators`` replaces
    ``torch.cuda.default_generators`` (tests: a fake device list)."""
    device = torch.device(device) if device is not None else None
    if device is None or device.type != 'cuda':
        return None
    if generators is None:
        torch.cuda.init()   # default_generators is filled when CUDA initialises
        generators = torch.cuda.default_generators
    index = device.index if device.index is not None else torch.cuda.current_device()
    return generators[index]


def seed_cuda(seed, rank, device, generators=None):
    """Seed this process's CUDA generator (``device``'s) with ``seed + rank``: each rank of
    a torchrun job draws its own dropout / drop-path masks (rank 0, and a one-process run,
    keep ``seed`` itself). The CPU generators are not touched: they drive the sampler and
    the per-item seeds, which every rank must share."""
    gen = _cuda_generator(device, generators)
    if gen is not None:
        gen.manual_seed(int(seed) + int(rank))


def cuda_rng_states(device, generators=None):
    """Every rank's CUDA generator state (each rank's own device), in rank order: a
    collective under torchrun (every rank calls it), ``[state]`` for one process, None
    off CUDA."""
    gen = _cuda_generator(device, generators)
    if gen is None:
        return None
    return distributed.gather_objects(gen.get_state())


def rng_state(cuda_states=None):
    """Every global generator's state for a checkpoint: Python, NumPy, torch CPU and, as
    ``cuda_per_rank``, ``cuda_states`` (:func:`cuda_rng_states`: one per rank)."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    # plain Python values: a weights_only checkpoint cannot hold NumPy arrays
    state = {'python': random.getstate(),
             'numpy': [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
             'torch': torch.get_rng_state()}
    if cuda_states is not None:
        state['cuda_per_rank'] = list(cuda_states)
    return state


def set_rng_state(state, rank=0, world_size=1, device=None, generators=None):
    """Restore ``state`` (:func:`rng_state`) in rank ``rank`` of ``world_size`` processes
    whose CUDA generator is ``device``'s (None: the current device once CUDA is
    initialised). Returns a note when this rank's CUDA stream could not be restored
    (another process count, a checkpoint without CUDA state): it then goes on from the
    seed of this run. Checkpoints of older versions (``cuda``: the writing process's
    state of every device it saw) restore this device's entry when it exists."""
    random.setstate(_tuples(state['python']))
    name, keys, pos, has_gauss, cached = state['numpy']
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state['torch'])
    if device is None and torch.cuda.is_available() and torch.cuda.is_initialized():
        device = torch.device('cuda', torch.cuda.current_device())
    gen = _cuda_generator(device, generators)
    if gen is None:
        return None
    per_rank = state.get('cuda_per_rank')
    if per_rank is not None:
        if len(per_rank) == world_size and per_rank[rank] is not None:
            gen.set_state(per_rank[rank])
            return None
        return ('the checkpoint holds the CUDA random state of {} process(es), this run has {}: '
                'rank {} continues its CUDA stream from the seed'.format(
                    len(per_rank), world_size, rank))
    legacy = state.get('cuda')
    index = torch.device(device).index or 0
    if legacy is not None and index < len(legacy):
        gen.set_state(legacy[index])
        return None
    return 'the checkpoint holds no CUDA random state for this device'


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
