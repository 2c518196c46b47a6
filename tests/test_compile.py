"""Every registered model compiles into one graph (no graph break) on the CPU, as the
plugin's engine calls it in training (``train.compile``): checked with
``torch._dynamo.explain`` on the tiny variant of each model family."""
import pytest
import torch

from vireid_plugin.models import build_model
from vireid_plugin.registry import MODELS

B = 4
SIDE = dict(modality=torch.tensor([0, 1, 0, 1]), camid=torch.tensor([0, 1, 1, 0]))
# one tiny variant per family: input shape at img_size (64, 32)
TINY = {
    'vit_tiny_reid': (B, 3, 64, 32),
    'vit_tiny_video_avg': (B, 2, 3, 64, 32),
    'mip_vit_tiny': (B, 3, 64, 32),
    'lsmrl_clip_tiny': (B, 2, 3, 64, 32),
    'agw_resnet_tiny': (B, 3, 64, 32),
}


def family(name):
    """The module that builds ``name`` (register_arch names it)."""
    return MODELS.get(name).__module__


def test_every_registered_family_has_a_tiny_variant_here():
    package = {family(n) for n in MODELS.names() if family(n).startswith('vireid_plugin.')}
    assert package == {family(n) for n in TINY}


@pytest.mark.parametrize('name', sorted(TINY))
def test_training_forward_compiles_without_graph_break(name, one_thread):
    torch.manual_seed(0)
    model = build_model(name, 2, pretrained=False, num_cameras=2, img_size=(64, 32)).train()
    kwargs = dict(SIDE, named_outputs=True)
    if name.startswith('lsmrl'):
        kwargs['pid'] = torch.tensor([0, 0, 1, 1])
    torch._dynamo.reset()
    try:
        report = torch._dynamo.explain(model)(torch.randn(*TINY[name]), **kwargs)
    finally:
        torch._dynamo.reset()
    reasons = [str(r.reason).splitlines()[0] for r in report.break_reasons]
    assert (report.graph_count, report.graph_break_count) == (1, 0), reasons
