"""MIP's loss terms on tiny cases worked out by hand: IAEL, MSEL, TransReID head weighting."""
import math

import pytest
import torch
import torch.nn.functional as F

from vireid_plugin.losses import build_loss
from vireid_plugin.losses.iael import InstanceAwareEnhancementLoss
from vireid_plugin.losses.msel import ModalitySharedEnhancementLoss


class PromptModel(torch.nn.Module):
    num_instance_prompt_layers = 1
    embed_dim = 2


def batch(pid, modality):
    pid, modality = torch.tensor(pid), torch.tensor(modality)
    return {'pid': pid, 'modality': modality, 'camid': torch.zeros_like(pid)}


def test_iael_by_hand():
    term = InstanceAwareEnhancementLoss(num_classes=2, model=PromptModel())
    with torch.no_grad():
        term.classifiers[0].weight.copy_(torch.eye(2))
    # two images, two prompt tokens each; token means (1, 0) and (0, 1)
    prompts = torch.tensor([[[2., 0.], [0., 0.]],
                            [[0., 1.], [0., 1.]]])
    loss = term({'instance_prompts': [prompts]}, batch([0, 1], [0, 1]))
    # BatchNorm (training, biased variance): each dim holds {1, 0} -> (x - .5) / sqrt(.25 + eps)
    z = 0.5 / math.sqrt(0.25 + 1e-5)
    # image 0: logits (z, -z), target 0; image 1: logits (-z, z), target 1: the same CE
    expected = -(z - math.log(math.exp(z) + math.exp(-z)))
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_iael_averages_layers_and_needs_prompts():
    class TwoLayers(PromptModel):
        num_instance_prompt_layers = 2
    term = InstanceAwareEnhancementLoss(num_classes=3, model=TwoLayers())
    p = [torch.randn(4, 3, 2), torch.randn(4, 3, 2)]
    b = batch([0, 1, 2, 0], [0, 1, 0, 1])
    per_layer = [F.cross_entropy(fc(bn(x.mean(1))), b['pid'])
                 for x, bn, fc in zip(p, term.bns, term.classifiers)]
    torch.testing.assert_close(term({'instance_prompts': p}, b), sum(per_layer) / 2)

    class NoPrompts(torch.nn.Module):
        num_instance_prompt_layers = 0
        embed_dim = 2
    with pytest.raises(ValueError, match='instance prompts'):
        InstanceAwareEnhancementLoss(num_classes=3, model=NoPrompts())


def test_msel_by_hand():
    # one identity: visible at 0 and 2, infrared at 5 and 9 (1-D features)
    # visible 0: intra |0-2| = 2, cross (5 + 9)/2 = 7 -> 25; visible 2: intra 2, cross 5 -> 9
    # infrared 5: intra 4, cross (5 + 3)/2 = 4 -> 0; infrared 9: intra 4, cross 8 -> 16
    # loss = ((25 + 9)/2 + (0 + 16)/2) / 2 = 12.5
    term = ModalitySharedEnhancementLoss(start_epoch=1)
    x = torch.tensor([[0.], [2.], [5.], [9.]])
    loss = term({'features': x}, batch([0, 0, 0, 0], [0, 0, 1, 1]))
    assert loss.item() == pytest.approx(12.5, rel=1e-5)


def test_msel_starts_at_its_epoch_and_skips_lonely_anchors():
    term = ModalitySharedEnhancementLoss(start_epoch=10)
    x = torch.tensor([[0.], [2.], [5.], [9.]], requires_grad=True)
    b = batch([0, 0, 0, 0], [0, 0, 1, 1])
    term.set_epoch(8)          # the 9th epoch (logs count from 1): still off
    off = term({'features': x}, b)
    assert off.item() == 0. and off.requires_grad
    term.set_epoch(9)          # the 10th: on, as the released recipe's MSEL_EPOCH 10
    assert term({'features': x}, b).item() == pytest.approx(12.5, rel=1e-5)
    # identity 1 has one visible and no infrared sample: its anchor is left out
    x2 = torch.tensor([[0.], [2.], [5.], [9.], [100.]])
    assert term({'features': x2}, batch([0, 0, 0, 0, 1], [0, 0, 1, 1, 0])).item() == \
        pytest.approx(12.5, rel=1e-5)


