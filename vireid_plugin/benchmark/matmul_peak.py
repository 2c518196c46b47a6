"""The device's dense matmul peak, measured (the denominator of MFU)."""
import torch

from .timing import timed

__all__ = ['matmul_peak']


def _matmuls(a, b, reps):
    for _ in range(reps):
        torch.mm(a, b)


def matmul_peak(device, dtype=torch.bfloat16, size=None, min_seconds=0.5):
    """FLOP/s of ``size`` x ``size`` matmuls in ``dtype`` (2 n^3 FLOPs each), best of runs.

    ``size`` defaults to 8192 on a GPU and 1024 on CPU.
    """
    device = torch.device(device)
    n = size or (8192 if device.type == 'cuda' else 1024)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    torch.mm(a, b)   # warm-up (kernel selection), waited for by the first timing
    best, spent, reps = 0.0, 0.0, 1
    while spent < min_seconds:
        _, sec = timed(lambda: _matmuls(a, b, reps), device)
        spent += sec
        best = max(best, 2 * n ** 3 * reps / sec)
        reps *= 2
    return {'dtype': str(dtype).replace('torch.', ''), 'size': n, 'flops': best}
