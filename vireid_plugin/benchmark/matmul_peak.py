"""The device's dense matmul peak, measured (the denominator of MFU)."""
import time

import torch

__all__ = ['matmul_peak']


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def matmul_peak(device, dtype=torch.bfloat16, size=None, min_seconds=0.5):
    """FLOP/s of ``size`` x ``size`` matmuls in ``dtype`` (2 n^3 FLOPs each), best of runs.

    ``size`` defaults to 8192 on a GPU and 1024 on CPU.
    """
    device = torch.device(device)
    n = size or (8192 if device.type == 'cuda' else 1024)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    torch.mm(a, b)   # warm-up (kernel selection)
    _sync(device)
    best, spent, reps = 0.0, 0.0, 1
    while spent < min_seconds:
        start = time.perf_counter()
        for _ in range(reps):
            torch.mm(a, b)
        _sync(device)
        sec = time.perf_counter() - start
        spent += sec
        best = max(best, 2 * n ** 3 * reps / sec)
        reps *= 2
    return {'dtype': str(dtype).replace('torch.', ''), 'size': n, 'flops': best}
