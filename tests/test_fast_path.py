"""The fast training path: fused attention everywhere, no per-step host sync but the one
finite-loss check, losses logged every print_freq steps (plain progress lines, TensorBoard
tags), fused/foreach optimizers by device, train.compile wiring."""
import collections
import glob
import io

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from vireid_plugin.data.sampler import CrossModalIdentitySampler
from vireid_plugin.engine import CrossModalEngine
from vireid_plugin.engine.checkpoint import restore_training_state
from vireid_plugin.losses import build_loss
from vireid_plugin.losses.triplet import TripletLoss
from vireid_plugin.models import build_model
from vireid_plugin.optim import build_optimizer

from tests.helpers import toy_data_manager

#: aten ops that copy a device value to the host (a sync on CUDA)
SYNCING = {'aten._local_scalar_dense', 'aten.nonzero', 'aten.masked_select', 'aten.is_nonzero'}


class Ops(TorchDispatchMode):
    """Counts the aten ops run under it."""

    def __init__(self):
        super().__init__()
        self.count = collections.Counter()

    def __torch_dispatch__(self, func, types_, args=(), kwargs=None):
        self.count[str(func.overloadpacket)] += 1
        return func(*args, **(kwargs or {}))

    def matching(self, word):
        return sum(n for name, n in self.count.items() if word in name)


# ---------------------------------------------------------------- fused attention

def attention_modules(model):
    from open_clip.transformer import ResidualAttentionBlock  # noqa: F401  (open_clip's MHA)
    from timm.models.vision_transformer import Attention

    from vireid_plugin.models.lsmrl.attention import CrossAttention
    return [m for m in model.modules()
            if isinstance(m, (Attention, nn.MultiheadAttention, CrossAttention))]


@pytest.mark.parametrize('name,shape', [
    ('vit_tiny_reid', (4, 3, 64, 32)),
    ('mip_vit_tiny', (4, 3, 64, 32)),                # timm blocks + the instance-prompt block
    ('lsmrl_clip_tiny', (4, 3, 3, 64, 32)),          # open_clip towers, STFL, SD, CMI
])
def test_every_attention_call_is_one_fused_sdpa_and_no_softmax_is_hand_written(name, shape):
    torch.manual_seed(0)
    model = build_model(name, 4, pretrained=False, img_size=(64, 32), num_cameras=2).train()
    modules = attention_modules(model)
    assert modules
    per_call, ops = [], Ops()

    def before(module, args, kwargs=None):
        module._sdpa_before = ops.matching('scaled_dot_product')

    def after(module, args, output):
        per_call.append((type(module).__name__,
                         ops.matching('scaled_dot_product') - module._sdpa_before))

    for m in modules:
        m.register_forward_pre_hook(before)
        m.register_forward_hook(after)
    kwargs = dict(modality=torch.tensor([0, 1, 0, 1]), camid=torch.zeros(4, dtype=torch.long),
                  named_outputs=True)
    if name.startswith('lsmrl'):
        kwargs['pid'] = torch.tensor([0, 0, 1, 1])
    with ops:
        model(torch.randn(*shape), **kwargs)
    assert per_call and all(n == 1 for _, n in per_call), per_call
    # timm's blocks compute attention with SDPA only when fused_attn is on
    assert all(m.fused_attn for m in modules if hasattr(m, 'fused_attn'))
    assert ops.matching('softmax') == 0          # no attention written out by hand
    if name.startswith('lsmrl'):   # SD, CMI and open_clip's attention all took part
        kinds = {k for k, _ in per_call}
        assert kinds == {'MultiheadAttention', 'CrossAttention'}


# ---------------------------------------------------------------- host syncs

def triplet_by_loops(x, pid, margin):
    """Batch-hard triplet loss written anchor by anchor (independent definition)."""
    d = torch.cdist(x, x)
    losses = []
    for i in range(len(pid)):
        pos = [d[i, j] for j in range(len(pid)) if j != i and pid[j] == pid[i]]
        neg = [d[i, j] for j in range(len(pid)) if pid[j] != pid[i]]
        if pos and neg:
            losses.append(F.relu(max(pos) - min(neg) + margin))
    return torch.stack(losses).mean() if losses else torch.zeros(())