def test_heads_are_weighted_as_the_model_declares():
    g, l1 = torch.tensor([[2., 0.], [0., 1.]]), torch.tensor([[0., 3.], [1., 1.]])
    b = batch([0, 1], [0, 1])
    loss = build_loss(['id'], [1.0], {'id': {'label_smooth': 0.0}})
    total, _ = loss({'logits': [g, l1], 'head_weights': (0.75, 0.25)}, b)
    expected = 0.75 * F.cross_entropy(g, b['pid']) + 0.25 * F.cross_entropy(l1, b['pid'])
    torch.testing.assert_close(total, expected)
    # without declared weights: the plain mean of the heads
    total, _ = loss({'logits': [g, l1]}, b)
    torch.testing.assert_close(total, (F.cross_entropy(g, b['pid']) +
                                       F.cross_entropy(l1, b['pid'])) / 2)


def test_soft_margin_triplet_on_global_and_parts():
    # 1-D features, ids 0, 0, 1, 1: hardest positive / negative per anchor, by hand
    g = torch.tensor([[0.], [1.], [3.], [6.]])
    part = torch.tensor([[0.], [2.], [2.], [4.]])
    b = batch([0, 0, 1, 1], [0, 1, 0, 1])

    def soft(ap, an):
        return sum(math.log1p(math.exp(p - n)) for p, n in zip(ap, an)) / 4
    # global: d_ap = 1, 1, 3, 3; d_an = 3, 2, 2, 5
    tg = soft([1, 1, 3, 3], [3, 2, 2, 5])
    # part: d_ap = 2, 2, 2, 2; d_an = 2, 0, 0, 2
    tp = soft([2, 2, 2, 2], [2, 0, 0, 2])
    loss = build_loss(['triplet'], [1.0], {'triplet': {'soft_margin': True}})
    total, _ = loss({'features': [g, part], 'head_weights': (0.5, 0.5)}, b)
    assert total.item() == pytest.approx(0.5 * tg + 0.5 * tp, rel=1e-5)


def test_loss_terms_with_parameters_are_saved_and_restored():
    model = PromptModel()
    a = build_loss(['id', 'iael'], [1.0, 0.5], num_classes=3, model=model)
    b = build_loss(['id', 'iael'], [1.0, 0.5], num_classes=3, model=model)
    state = a.state_dict()
    assert 'terms.iael.classifiers.0.weight' in state and 'terms.iael.bns.0.running_mean' in state
    b.load_state_dict(state)
    torch.testing.assert_close(b.terms['iael'].classifiers[0].weight,
                               a.terms['iael'].classifiers[0].weight)
    with pytest.raises(ValueError, match="loss term 'iael' needs num_classes"):
        build_loss(['iael'], [1.0], model=model)


# ---------------------------------------------------------------- released IAEL

def _layer_norm(x, norm):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias


def _block_by_hand(x, blk, heads):
    """A pre-norm ViT block written out: x + MHSA(LN1 x); x + MLP(LN2 x) (GELU, erf)."""
    b, n, d = x.shape
    dh = d // heads
    h = _layer_norm(x, blk.norm1)
    qkv = h @ blk.attn.qkv.weight.T + blk.attn.qkv.bias
    q, k, v = qkv[..., :d], qkv[..., d:2 * d], qkv[..., 2 * d:]
    out = []
    for j in range(heads):
        sl = slice(j * dh, (j + 1) * dh)
        scores = q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(dh)
        weights = torch.exp(scores - scores.max(-1, keepdim=True).values)
        weights = weights / weights.sum(-1, keepdim=True)
        out.append(weights @ v[..., sl])
    x = x + torch.cat(out, -1) @ blk.attn.proj.weight.T + blk.attn.proj.bias
    h = _layer_norm(x, blk.norm2)
    hidden = h @ blk.mlp.fc1.weight.T + blk.mlp.fc1.bias
    hidden = 0.5 * hidden * (1 + torch.erf(hidden / math.sqrt(2)))
    return x + hidden @ blk.mlp.fc2.weight.T + blk.mlp.fc2.bias


class LastBlockModel(torch.nn.Module):
    """What the released IAEL reads from the model: prompted layers, width, last block."""
    num_instance_prompt_layers = 2
    embed_dim = 4

    def __init__(self):
        super().__init__()
        from functools import partial

        from timm.models.vision_transformer import Block
        torch.manual_seed(3)
        self.block = Block(4, 2, mlp_ratio=2., qkv_bias=True,
                           norm_layer=partial(torch.nn.LayerNorm, eps=1e-6))
        self.norm = torch.nn.LayerNorm(4, eps=1e-6)
        with torch.no_grad():
            for p in list(self.block.parameters()) + list(self.norm.parameters()):
                p.normal_(0, 0.5)

    def iael_head(self):
        from vireid_plugin.models.jpm import LastBlockHead
        return LastBlockHead(self.block, self.norm)


