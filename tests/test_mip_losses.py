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