def test_triplet_loss_has_no_host_sync_and_keeps_its_value():
    torch.manual_seed(0)
    x = torch.randn(7, 5, requires_grad=True)
    pid = torch.tensor([0, 0, 1, 1, 1, 2, 3])      # ids 2 and 3: no positive, left out
    term = TripletLoss(margin=0.3)
    with Ops() as ops:
        loss = term.single(x, pid)
        loss.backward()
    assert not any(ops.count[s] for s in SYNCING), dict(ops.count)
    assert loss.item() == pytest.approx(triplet_by_loops(x.detach(), pid, 0.3).item(), abs=1e-5)
    assert torch.isfinite(x.grad).all()
    # no anchor has a triplet: 0, still in the graph, finite gradient
    x2 = torch.randn(3, 5, requires_grad=True)
    zero = term.single(x2, torch.tensor([0, 1, 2]))
    zero.backward()
    assert zero.item() == 0 and torch.equal(x2.grad, torch.zeros_like(x2))


class Toy(nn.Module):
    def __init__(self, num_classes=4):
        super().__init__()
        self.fc = nn.Linear(3, 8)
        self.cls = nn.Linear(8, num_classes)

    def forward(self, x, modality=None, camid=None, named_outputs=False):
        f = self.fc(x.flatten(1))
        if not self.training:
            return f
        return {'features': f, 'logits': self.cls(f)} if named_outputs else self.cls(f)


def image(i, pid):
    return torch.randn(3)


def make_engine(**kw):
    torch.manual_seed(0)
    items = [('p', pid, 2 * m, 0, m) for pid in range(4) for m in (0, 1) for _ in range(6)]
    sampler = CrossModalIdentitySampler(items, batch_size=8, num_instances=2, seed=3)
    dm = toy_data_manager(items, image, sampler)
    model = Toy()
    opt = build_optimizer([model], optim='sgd', lr=0.1)
    engine = CrossModalEngine(dm, model, opt, build_loss(['id', 'triplet'], [1.0, 1.0]),
                              use_gpu=False, **kw)
    engine.max_epoch, engine.epoch = 1, 0
    return engine


def test_a_training_step_reads_the_device_once():
    engine = make_engine()
    data = next(iter(engine.train_loader))
    engine.set_model_mode('train')
    with Ops() as ops:
        summary = engine.forward_backward(data)
    # the finite-loss check; no float() per loss term any more
    assert ops.count['aten._local_scalar_dense'] == 1
    assert not any(ops.count[s] for s in SYNCING - {'aten._local_scalar_dense'})
    assert set(summary) == {'id', 'triplet', 'loss', 'acc'}
    assert all(torch.is_tensor(v) and v.dim() == 0 for v in summary.values())


def test_losses_logged_every_print_freq_as_window_means_with_tensorboard_tags(tmp_path,
                                                                             capsys):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter
    engine = make_engine()
    engine.writer = SummaryWriter(log_dir=str(tmp_path))
    steps, real = [], engine.forward_backward

    def spy(data):
        out = real(data)
        steps.append({k: float(v) for k, v in out.items()})
        return out
    engine.forward_backward = spy
    engine.train(print_freq=2)
    engine.writer.close()
    captured = capsys.readouterr()
    n = engine.num_batches
    assert n == 6 and len(steps) == n
    lines = [ln for ln in captured.out.splitlines() if ln.startswith('epoch: [1/1]')]
    assert len(lines) == n // 2                   # one line per 2 steps
    for k, line in enumerate(lines):
        fields = dict(f.split(' ', 1) for f in line.split('\t')[1:])
        window = steps[2 * k:2 * k + 2]
        assert float(fields['loss']) == pytest.approx(sum(s['loss'] for s in window) / 2,
                                                      abs=1e-4)
        assert fields['id'] and fields['triplet'] and line.endswith('img/s')

    # progress on a non-TTY (pytest's capture): plain lines, no carriage returns
    assert '\r' not in captured.err
    assert captured.err.strip().splitlines()[-1].startswith('epoch 1/1: 6/6 done in')

    acc = EventAccumulator(glob.glob(str(tmp_path / 'events.out.tfevents.*'))[0])
    acc.Reload()
    tags = set(acc.Tags()['scalars'])
    assert {'Train/loss', 'Train/id', 'Train/triplet', 'Train/acc', 'Train/lr',
            'Train/throughput', 'Train/time', 'Train/data'} <= tags
    assert [e.step for e in acc.Scalars('Train/loss')] == [2, 4, 6]
    assert acc.Scalars('Train/id')[0].value == pytest.approx(
        (steps[0]['id'] + steps[1]['id']) / 2, abs=1e-4)
    assert all(e.value > 0 for e in acc.Scalars('Train/throughput'))