def test_released_iael_against_a_hand_written_computation():
    model = LastBlockModel()
    term = InstanceAwareEnhancementLoss(num_classes=3, model=model, form='released')
    gen = torch.Generator().manual_seed(4)
    with torch.no_grad():
        for fc in term.classifiers:
            fc.weight.copy_(torch.randn(3, 4, generator=gen))
        term.token.copy_(torch.randn(1, 1, 4, generator=gen))
    prompts = [torch.randn(5, 2, 4, generator=gen) for _ in range(2)]   # B 5, T 2, D 4
    pid = [0, 1, 2, 0, 1]
    loss = term({'instance_prompts': prompts}, batch(pid, [0, 0, 1, 1, 0]))

    # their IPIL path by hand: b3 = copy of the last block + norm over [z ; prompts], the
    # output at z, BatchNorm (batch statistics, biased variance, eps 1e-5, weight 1,
    # bias 0), bias-free FC, cross-entropy; the mean over the layers
    per_layer = []
    for p, fc in zip(prompts, term.classifiers):
        x = torch.cat([term.token.expand(5, -1, -1), p], dim=1)
        f = _layer_norm(_block_by_hand(x, model.block, heads=2), model.norm)[:, 0]
        z = (f - f.mean(0)) / torch.sqrt(f.var(0, unbiased=False) + 1e-5)
        logits = z @ fc.weight.T
        ce = [torch.log(torch.exp(logits[i]).sum()) - logits[i, y] for i, y in enumerate(pid)]
        per_layer.append(sum(ce) / len(ce))
    expected = sum(per_layer) / 2
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-6)

    # the plugin's form on the same prompts is another number (mean over the tokens)
    plugin = InstanceAwareEnhancementLoss(num_classes=3, model=model)
    with torch.no_grad():
        for a, b in zip(plugin.classifiers, term.classifiers):
            a.weight.copy_(b.weight)
    assert not torch.allclose(plugin({'instance_prompts': prompts}, batch(pid, [0] * 5)), loss)
    # b3 and the token are the term's own, trained: the model's block is only copied
    loss.backward()
    assert term.token.grad.abs().sum() > 0 and term.head.block.attn.qkv.weight.grad is not None
    assert model.block.attn.qkv.weight.grad is None
    assert term.head.block.attn.qkv.weight is not model.block.attn.qkv.weight
    torch.testing.assert_close(term.head.block.attn.qkv.weight, model.block.attn.qkv.weight)


def test_released_iael_on_mip_with_the_released_forward_and_its_config_key():
    from vireid_plugin.models.mip import MIPReID
    model = MIPReID(5, img_size=(64, 32), embed_dim=32, depth=4, num_heads=4, num_cameras=3,
                    num_tokens=4, num_instance_tokens=4, stride_size=16, drop_path_rate=0.0,
                    released_compat=True)
    criterion = build_loss(['iael'], [0.5], {'iael': {'form': 'released'}}, num_classes=5,
                           model=model)
    term = criterion.terms['iael']
    # depth 4, JPM: the released forward prompts blocks 0..depth-3 (ViT-B: 10 layers)
    assert len(term.bns) == model.num_instance_prompt_layers == 2
    torch.testing.assert_close(term.head.block.mlp.fc1.weight,
                               model.backbone.blocks[-1].mlp.fc1.weight)
    x = torch.randn(4, 3, 64, 32)
    mod = torch.tensor([1, 1, 0, 0])
    total, parts = criterion(model.train()(x, modality=mod, camid=torch.zeros(4).long(),
                                           named_outputs=True),
                             batch([0, 1, 0, 1], mod.tolist()))
    assert torch.isfinite(total) and total.item() == pytest.approx(0.5 * parts['iael'].item())
    with pytest.raises(ValueError, match="loss.iael.form must be one of"):
        InstanceAwareEnhancementLoss(num_classes=5, model=model, form='release')
    with pytest.raises(ValueError, match='iael_head'):
        InstanceAwareEnhancementLoss(num_classes=3, model=PromptModel(), form='released')
