"""What a GPU run changes, emulated on the CPU (issue 28): fused AdamW updates the prompts
in place without bumping ``Tensor._version`` (torch has fused AdamW on the CPU too), a
T4's compute capability (mocked), a checkpoint's optimizer state resumed with another
implementation (a 'meta' parameter stands in for a CUDA one), TF32 matmuls (their input
rounding applied by a TorchFunctionMode whenever TF32 is allowed)."""
import copy

import pytest
import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from vireid_plugin.engine.checkpoint import restore_training_state
from vireid_plugin.engine.precision import (Precision, native_bf16, prompt_stage_precision,
                                            tf32_allowed)
from vireid_plugin.models import build_model

pytestmark = pytest.mark.usefixtures('one_thread')


# ---------------------------------------------------------------- 1: LSMRL's text bank

def _lsmrl_clip_and_model():
    torch.manual_seed(0)
    model = build_model('lsmrl_clip_tiny', 4, pretrained=False, cmi=False)
    x = torch.randn(4, 2, 3, 128, 64)
    return model, x


@pytest.mark.parametrize('fused', [False, True])
def test_lsmrl_eval_text_bank_follows_an_in_place_update_that_keeps_the_version(fused):
    model, x = _lsmrl_clip_and_model()
    opt = torch.optim.AdamW(model.prompt_parameters(), lr=1e-2,
                            **({'fused': True} if fused else {'foreach': True}))
    model.eval()
    with torch.no_grad():
        model(x)                                        # 1st evaluation fills the cache
    model.train()
    for _ in range(2):                                  # training steps on the prompts
        opt.zero_grad()
        model.prompt_text_features(torch.arange(4)).pow(2).sum().backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        cached = model(x)
        expected_bank = model.prompt_learner(model.text_encoder)   # independent encoding
        bank, _ = model.text_features()
        model._text_cache = None
        fresh = model(x)
    torch.testing.assert_close(bank, expected_bank, rtol=0, atol=0)
    torch.testing.assert_close(cached, fresh, rtol=0, atol=0)


def test_lsmrl_eval_text_bank_follows_a_fused_update_made_in_eval_mode():
    """No mode switch at all: the cache's key itself must see the new prompt values."""
    model, x = _lsmrl_clip_and_model()
    model.eval()
    with torch.no_grad():
        before, _ = model.text_features()
        before = before.clone()
        version = model.prompt_learner.ctx._version
        # what a fused kernel does: new values, the same version counter (``.data`` has
        # a counter of its own)
        model.prompt_learner.ctx.data.add_(1.0)
        assert model.prompt_learner.ctx._version == version
        after, _ = model.text_features()
        expected = model.prompt_learner(model.text_encoder)
    assert not torch.equal(after, before)
    torch.testing.assert_close(after, expected, rtol=0, atol=0)


# ---------------------------------------------------------------- 2: amp auto by capability

@pytest.mark.filterwarnings('ignore:torch.cuda.amp.GradScaler')
@pytest.mark.parametrize('capability,mode', [((7, 5), 'fp16'), ((7, 0), 'fp16'),
                                             ((8, 0), 'bf16'), ((8, 6), 'bf16'),
                                             ((9, 0), 'bf16')])
def test_amp_auto_is_bf16_only_with_native_support(monkeypatch, capability, mode):
    # a T4 (7.5) answers is_bf16_supported() True (emulation counts): the choice must not
    monkeypatch.setattr(torch.cuda, 'is_bf16_supported', lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, 'current_device', lambda: 0)
    monkeypatch.setattr(torch.cuda, 'get_device_capability', lambda d=None: capability)
    p = Precision('auto', torch.device('cuda', 0))
    assert p.mode == mode
    assert (p.scaler is not None) == (mode == 'fp16')
    assert native_bf16('cuda') == (capability >= (8, 0))
    # LSMRL's prompt stage has no GradScaler: fp32 where training takes fp16
    stage = prompt_stage_precision('auto', torch.device('cuda', 0))
    assert stage.mode == ('off' if mode == 'fp16' else 'bf16') and stage.scaler is None


# ---------------------------------------------------------------- 3: optimizer state on resume

def _adamw(params, **impl):
    return torch.optim.AdamW(params, lr=0.1, weight_decay=0.01, **impl)


