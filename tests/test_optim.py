"""Parameter groups declared by the model, optimizers and schedulers by name."""
import math

import pytest
import torch
import torch.nn as nn

from vireid_plugin.optim import build_lr_scheduler, build_optimizer, param_groups


class Declaring(nn.Module):
    """A model with a prompt table, a generator, a norm and a linear layer."""

    def __init__(self):
        super().__init__()
        self.prompts = nn.Parameter(torch.zeros(2, 3, 4))
        self.generator = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.fc = nn.Linear(4, 2)
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)

    def lr_multipliers(self):
        return {'prompts': 5.0, 'generator': 15.0}

    def no_weight_decay(self):
        return {'prompts'}


class Head(nn.Module):  # a loss term with parameters
    def __init__(self):
        super().__init__()
        self.classifier = nn.Linear(4, 3, bias=False)


def lookup(groups):
    """{parameter name: (lr, weight_decay)}."""
    return {n: (g['lr'], g['weight_decay']) for g in groups for n in g['param_names']}


def test_declared_multipliers_and_decay_exemptions():
    groups = lookup(param_groups([Declaring(), Head()], lr=0.01, weight_decay=1e-4,
                                 bias_lr_factor=2.0))
    assert groups == {
        'prompts': (0.05, 0.0),                # x5, in no_weight_decay()
        'generator.weight': (0.15, 1e-4),      # x15
        'generator.bias': (0.15, 0.0),         # declared multiplier replaces the bias factor
        'norm.weight': (0.01, 0.0), 'norm.bias': (0.02, 0.0),  # 1-D: no decay; bias x2
        'fc.weight': (0.01, 1e-4), 'fc.bias': (0.02, 0.0),
        'classifier.weight': (0.01, 1e-4),     # the loss term's parameter is optimised too
    }                                          # frozen.* absent: requires_grad False


def test_without_exemption_everything_decays_as_mip_authors_do():
    groups = lookup(param_groups(Declaring(), lr=0.01, weight_decay=1e-4, bias_lr_factor=2.0,
                                 exempt_from_decay=False))
    assert all(wd == 1e-4 for _, wd in groups.values())
    assert groups['norm.bias'] == (0.02, 1e-4)


def test_staged_lr_scales_old_layers():
    groups = lookup(param_groups(Declaring(), lr=0.1, weight_decay=0., staged_lr=True,
                                 new_layers=['fc'], base_lr_mult=0.1))
    assert groups['fc.weight'][0] == pytest.approx(0.1)
    assert groups['norm.weight'][0] == pytest.approx(0.01)
    assert groups['prompts'][0] == pytest.approx(0.05)   # 0.1 x 5 x 0.1


def test_longest_prefix_wins_and_matches_whole_names():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Module()
            self.a.b = nn.Linear(1, 1, bias=False)
            self.a.c = nn.Linear(1, 1, bias=False)
            self.ab = nn.Linear(1, 1, bias=False)

        def lr_multipliers(self):
            return {'a': 2.0, 'a.b': 3.0}

    groups = lookup(param_groups(M(), lr=1.0, weight_decay=0.))
    assert groups['a.b.weight'][0] == 3.0 and groups['a.c.weight'][0] == 2.0
    assert groups['ab.weight'][0] == 1.0   # 'a' is not a prefix of 'ab.' at a dot boundary


@pytest.mark.parametrize('name,cls', [('sgd', torch.optim.SGD), ('adamw', torch.optim.AdamW),
                                      ('adam', torch.optim.Adam)])
def test_per_group_rates_reach_the_optimizer(name, cls):
    model = Declaring()
    opt = build_optimizer([model], optim=name, lr=0.01, weight_decay=1e-4, momentum=0.9)
    assert isinstance(opt, cls)
    by_param = {id(p): g for g in opt.param_groups for p in g['params']}
    assert by_param[id(model.generator.weight)]['lr'] == pytest.approx(0.15)
    assert by_param[id(model.prompts)]['lr'] == pytest.approx(0.05)
    assert by_param[id(model.prompts)]['weight_decay'] == 0.0
    assert by_param[id(model.fc.weight)]['weight_decay'] == 1e-4
    if name == 'sgd':  # torchreid's sgd is plain momentum SGD, not timm's Nesterov default
        assert by_param[id(model.fc.weight)]['momentum'] == 0.9
        assert by_param[id(model.fc.weight)]['nesterov'] is False


def test_sgd_step_uses_the_group_rate():
    model = Declaring()
    opt = build_optimizer([model], optim='sgd', lr=0.01, weight_decay=0., momentum=0.0)
    before = model.generator.weight.detach().clone()
    model.generator.weight.grad = torch.ones_like(before)
    opt.step()
    torch.testing.assert_close(model.generator.weight.detach(), before - 0.15)


def mip_lr(t, base=0.01, warm=5, cycle=30, decay=0.1, floor=1e-5, init=0.01):
    """The MIP recipe written from its definition: linear warmup over `warm` epochs from
    init*base, then cosine cycles of `cycle` epochs whose peak decays by `decay`."""
    if t < warm:
        return init * base + t * (base - init * base) / warm
    i, t_cur = divmod(t, cycle)
    peak = base * decay ** i
    return floor * base + 0.5 * (peak - floor * base) * (1 + math.cos(math.pi * t_cur / cycle))


def test_cosine_restarts_follows_the_mip_recipe_per_epoch():
    model = Declaring()
    opt = build_optimizer([model], optim='sgd', lr=0.01, weight_decay=1e-4)
    sched = build_lr_scheduler(opt, iters_per_epoch=10, name='cosine_restarts', lr=0.01,
                               max_epoch=80, warmup_epochs=5, warmup_factor=0.01,
                               min_lr_factor=1e-5, cycle_epochs=30, cycle_decay=0.1)
    assert sched.per_iteration is False
    by_param = {id(p): g for g in opt.param_groups for p in g['params']}
    for epoch in (0, 3, 4, 5, 17, 29, 30, 45, 60, 79):
        sched.begin_epoch(epoch)       # epoch e trains at the authors' t = e + 1
        t = epoch + 1
        assert by_param[id(model.fc.weight)]['lr'] == pytest.approx(mip_lr(t), rel=1e-9)
        # the warmup start and the floor are absolute (as theirs); before that, groups
        # keep their multiplier on the schedule's peak
        if t >= 5 and t % 30 not in (0,):
            g = by_param[id(model.generator.weight)]['lr']
            assert g == pytest.approx(mip_lr(t, base=0.15, floor=1e-5 * 0.01 / 0.15,
                                             init=0.01 * 0.01 / 0.15), rel=1e-9)
    # second cycle starts at a tenth of the first one's peak
    sched.begin_epoch(29)
    assert by_param[id(model.fc.weight)]['lr'] == pytest.approx(
        1e-7 + 0.5 * (1e-3 - 1e-7) * 2, rel=1e-9)


def test_unknown_optimizer_and_scheduler_names():
    with pytest.raises(KeyError, match="unknown optimizer 'sgdd'.*did you mean sgd"):
        build_optimizer([Declaring()], optim='sgdd')
    opt = build_optimizer([Declaring()])
    with pytest.raises(KeyError, match="unknown LR scheduler 'cosine_restart'"):
        build_lr_scheduler(opt, 1, name='cosine_restart', max_epoch=1)
