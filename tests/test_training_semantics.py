"""Training that means what it says (issue 25, issue 24 item 5): what was frozen at build stays
frozen, a per-iteration schedule follows the iteration count (skipped and rolled-back steps
included, epochs of any length), a rebuilt schedule is the new schedule, one cosine cycle
ends at its floor. Expected values come from fresh schedules or the formulas, by hand."""
import math
import warnings

import pytest
import torch

from vireid_plugin.data.identity_modality_sampler import RandomIdentityModalitySampler
from vireid_plugin.data.sampler import CrossModalIdentitySampler
from vireid_plugin.engine import CrossModalEngine
from vireid_plugin.engine.checkpoint import CheckpointManager
from vireid_plugin.losses import build_loss
from vireid_plugin.optim import WarmupCosineLR, build_lr_scheduler

from tests.helpers import toy_data_manager


class Toy(torch.nn.Module):
    """A trunk, a tower frozen at build (as LSMRL's text tower) and a head whose bias is
    frozen at build (as the BNNeck's)."""

    def __init__(self, num_classes=4):
        super().__init__()
        self.fc = torch.nn.Linear(3, 8)
        self.tower = torch.nn.Linear(8, 8)
        self.head = torch.nn.Linear(8, num_classes)
        self.tower.requires_grad_(False)
        self.head.bias.requires_grad_(False)

    def forward(self, x, modality=None, camid=None, named_outputs=False):
        f = self.fc(x.flatten(1))
        if not self.training:
            return f
        f = f + 0.1 * self.tower(f)
        return {'features': f, 'bn_features': f, 'logits': self.head(f)}


def image(i, pid):
    return torch.full((3,), float(i) / 10)


def toy_items(per_modality=6):
    return [('p', pid, 2 * m, 0, m) for pid in range(4) for m in (0, 1)
            for _ in range(per_modality)]


def make(save_dir='', sched_fn=None, sampler_fn=None, items=None, model=None, **kw):
    items = items or toy_items()
    sampler = sampler_fn(items) if sampler_fn else CrossModalIdentitySampler(
        items, batch_size=8, num_instances=2, seed=3)
    dm = toy_data_manager(items, image, sampler)
    torch.manual_seed(0)
    model = model or Toy(num_classes=1 + max(it[1] for it in items))
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    sched = sched_fn(opt, len(dm.train_loader)) if sched_fn else WarmupCosineLR(
        opt, total_iters=3 * len(dm.train_loader), warmup_iters=2)
    engine = CrossModalEngine(dm, model, opt, build_loss(['id'], [1.0]), scheduler=sched,
                              use_gpu=False, **kw)
    if save_dir:
        engine._save_dir = save_dir
        engine.checkpoints = CheckpointManager(save_dir, 5)
    return engine


def train_epochs(engine, epochs, max_epoch=None, **kw):
    engine.max_epoch = max_epoch or epochs
    for engine.epoch in range(engine.start_epoch, epochs):
        engine.train(print_freq=1000, **kw)


# ---------------------------------------------------------------- frozen at build

@pytest.mark.parametrize('fixbase', [0, 1])
def test_what_was_frozen_at_build_stays_frozen_and_gets_no_gradient(fixbase):
    engine = make()
    model = engine.model
    grads = []
    original = engine.precision.step

    def spy(optimizer, params, clip):
        grads.append([n for n, p in model.named_parameters() if p.grad is not None])
        return original(optimizer, params, clip)
    engine.precision.step = spy
    train_epochs(engine, 2, fixbase_epoch=fixbase, open_layers=['head'])
    frozen = {'tower.weight', 'tower.bias', 'head.bias'}
    assert {n for n, p in model.named_parameters() if not p.requires_grad} == frozen
    assert grads and all(not frozen & set(g) for g in grads)
    # what the open layers are in the fixbase epoch: the head's weight only; then all the rest
    n = len(engine.train_loader)
    if fixbase:
        assert all(set(g) == {'head.weight'} for g in grads[:n])
    assert set(grads[-1]) == {'fc.weight', 'fc.bias', 'head.weight'}


# ---------------------------------------------------------------- schedules and the count

class NaNAt:
    """The loss is NaN on the chosen calls (1-based)."""

    def __init__(self, inner, at):
        self.inner, self.at, self.calls = inner, set(at), 0

    def __call__(self, outputs, batch):
        self.calls += 1
        loss, parts = self.inner(outputs, batch)
        return (loss * float('nan') if self.calls in self.at else loss), parts


