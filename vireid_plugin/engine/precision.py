"""Mixed precision: which autocast dtype, and whether a GradScaler is needed."""
import contextlib

import torch

from ..config.loading import ConfigError


#: the first compute capability with bf16 tensor cores (Ampere)
NATIVE_BF16_CAPABILITY = (8, 0)


def native_bf16(device):
    """Whether CUDA ``device`` computes bf16 natively (compute capability >= 8.0)."""
    device = torch.device(device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return tuple(torch.cuda.get_device_capability(index)) >= NATIVE_BF16_CAPABILITY


def prompt_stage_precision(amp, device):
    """The precision of LSMRL's prompt-only stage: ``amp`` as training resolves it, except
    fp16, which the stage (no GradScaler) would underflow: fp32 there."""
    precision = Precision(amp, device)
    return Precision('off', device) if precision.mode == 'fp16' else precision


class Precision:
    """``amp`` in auto/bf16/fp16/off resolved for a device.

    auto = bf16 on a GPU with native bf16 (compute capability 8.0 and newer: A100, RTX 30xx,
    H100; no loss scaling needed), fp16 with a GradScaler on older GPUs (T4, V100,
    RTX 20xx: they run bf16 only by emulation, without tensor cores, and SDPA falls back
    to its math kernel), full precision on CPU (CPU autocast is slower than fp32 for
    these models). ``torch.cuda.is_bf16_supported()`` is not the test: by default it
    counts emulation and answers True on a T4.

    ``tf32`` (with ``amp`` off, e.g. evaluation): whether fp32 matmuls and convolutions
    inside :meth:`autocast` may run as TF32 on Ampere and newer GPUs (10-bit mantissa
    inputs: features about 4e-4 relative off). True/False set it inside the context,
    whatever the global setting (the runner allows TF32 for training); None (training's
    default) leaves the global setting. ``label`` names what the context computes in
    ('fp32', 'tf32', 'bf16', 'fp16').
    """

    def __init__(self, amp='auto', device=torch.device('cpu'), tf32=None):
        device = torch.device(device)
        on_gpu = device.type == 'cuda'
        if amp == 'auto':
            amp = ('bf16' if native_bf16(device) else 'fp16') if on_gpu else 'off'
        if amp not in ('bf16', 'fp16', 'off'):
            raise ConfigError("train.amp must be auto, bf16, fp16 or off, got {!r}".format(amp))
        if amp == 'fp16' and not on_gpu:
            raise ConfigError('train.amp fp16 needs a CUDA device (none is in use); use bf16 '
                              'or off on CPU')
        self.mode = amp
        self.device_type = device.type
        self.dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(amp)
        self.scaler = torch.amp.GradScaler('cuda') if amp == 'fp16' else None
        self.tf32 = None if tf32 is None else bool(tf32)

    @property
    def label(self):
        if self.dtype is not None:
            return self.mode
        tf32 = torch.backends.cuda.matmul.allow_tf32 if self.tf32 is None else self.tf32
        return 'tf32' if tf32 and self.device_type == 'cuda' else 'fp32'

    def autocast(self):
        if self.dtype is None:
            return tf32_allowed(self.tf32) if self.tf32 is not None \
                else contextlib.nullcontext()
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


@contextlib.contextmanager
def tf32_allowed(allowed):
    """Inside: CUDA fp32 matmuls and cuDNN convolutions use TF32 iff ``allowed``; the
    global settings are restored on leaving (no effect on CPU computations)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = bool(allowed)
    torch.backends.cudnn.allow_tf32 = bool(allowed)
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved
