"""Optimizers by name, built by timm's optimizer factory over declared parameter groups.

The names are torchreid's (``train.optim``: sgd, adam, amsgrad, rmsprop, radam)
plus ``adamw``. torchreid's ``build_optimizer`` has no AdamW and no per-group
multipliers, hence this module. Each name maps onto a timm optimizer name and
its keywords; timm's "sgd" is Nesterov, so plain momentum SGD is timm's "momentum".

Implementation by device (``device=``): on CUDA, the optimizers PyTorch offers a fused
kernel for (SGD, Adam, AdamW, AMSGrad: :data:`FUSED`) are built with ``fused=True``
(one kernel per step over every parameter, and AMP loss scaling without a host sync);
otherwise ``foreach=True`` (multi-tensor) is used. The update is the same either way.
"""
import torch
from timm.optim import create_optimizer_v2

from ..registry import OPTIMIZERS
from .param_groups import param_groups

__all__ = ['build_optimizer', 'FUSED', 'implementation', 'place_state']

#: train.optim names that PyTorch implements as a fused kernel on CUDA
FUSED = frozenset({'sgd', 'adam', 'adamw', 'amsgrad'})


@OPTIMIZERS.register('sgd')
def _sgd(momentum=0.9, sgd_dampening=0.0, sgd_nesterov=False, **_):
    return ('nesterov' if sgd_nesterov else 'momentum'), dict(momentum=momentum,
                                                              dampening=sgd_dampening)


@OPTIMIZERS.register('adam')
def _adam(adam_beta1=0.9, adam_beta2=0.999, **_):
    return 'adam', dict(betas=(adam_beta1, adam_beta2))


@OPTIMIZERS.register('adamw')
def _adamw(adam_beta1=0.9, adam_beta2=0.999, **_):
    return 'adamw', dict(betas=(adam_beta1, adam_beta2))


@OPTIMIZERS.register('amsgrad')
def _amsgrad(adam_beta1=0.9, adam_beta2=0.999, **_):
    return 'adam', dict(betas=(adam_beta1, adam_beta2), amsgrad=True)


@OPTIMIZERS.register('rmsprop')
def _rmsprop(momentum=0.9, rmsprop_alpha=0.99, **_):
    return 'rmsprop', dict(momentum=momentum, alpha=rmsprop_alpha)


@OPTIMIZERS.register('radam')
def _radam(adam_beta1=0.9, adam_beta2=0.999, **_):
    return 'radam', dict(betas=(adam_beta1, adam_beta2))


def implementation(optim, device=None):
    """``{'fused': True}`` for an optimizer with a fused kernel on a CUDA ``device``,
    else ``{'foreach': True}``. ``device`` defaults to where the parameters will be
    (pass it: ``build_optimizer`` is called after the model moved)."""
    device = torch.device(device if device is not None else 'cpu')
    if device.type == 'cuda' and optim in FUSED:
        return {'fused': True}
    return {'foreach': True}


def build_optimizer(modules, optim='sgd', lr=0.01, weight_decay=5e-4, bias_lr_factor=1.0,
                    exempt_from_decay=True, staged_lr=False, new_layers=(), base_lr_mult=1.0,
                    device=None, **optim_kwargs):
    """An optimizer over the trainable parameters of ``modules`` (model, loss terms).

    ``optim_kwargs``: momentum, sgd_dampening, sgd_nesterov, rmsprop_alpha,
    adam_beta1, adam_beta2 (torchreid's names); each optimizer takes what it uses.
    ``device``: where the parameters live (default: the first parameter's device);
    it picks the fused (CUDA) or foreach implementation, see :func:`implementation`.
    """
    timm_name, kwargs = OPTIMIZERS.get(optim)(**optim_kwargs)
    groups = param_groups(modules, lr, weight_decay, bias_lr_factor=bias_lr_factor,
                          exempt_from_decay=exempt_from_decay, staged_lr=staged_lr,
                          new_layers=new_layers, base_lr_mult=base_lr_mult)
    if not groups:
        raise ValueError('build_optimizer: no trainable parameters')
    momentum = kwargs.pop('momentum', 0.)
    if device is None:
        device = groups[0]['params'][0].device
    kwargs.update(implementation(optim, device))
    return create_optimizer_v2(groups, opt=timm_name, lr=lr, weight_decay=weight_decay,
                               momentum=momentum, **kwargs)


def place_state(optimizer):
    """Put every state tensor where this optimizer's implementation reads it, after a
    ``load_state_dict`` of a checkpoint another device or implementation wrote.

    torch's ``load_state_dict`` places ``state['step']`` by the *saved* groups' flags: a
    CPU (foreach) checkpoint leaves it on the CPU, where a fused or capturable CUDA kernel
    would read a host pointer (an illegal memory access at the first step), and a fused
    checkpoint puts it on the device, where the foreach path syncs for it every step.
    This applies the rule to the groups as they are now: ``step`` as float32 on the
    parameter's device for fused/capturable groups, on the CPU otherwise; every other
    tensor on the parameter's device (floating ones in its dtype)."""
    for group in optimizer.param_groups:
        on_device = bool(group.get('fused') or group.get('capturable'))
        for p in group['params']:
            state = optimizer.state.get(p)
            if not state:
                continue
            for key, value in state.items():
                if not torch.is_tensor(value):
                    continue
                if key == 'step':
                    state[key] = value.to(dtype=torch.float32,
                                          device=p.device if on_device else 'cpu')
                elif value.is_floating_point():
                    state[key] = value.to(dtype=p.dtype, device=p.device)
                else:
                    state[key] = value.to(device=p.device)