@pytest.mark.parametrize('mode', ['skip', 'rollback'])
def test_a_skipped_or_rolled_back_step_keeps_the_schedule_on_the_iteration_count(tmp_path,
                                                                                mode):
    engine = make(str(tmp_path), on_nonfinite=mode, checkpoint_every_iters=2)
    engine.criterion = NaNAt(engine.criterion, at=[4])
    train_epochs(engine, 1, max_epoch=3)
    n = len(engine.train_loader)
    assert n == 6 and engine.nonfinite_steps == 1
    # a fresh schedule stepped once per iteration (6): its LR is the one training goes on at
    fresh_opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    fresh = WarmupCosineLR(fresh_opt, total_iters=3 * n, warmup_iters=2)
    with warnings.catch_warnings():   # no optimizer step: the schedule alone
        warnings.simplefilter('ignore', UserWarning)
        for _ in range(n):
            fresh.step()
    assert engine.optimizer.param_groups[0]['lr'] == fresh_opt.param_groups[0]['lr']
    assert engine.scheduler.last_epoch == n


def mip_items():
    # one id with many images, most with few: the MIP sampler's epochs differ in length
    # (the last < P ids' chunks are left over, as many as the draw leaves)
    out = []
    for pid, count in enumerate([2, 4, 6, 8, 16, 2]):
        out += [('p', pid, 2 * m, 0, m) for m in (0, 1) for _ in range(count)]
    return out


def mip_sampler(items):
    return RandomIdentityModalitySampler(items, batch_size=8, num_instances=4, seed=5)


def warmup_cosine_by_hand(base, position, total, warmup, warmup_factor, min_factor):
    if position < warmup:
        return base * (warmup_factor + (1 - warmup_factor) * position / warmup)
    progress = min(1.0, (position - warmup) / (total - warmup))
    return base * (min_factor + (1 - min_factor) * 0.5 * (1 + math.cos(math.pi * progress)))


def lr_recorder(engine):
    seen = []
    inner = engine.criterion

    def criterion(outputs, batch):   # called before the step: the LR this step trains at
        seen.append((engine.epoch, engine.optimizer.param_groups[0]['lr']))
        return inner(outputs, batch)
    engine.criterion = criterion
    return seen


def test_per_iteration_schedule_follows_the_real_length_of_each_epoch():
    epochs, warmup_epochs = 4, 1
    sampler = mip_sampler(mip_items())
    lengths = []
    for e in range(epochs):
        sampler.set_epoch(e)
        lengths.append(sampler.num_batches)
    assert len(set(lengths)) > 1, lengths   # the premise: epochs of different lengths
    L = lengths[0]

    def sched_fn(opt, n):
        return build_lr_scheduler(opt, n, name='warmup_cosine', max_epoch=epochs,
                                  warmup_epochs=warmup_epochs, warmup_factor=0.1,
                                  min_lr_factor=0.01)
    engine = make(sched_fn=sched_fn, sampler_fn=mip_sampler, items=mip_items())
    seen = lr_recorder(engine)
    train_epochs(engine, epochs)
    assert [sum(1 for e, _ in seen if e == k) for k in range(epochs)] == lengths
    # by hand: epoch e's i-th step (0-based) of n_e stands at (e + i / n_e) epochs of the
    # schedule, i.e. e * L + i * L / n_e of its E * L iterations
    last = lengths[-1]
    position = (epochs - 1) * L + (last - 1) * L / last
    expected = warmup_cosine_by_hand(0.1, position, epochs * L, warmup_epochs * L, 0.1, 0.01)
    assert seen[-1][1] == pytest.approx(expected, rel=1e-12)
    # every epoch starts where the schedule's epoch starts, whatever the previous lengths
    starts = [next(lr for e, lr in seen if e == k) for k in range(epochs)]
    for k, lr in enumerate(starts):
        assert lr == pytest.approx(warmup_cosine_by_hand(0.1, k * L, epochs * L, L, 0.1, 0.01),
                                   rel=1e-12)
    # after the run the schedule stands at its end: the floor
    assert engine.optimizer.param_groups[0]['lr'] == pytest.approx(0.1 * 0.01, rel=1e-12)