# ---------------------------------------------------------------- optimizers, compile

@pytest.mark.parametrize('optim,device,expect', [
    ('adamw', 'cuda', 'fused'), ('sgd', 'cuda', 'fused'), ('adam', 'cuda', 'fused'),
    ('amsgrad', 'cuda', 'fused'), ('rmsprop', 'cuda', 'foreach'), ('radam', 'cuda', 'foreach'),
    ('adamw', 'cpu', 'foreach'), ('sgd', 'cpu', 'foreach'),
])
def test_fused_optimizer_on_cuda_foreach_elsewhere(optim, device, expect):
    # the device argument decides: no GPU needed to check the choice
    opt = build_optimizer([nn.Linear(3, 2)], optim=optim, lr=0.1, device=torch.device(device))
    other = {'fused': 'foreach', 'foreach': 'fused'}[expect]
    assert opt.defaults.get(expect) is True and not opt.defaults.get(other)
    assert all(g.get(expect) is True for g in opt.param_groups)


def test_resume_keeps_this_runs_optimizer_implementation():
    model = nn.Linear(3, 2)
    fused = build_optimizer([model], optim='adamw', lr=0.1, device='cuda')   # a GPU run's
    model(torch.randn(4, 3)).sum().backward()
    fused.step()
    ckpt = {'state_dict': model.state_dict(), 'epoch': 1, 'optimizer': fused.state_dict()}
    here = build_optimizer([model], optim='adamw', lr=0.1, device='cpu')
    restore_training_state(ckpt, 'x', model, here)
    assert here.param_groups[0]['foreach'] is True and not here.param_groups[0]['fused']
    assert len(here.state) == 2                  # the moments were loaded


def test_train_compile_compiles_the_model_not_the_loss_and_keeps_plain_keys(monkeypatch):
    """The wiring (a compiled CPU run of even a tiny ViT takes ~15 s to trace here: the
    compiled run itself is checked on GPUs, see docs/distributed.md)."""
    compiled = []

    def fake_compile(module, **kw):
        compiled.append(module)

        class Compiled(nn.Module):
            def __init__(self):
                super().__init__()
                self._orig_mod = module
                self.calls = 0

            def forward(self, *a, **k):
                self.calls += 1
                return self._orig_mod(*a, **k)
        return Compiled()

    monkeypatch.setattr(torch, 'compile', fake_compile)
    engine = make_engine(compile=True)
    keys = set(engine.model.state_dict())
    engine.set_model_mode('train')
    engine.forward_backward(next(iter(engine.train_loader)))
    assert compiled == [engine.model]           # the model itself, not the criterion
    assert engine.train_model.calls == 1        # the step ran through it
    assert set(engine.training_state(0)['state_dict']) == keys == {
        'fc.weight', 'fc.bias', 'cls.weight', 'cls.bias'}
    assert not make_engine().compile and make_engine().train_model is not None


def test_compile_key_reaches_the_engine():
    from vireid_plugin.config import engine_kwargs, load_config
    cfg = load_config('', ['train.compile', 'True', 'train.sync_bn', 'True'])
    kw = engine_kwargs(cfg)
    assert kw['compile'] is True and kw['sync_bn'] is True
    assert kw['find_unused_parameters'] == 'auto'
    # a YAML/CLI True or False still reads (as the strings the choice takes)
    cfg = load_config('', ['train.ddp_find_unused_parameters', 'True'])
    assert engine_kwargs(cfg)['find_unused_parameters'] == 'true'


def test_plain_progress_lines_under_a_non_tty():
    from vireid_plugin.progress import progress
    out = io.StringIO()
    assert list(progress(range(10), 'epoch 3/5', stream=out)) == list(range(10))
    text = out.getvalue()
    assert '\r' not in text and text.splitlines()[-1].startswith('epoch 3/5: 10/10 done in')
