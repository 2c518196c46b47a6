"""Wall-clock timing of device work: the one device-sync helper of the benchmarks."""
import time

import torch

__all__ = ['synchronize', 'timed']


def synchronize(device):
    """Wait until ``device`` has run everything queued on it (a no-op on the CPU, whose
    kernels run when called)."""
    device = torch.device(device)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def timed(fn, device):
    """(``fn()``'s result, seconds from the call until ``device`` finished its work);
    work queued before the call is waited for first, outside the timing."""
    synchronize(device)
    start = time.perf_counter()
    result = fn()
    synchronize(device)
    return result, time.perf_counter() - start
