"""LSMRL's loss terms, each on a case small enough to work out by hand."""
import math

import pytest
import torch

from vireid_plugin.losses import build_loss
from vireid_plugin.losses.supcon import supcon_loss


def softplus(v):
    return math.log1p(math.exp(v))


def term(name, **options):
    return build_loss([name], [1.0], {name: options} if options else None).terms[name]


def test_wrt_triplet_on_four_points_on_a_line():
    # ids 0: {0, 1}, 1: {3, 4}. Anchor 0: d_p = 1; negatives at 3, 4 weighted by
    # softmax(-3, -4) = (a, 1 - a), a = 1 / (1 + e^-1): d_n = 3a + 4(1 - a) = 4 - a.
    a = 1 / (1 + math.exp(-1))
    far, near = softplus(1 - (4 - a)), softplus(1 - (3 - a))  # anchors 0, 4 and 1, 3
    expected = (2 * far + 2 * near) / 4
    feats = torch.tensor([[0.], [1.], [3.], [4.]])
    got = term('wrt_triplet')({'features': feats}, {'pid': torch.tensor([0, 0, 1, 1])})
    assert float(got) == pytest.approx(expected, abs=1e-5)


def test_wrt_triplet_weights_far_positives_more():
    # one anchor at 0 with positives at 1 and 3: weights softmax(1, 3) -> d_p = 1*b + 3*(1-b)
    b = 1 / (1 + math.exp(2))
    feats = torch.tensor([[0.], [1.], [3.], [10.]])
    pid = torch.tensor([0, 0, 0, 1])
    loss = term('wrt_triplet')({'features': feats}, {'pid': pid})
    # anchors: 0 (d_p = b + 3(1 - b), d_n = 10); 1 (positives 1 and 2 -> softmax(1, 2));
    # 3 (positives 3 and 2 -> softmax(3, 2)); 10 (no positive: left out)
    c = 1 / (1 + math.exp(1))
    d0 = b * 1 + (1 - b) * 3
    d1 = c * 1 + (1 - c) * 2
    d2 = (1 - c) * 3 + c * 2
    expected = (softplus(d0 - 10) + softplus(d1 - 9) + softplus(d2 - 7)) / 3
    assert float(loss) == pytest.approx(expected, abs=1e-5)


def test_image_to_text_cross_entropy():
    image = torch.tensor([[1., 0.], [0., 1.]])
    text = torch.tensor([[2., 0.], [0., 1.], [1., 1.]])
    # logits [[2, 0, 1], [0, 1, 1]]; targets 0 and 1
    e = math.e
    expected = (-math.log(e ** 2 / (e ** 2 + 1 + e)) - math.log(e / (1 + 2 * e))) / 2
    loss = term('i2t', label_smooth=0.0)({'image_proj': image, 'text_features': text},
                                         {'pid': torch.tensor([0, 1])})
    assert float(loss) == pytest.approx(expected, abs=1e-6)


def test_hetero_center_loss_on_centres_on_a_line():
    # centres: id 0 visible mean(0, 2) = 1, infrared 3; id 1 visible 4, infrared 6;
    # id 2 visible only (100): never an anchor, a (far) negative. Margin 0.5:
    # 0v (1): positive 2 away, nearest other id 3 away: relu(2 - 3 + .5) = 0;
    # 0i (3): relu(2 - 1 + .5) = 1.5; 1v (4): 1.5; 1i (6): relu(2 - 3 + .5) = 0 -> mean .75
    feats = torch.tensor([[0.], [2.], [3.], [4.], [6.], [100.]])
    batch = {'pid': torch.tensor([0, 0, 0, 1, 1, 2]),
             'modality': torch.tensor([0, 0, 1, 0, 1, 0])}
    loss = term('hetero_center', margin=0.5)({'cmi_features': feats}, batch)
    assert float(loss) == pytest.approx(0.75, abs=1e-5)
    # well separated identities: nothing to pull or push
    far = torch.tensor([[0.], [0.], [0.1], [9.], [9.1], [100.]])
    assert float(term('hetero_center', margin=0.5)({'cmi_features': far}, batch)) == 0.0


def test_prototype_text_loss_uses_normalised_modality_prototypes():
    # id 0: visible prototype mean([2,0],[2,0]) -> direction [1,0]; infrared [0,1].
    # bank (id 0 [1,0], id 1 [0,1]); temperature 1: logits [1,0] and [0,1], target 0.
    feats = torch.tensor([[2., 0.], [2., 0.], [0., 3.]])
    batch = {'pid': torch.tensor([0, 0, 0]), 'modality': torch.tensor([0, 0, 1])}
    outputs = {'cmi_proj': feats, 'text_features': torch.tensor([[1., 0.], [0., 1.]])}
    loss = term('proto_text', temperature=1.0)(outputs, batch)
    expected = (softplus(-1) + softplus(1)) / 2
    assert float(loss) == pytest.approx(expected, abs=1e-6)


def test_cmi_terms_read_the_cmi_outputs():
    outputs = {'cmi_logits': torch.zeros(2, 4), 'logits': torch.tensor([[9., 0, 0, 0]] * 2),
               'cmi_features': torch.tensor([[0.], [1.], [3.], [4.]])}
    batch = {'pid': torch.tensor([0, 1])}
    assert float(term('cmi_id')(outputs, batch)) == pytest.approx(math.log(4), abs=1e-6)
    wrt = term('cmi_triplet')(outputs, {'pid': torch.tensor([0, 0, 1, 1])})
    a = 1 / (1 + math.exp(-1))
    assert float(wrt) == pytest.approx((softplus(a - 3) + softplus(a - 2)) / 2, abs=1e-5)


def test_supcon_averages_over_each_anchors_positives():
    anchors = torch.tensor([[1., 0.], [0., 1.]])
    contrast = torch.tensor([[1., 0.], [0., 1.], [2., 0.]])
    # anchor 0: logits [1, 0, 1], positives 0 and 2; anchor 1: logits [0, 1, 0], positive 1
    e = math.e
    expected = ((math.log(2 * e + 1) - 1) + (math.log(e + 2) - 1)) / 2
    got = supcon_loss(anchors, contrast, torch.tensor([0, 1]), torch.tensor([0, 1, 0]))
    assert float(got) == pytest.approx(expected, abs=1e-6)
