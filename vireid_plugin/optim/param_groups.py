"""Parameter groups from what each module declares.

A module (the model, a loss term with parameters) may define
- ``lr_multipliers()`` -> {parameter-name prefix: LR multiplier}; the longest
  matching prefix wins (MIP: prompt tables x5, instance-prompt generator x15);
- ``no_weight_decay()`` -> names or prefixes that get no weight decay (timm's
  convention: position/camera embeddings, class token, prompt tables).
With ``exempt_from_decay`` every 1-D parameter (norm weights, biases) gets no
weight decay either (timm's ``param_groups_weight_decay`` rule). Biases without a
declared multiplier get ``bias_lr_factor`` (TransReID / MIP: 2): a declared
multiplier replaces it, as in the MIP authors' optimizer. torchreid's
``staged_lr`` gives ``base_lr_mult`` to every parameter outside ``new_layers``.

Each group carries ``lr`` (= base lr x multiplier, so any scheduler that scales
per-group base values keeps the ratios), ``weight_decay``, and for logging
``lr_mult`` and ``group_name``.
"""
from collections import OrderedDict

__all__ = ['param_groups', 'named_trainable_parameters']


def _matching(name, prefixes):
    """The longest prefix in ``prefixes`` that ``name`` starts with (at a dot boundary)."""
    best = None
    for p in prefixes:
        if name == p or name.startswith(p if p.endswith('.') else p + '.'):
            if best is None or len(p) > len(best):
                best = p
    return best


def named_trainable_parameters(modules):
    """(module, name, parameter) of every parameter that requires grad, each once."""
    seen = set()
    for module in modules:
        for name, param in module.named_parameters():
            if param.requires_grad and id(param) not in seen:
                seen.add(id(param))
                yield module, name, param


def param_groups(modules, lr, weight_decay, bias_lr_factor=1.0, exempt_from_decay=True,
                 staged_lr=False, new_layers=(), base_lr_mult=1.0):
    """Optimizer parameter groups for ``modules`` (an nn.Module or a list of them)."""
    if not isinstance(modules, (list, tuple)):
        modules = [modules]
    declared = {}
    for module in modules:
        mults = module.lr_multipliers() if hasattr(module, 'lr_multipliers') else {}
        no_wd = set(module.no_weight_decay()) if hasattr(module, 'no_weight_decay') else set()
        declared[id(module)] = (dict(mults), no_wd)

    groups = OrderedDict()
    for module, name, param in named_trainable_parameters(modules):
        mults, no_wd = declared[id(module)]
        prefix = _matching(name, mults)
        if prefix is not None:
            mult, why = float(mults[prefix]), prefix
        elif name.endswith('bias') and bias_lr_factor != 1.0:
            mult, why = float(bias_lr_factor), 'bias'
        else:
            mult, why = 1.0, 'base'
        if staged_lr and _matching(name, new_layers) is None:
            mult, why = mult * base_lr_mult, why + '+staged'
        decay = weight_decay
        if exempt_from_decay and (param.ndim <= 1 or _matching(name, no_wd) is not None):
            decay = 0.0
        key = (mult, decay, why)
        if key not in groups:
            groups[key] = {'params': [], 'param_names': [], 'lr': lr * mult, 'lr_mult': mult,
                           'weight_decay': decay, 'group_name': why}
        groups[key]['params'].append(param)
        groups[key]['param_names'].append(name)
    return list(groups.values())
