"""Mixed precision: which autocast dtype, and whether a GradScaler is needed."""
import contextlib

import torch

from ..config.loading import ConfigError


class Precision:
    """``amp`` in auto/bf16/fp16/off resolved for a device.

    auto = bf16 on a GPU that supports it (no loss scaling needed), fp16 on older
    GPUs, full precision on CPU (CPU autocast is slower than fp32 for these models).
    """

    def __init__(self, amp='auto', device=torch.device('cpu')):
        device = torch.device(device)
        on_gpu = device.type == 'cuda'
        if amp == 'auto':
            amp = ('bf16' if torch.cuda.is_bf16_supported() else 'fp16') if on_gpu else 'off'
        if amp not in ('bf16', 'fp16', 'off'):
            raise ConfigError("train.amp must be auto, bf16, fp16 or off, got {!r}".format(amp))
        if amp == 'fp16' and not on_gpu:
            raise ConfigError('train.amp fp16 needs a CUDA device (none is in use); use bf16 '
                              'or off on CPU')
        self.mode = amp
        self.device_type = device.type
        self.dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(amp)
        self.scaler = torch.amp.GradScaler('cuda') if amp == 'fp16' else None

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss):
        """Gradients of ``loss`` (scaled first when fp16 loss scaling is on)."""
        (self.scaler.scale(loss) if self.scaler is not None else loss).backward()

    def step(self, optimizer, params=None, grad_clip=0.0):
        """The optimizer step after :meth:`backward` (unscale and clip as configured)."""
        if self.scaler is not None:
            if grad_clip > 0:
                self.scaler.unscale_(optimizer)
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            self.scaler.step(optimizer)
            self.scaler.update()
        else:
            if grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            optimizer.step()

    def backward_step(self, loss, optimizer, params=None, grad_clip=0.0):
        self.backward(loss)
        self.step(optimizer, params, grad_clip)