def test_resume_inside_an_epoch_of_another_length_is_bitwise(tmp_path):
    def sched_fn(opt, n):
        return build_lr_scheduler(opt, n, name='warmup_cosine', max_epoch=3, warmup_epochs=1)

    straight = make(sched_fn=sched_fn, sampler_fn=mip_sampler, items=mip_items())
    seen_straight = lr_recorder(straight)
    train_epochs(straight, 3)

    first = make(str(tmp_path), sched_fn=sched_fn, sampler_fn=mip_sampler, items=mip_items(),
                 checkpoint_every_iters=2)
    train_epochs(first, 2, max_epoch=3)   # writes ...-1-it2 (inside epoch 2)
    path = [p for e, i, p in CheckpointManager(str(tmp_path)).regular() if (e, i) == (1, 2)]
    assert path
    resumed = make(str(tmp_path) + '-b', sched_fn=sched_fn, sampler_fn=mip_sampler,
                   items=mip_items())
    resumed.resume(path[0], str(tmp_path))
    seen_resumed = lr_recorder(resumed)
    train_epochs(resumed, 3)
    n0 = sum(1 for e, _ in seen_straight if e == 0)
    assert seen_resumed == seen_straight[n0 + 2:]
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.parametrize('name,old,new', [
    ('multi_step', dict(max_epoch=10, stepsize=[2]), dict(max_epoch=10, stepsize=[4])),
    ('single_step', dict(max_epoch=10, stepsize=[2]), dict(max_epoch=10, stepsize=[5])),
    ('cosine', dict(max_epoch=4), dict(max_epoch=8)),
])
def test_a_rebuilt_torchreid_schedule_is_the_new_schedule_at_the_resumed_epoch(tmp_path, name,
                                                                                old, new):
    def engine_for(settings, save_dir):
        return make(save_dir, sched_fn=lambda opt, n: build_lr_scheduler(
            opt, n, name=name, gamma=0.1, **settings),
            schedule={'train.lr_scheduler': name,
                      **{'train.' + k: v for k, v in settings.items()}})
    engine = engine_for(old, str(tmp_path))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', UserWarning)
        train_epochs(engine, 3, max_epoch=old['max_epoch'])
    engine.save_training_checkpoint(3, 0)
    resumed = engine_for(new, str(tmp_path))
    resumed.resume('auto', str(tmp_path), rebuild_schedule=True)
    # the new schedule's own LR after 3 epochs, from its definition
    epoch, base = 3, 0.1
    if name == 'cosine':   # CosineAnnealingLR(T_max=max_epoch), eta_min 0
        expected = base * 0.5 * (1 + math.cos(math.pi * epoch / new['max_epoch']))
    else:
        steps = new['stepsize'] if name == 'multi_step' else [new['stepsize'][0]] * 99
        if name == 'single_step':   # StepLR: every stepsize epochs
            expected = base * 0.1 ** (epoch // new['stepsize'][0])
        else:
            expected = base * 0.1 ** sum(1 for s in steps if s <= epoch)
    assert resumed.optimizer.param_groups[0]['lr'] == pytest.approx(expected, rel=1e-9)


def test_a_rebuilt_per_iteration_schedule_is_the_new_schedule_at_the_resumed_step(tmp_path):
    def engine_for(max_epoch, save_dir, **kw):
        return make(save_dir, sched_fn=lambda opt, n: build_lr_scheduler(
            opt, n, name='warmup_cosine', max_epoch=max_epoch, warmup_epochs=1,
            warmup_factor=0.1, min_lr_factor=0.01),
            schedule={'train.lr_scheduler': 'warmup_cosine', 'train.max_epoch': max_epoch},
            **kw)
    engine = engine_for(3, str(tmp_path), checkpoint_every_iters=4)
    train_epochs(engine, 2, max_epoch=3)    # writes model.pth.tar-1-it4
    path = [p for e, i, p in CheckpointManager(str(tmp_path)).regular() if (e, i) == (1, 4)]
    resumed = engine_for(8, str(tmp_path) + '-b')
    resumed.resume(path[0], str(tmp_path), rebuild_schedule=True)
    L = len(resumed.train_loader)
    # the new schedule (8 epochs, 1 of warmup) by hand, after 1 epoch and 4 steps
    expected = warmup_cosine_by_hand(0.1, L + 4, 8 * L, L, 0.1, 0.01)
    assert resumed.optimizer.param_groups[0]['lr'] == pytest.approx(expected, rel=1e-12)


def test_one_cosine_cycle_ends_at_the_floor():
    lr, floor, warmup, max_epoch = 0.01, 0.0001, 2, 10
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = build_lr_scheduler(opt, 5, name='cosine_restarts', lr=lr, max_epoch=max_epoch,
                               warmup_epochs=warmup, warmup_factor=0.01, min_lr_factor=0.01,
                               cycle_epochs=0)
    got = []
    for e in range(max_epoch):
        sched.begin_epoch(e)
        got.append(opt.param_groups[0]['lr'])
    # TransReID's: epoch e (1-based t = e + 1) trains at the warmup line, then the cosine
    # lr_min + (lr - lr_min) / 2 * (1 + cos(pi * t / max_epoch)); t = max_epoch is its floor
    for e, value in enumerate(got):
        t = e + 1
        if t < warmup:
            want = floor + t * (lr - floor) / warmup
        else:
            want = floor + 0.5 * (lr - floor) * (1 + math.cos(math.pi * t / max_epoch))
        assert value == pytest.approx(want, rel=1e-9), e
    assert got[-1] == pytest.approx(floor, rel=1e-9)
