"""Parameter counts and forward FLOPs of LSMRL variants (torch's FlopCounterMode).

On the CPU, PyTorch's fused attention kernels and ``nn.MultiheadAttention``'s
inference fast path are invisible to FlopCounterMode, so the count runs with the
math attention backend and autograd on: every attention product is then a
counted matmul. Nothing is trained; the weights are random (FLOPs and parameter
counts do not depend on them).
"""
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from ..build import build_model

__all__ = ['count_flops', 'lsmrl_cost']


def count_flops(fn):
    """Forward FLOPs of ``fn()`` (every matmul, attention included)."""
    with sdpa_kernel(SDPBackend.MATH), torch.enable_grad(), \
            FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def _params(module):
    return sum(p.numel() for p in module.parameters()) if module is not None else 0


def lsmrl_cost(arch='lsmrl_clip_vit_b16', num_classes=500, seq_len=6, img_size=None, **options):
    """Parameters and forward GFLOPs of one LSMRL variant.

    ``eval_gflops_per_clip``: a test clip (B = 1, T frames), the identity text bank
    already cached (computed once per evaluation). ``train_gflops_per_pair``: a
    training forward of one visible + one infrared clip of an identity (CMI
    included), without the text bank, which ``text_bank_gflops`` counts once per
    training step (all ``num_classes`` prompts through the frozen text tower).
    """
    torch.manual_seed(0)
    model = build_model(arch, num_classes, pretrained=False, img_size=img_size, **options)
    h, w = model.image_encoder.visual.image_size
    clip = torch.randn(1, seq_len, 3, h, w)
    model.eval()
    model.text_features()  # cached: not part of a test clip's cost
    eval_flops = count_flops(lambda: model(clip))
    text_flops = count_flops(lambda: model.prompt_learner(model.text_encoder))
    model.train()
    pair = torch.randn(2, seq_len, 3, h, w)
    train_flops = count_flops(lambda: model(pair, modality=torch.tensor([0, 1]),
                                            pid=torch.tensor([0, 0]), named_outputs=True))
    image_side = (_params(model.image_encoder) + _params(model.sd) + _params(model.cmi) +
                  _params(model.head) + _params(model.head_proj) + _params(model.cmi_head))
    return {
        'arch': arch, 'input': [seq_len, 3, h, w], 'num_classes': num_classes,
        'options': options,
        'params_total': _params(model),
        'params_trainable': sum(p.numel() for p in model.parameters() if p.requires_grad),
        'params_image_side': image_side,
        'params_added': {'stfl': _params(model.stfl), 'sd': _params(model.sd),
                         'cmi': _params(model.cmi), 'prompts': _params(model.prompt_learner)},
        'eval_gflops_per_clip': eval_flops / 1e9,
        'train_gflops_per_pair': (train_flops - text_flops) / 1e9,
        'text_bank_gflops': text_flops / 1e9,
    }