def _checkpoint_of(impl):
    """A training checkpoint whose optimizer ran 2 steps with implementation ``impl``."""
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = _adamw(model.parameters(), **impl)
    for _ in range(2):
        opt.zero_grad()
        model(torch.randn(4, 3)).pow(2).sum().backward()
        opt.step()
    return {'state_dict': model.state_dict(), 'epoch': 1, 'optimizer': opt.state_dict()}


def test_a_cpu_checkpoint_resumed_with_fused_puts_step_on_the_parameters_device():
    ckpt = _checkpoint_of({'foreach': True})
    model = torch.nn.Linear(3, 2, device='meta')        # stands in for a CUDA model
    opt = _adamw(model.parameters(), fused=True)
    restore_training_state(ckpt, 'ckpt', torch.nn.Linear(3, 2), opt)
    assert opt.param_groups[0]['fused'] is True and not opt.param_groups[0].get('foreach')
    for p in model.parameters():
        state = opt.state[p]
        assert {k: v.device.type for k, v in state.items()} == \
            {'step': 'meta', 'exp_avg': 'meta', 'exp_avg_sq': 'meta'}
        assert state['step'].dtype == torch.float32


@pytest.mark.parametrize('written', [{'foreach': True}, {'fused': True}])
def test_resuming_with_either_implementation_continues_the_same_update(written):
    """(CPU kernels of both) the next steps are the same whichever implementation wrote
    the checkpoint and whichever resumes it; step lands where each reads it."""
    ckpt = _checkpoint_of(written)
    torch.manual_seed(1)
    x = torch.randn(4, 3)
    runs = []
    for impl in ({'foreach': True}, {'fused': True}):
        model = torch.nn.Linear(3, 2)
        opt = _adamw(model.parameters(), **impl)
        restore_training_state(copy.deepcopy(ckpt), 'ckpt', model, opt)   # as from a file
        assert all(opt.state[p]['step'].device.type == 'cpu' for p in model.parameters())
        for _ in range(2):
            opt.zero_grad()
            model(x).pow(2).sum().backward()
            opt.step()
        runs.append(model.weight.detach().clone())
    torch.testing.assert_close(runs[1], runs[0], rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- 7: TF32 in evaluation

def _tf32_round(t):
    if not (torch.is_tensor(t) and t.dtype == torch.float32):
        return t
    i = t.view(torch.int32)
    return ((i + 0x1000) & ~0x1FFF).view(torch.float32)   # 10-bit mantissa, to nearest


class EmulatedTF32(TorchFunctionMode):
    """What a CUDA matmul does with ``allow_tf32``: its fp32 inputs rounded to TF32."""
    MM = {F.linear, torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.bmm,
          torch.mm, torch.addmm, torch.baddbmm, F.conv2d, F.scaled_dot_product_attention}

    def __torch_function__(self, func, types_, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.MM and torch.backends.cuda.matmul.allow_tf32:
            args = tuple(_tf32_round(a) for a in args)
            kwargs = {k: _tf32_round(v) for k, v in kwargs.items()}
        return func(*args, **kwargs)


@pytest.fixture
def tf32_globally_on():
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True   # what the runner sets for training
    torch.backends.cudnn.allow_tf32 = True
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_fp32_evaluation_is_fp32_and_tf32_is_labelled(tf32_globally_on):
    torch.manual_seed(0)
    model = build_model('vit_tiny_reid', 4, pretrained=False).eval()
    x = torch.randn(6, 3, 128, 64)
    with torch.no_grad():
        with tf32_allowed(False):
            exact = model(x)
        with EmulatedTF32():
            with Precision('off', 'cpu', tf32=False).autocast():
                fp32 = model(x)
            with Precision('off', 'cpu', tf32=True).autocast():
                tf32 = model(x)
    torch.testing.assert_close(fp32, exact, rtol=0, atol=0)
    assert (tf32 - exact).abs().max() > 1e-5          # the emulation does round
    assert torch.backends.cuda.matmul.allow_tf32      # the global setting is restored
    cuda = torch.device('cuda', 0)   # a device object only: nothing runs there
    assert Precision('off', cuda, tf32=False).label == 'fp32'
    assert Precision('off', cuda, tf32=True).label == 'tf32'
    assert Precision('off', 'cpu', tf32=True).label == 'fp32'   # no TF32 on a CPU
    assert Precision('bf16', 'cpu', tf32=False).label == 'bf16'
