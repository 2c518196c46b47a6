"""AGW / CAJ (mangye16/Cross-Modal-Re-ID-baseline): the model, its released checkpoints,
the ADP triplet, the channel augmentations, flip-averaged features and the LR schedule.
Expected values are worked out by hand (in the comments) or from the definitions."""
import math

import pytest
import torch
import torch.nn.functional as F

from vireid_plugin.checkpoint_io import CheckpointError
from vireid_plugin.data import channel_aug as ca
from vireid_plugin.losses import build_loss
from vireid_plugin.losses.adp_triplet import adp_triplet
from vireid_plugin.models import build_model, load_weights
from vireid_plugin.models.agw import NonLocal, gem
from vireid_plugin.models.agw.released import released_checkpoint_filter
from vireid_plugin.optim.warmup_step import warmup_multi_step_factor

from tests.helpers import synthetic_sysu

pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def tiny():
    torch.manual_seed(0)
    return build_model('agw_resnet_tiny', 6, pretrained=False)


# ---------------------------------------------------------------- GeM, non-local blocks
def test_gem_on_a_hand_built_tensor():
    # channel 0: values 1, 2, 3, 4 -> mean of cubes (1 + 8 + 27 + 64) / 4 = 25 -> 25^(1/3)
    # channel 1: all 2 -> (8)^(1/3) = 2; channel 2: zeros -> (1e-12)^(1/3) = 1e-4 (no clamp)
    x = torch.tensor([[[[1., 2.], [3., 4.]], [[2., 2.], [2., 2.]], [[0., 0.], [0., 0.]]]])
    out = gem(x, p=3.0)
    assert out.shape == (1, 3)
    assert out[0, 0].item() == pytest.approx(25 ** (1 / 3), rel=1e-6)   # 2.924018
    assert out[0, 1].item() == pytest.approx(2.0, rel=1e-6)
    assert out[0, 2].item() == pytest.approx(1e-4, rel=1e-3)


def test_non_local_blocks_follow_the_last_2_of_layer2_and_last_3_of_layer3():
    full = build_model('agw_resnet50', 3, pretrained=False)
    # their non_layers [0, 2, 3, 0] with layers [3, 4, 6, 3]: indices layers[k] - (i + 1)
    assert full.nl_positions == {2: [2, 3], 3: [3, 4, 5]}
    assert not hasattr(full, 'nl1') and not hasattr(full, 'nl4')
    assert [b.in_channels for b in full.nl2] == [512, 512]
    assert [b.in_channels for b in full.nl3] == [1024, 1024, 1024]
    assert all(b.inter_channels == 1 for b in list(full.nl2) + list(full.nl3))   # 2 // 2 // 2
    # last stride 1: layer4 keeps layer3's resolution (288x144 -> 18x9)
    assert full.layer4[0].conv2.stride == (1, 1) and full.layer4[0].downsample[0].stride == (1, 1)
    assert full.feature_dim == 2048 and full.classifier.bias is None
    assert not full.bottleneck.bias.requires_grad


def test_non_local_blocks_run_after_their_blocks(tiny):
    # tiny: layers (1, 2, 3, 1): layer2's 2 blocks and layer3's 3 blocks are all the "last"
    order = []
    for name, module in tiny.named_modules():
        if name.count('.') == 1 and name.startswith(('layer', 'nl')):
            module.register_forward_hook(lambda m, i, o, name=name: order.append(name))
    tiny.eval()
    with torch.no_grad():
        tiny(torch.randn(1, 3, 64, 32), modality=torch.tensor([0]))
    assert order == ['layer1.0', 'layer2.0', 'nl2.0', 'layer2.1', 'nl2.1', 'layer3.0', 'nl3.0',
                     'layer3.1', 'nl3.1', 'layer3.2', 'nl3.2', 'layer4.0']


def test_non_local_is_theirs_dot_product_over_n_with_one_inner_channel():
    torch.manual_seed(1)
    block = NonLocal(4)
    x = torch.randn(2, 4, 3, 5)
    assert torch.equal(block(x), x)        # W's BN starts at weight 0, bias 0: the identity
    torch.nn.init.normal_(block.W[1].weight)
    torch.nn.init.normal_(block.W[1].bias)
    block.eval()
    # the definition, with the N x N matrix: y = (theta^T phi / N) g, z = W(y) + x
    n = 15
    theta = block.theta(x).view(2, 1, n).transpose(1, 2)     # (B, N, 1)
    phi = block.phi(x).view(2, 1, n)                           # (B, 1, N)
    g = block.g(x).view(2, 1, n).transpose(1, 2)               # (B, N, 1)
    f = theta @ phi / n                                        # (B, N, N), no softmax
    y = (f @ g).transpose(1, 2).reshape(2, 1, 3, 5)
    assert torch.allclose(block(x), block.W(y) + x, atol=1e-5)


# ---------------------------------------------------------------- the model's outputs
def test_outputs_and_test_features(tiny):
    x, mod = torch.randn(4, 3, 64, 32), torch.tensor([0, 1, 0, 1])
    tiny.train()
    out = tiny(x, modality=mod, named_outputs=True)
    assert set(out) == {'features', 'bn_features', 'logits'}
    assert out['features'].shape == (4, 256) and out['logits'].shape == (4, 6)
    tiny.eval()
    with torch.no_grad():
        f = tiny(x, modality=mod)
        pooled = tiny.pool(tiny.forward_features(x, mod))
    assert torch.allclose(f.norm(dim=1), torch.ones(4), atol=1e-5)
    assert torch.allclose(f, F.normalize(tiny.bottleneck(pooled), dim=1), atol=1e-6)
    tiny.test_feature = 'pool'
    try:
        with torch.no_grad():
            assert torch.allclose(tiny(x, modality=mod), F.normalize(pooled, dim=1), atol=1e-6)
    finally:
        tiny.test_feature = 'bn'
    assert tiny.TEST_DISTANCE == 'cosine' and 'inner product' in tiny.TEST_DISTANCE_SOURCE


def test_each_image_goes_through_its_modalitys_stem(tiny):
    tiny.eval()
    x, mod = torch.randn(4, 3, 64, 32), torch.tensor([0, 1, 1, 0])
    with torch.no_grad():
        mixed = tiny(x, modality=mod)
        alone = torch.cat([tiny(x[i:i + 1], modality=mod[i:i + 1]) for i in range(4)])
        assert torch.allclose(mixed, alone, atol=1e-5)   # eval BN: items independent
        saved = tiny.thermal_stem.conv1.weight.clone()
        tiny.thermal_stem.conv1.weight.mul_(-1)
        changed = tiny(x, modality=mod)
        tiny.thermal_stem.conv1.weight.copy_(saved)
    assert torch.allclose(changed[[0, 3]], mixed[[0, 3]], atol=1e-6)      # visible: same
    assert not torch.allclose(changed[[1, 2]], mixed[[1, 2]], atol=1e-3)  # infrared: changed


def test_images_alone_get_the_engine_required_error(tiny):
    with pytest.raises(ValueError, match=r"cannot run from images alone.*stem of its modality"):
        tiny(torch.randn(2, 3, 64, 32))


def test_backbone_lr_multiplier_leaves_neck_and_classifier_at_the_lr(tiny):
    from vireid_plugin.optim import param_groups
    groups = {}
    for g in param_groups(tiny, 0.1, 5e-4, exempt_from_decay=False):   # their SGD: all decay
        assert g['weight_decay'] == 5e-4
        groups.setdefault(g['lr_mult'], []).extend(g['param_names'])
    assert sorted(groups) == [0.1, 1.0]
    assert sorted(groups[1.0]) == ['bottleneck.weight', 'classifier.weight']   # bias frozen
    assert 'nl3.2.W.1.weight' in groups[0.1] and 'thermal_stem.conv1.weight' in groups[0.1]


# ---------------------------------------------------------------- released checkpoints
def _value(name, shape):
    """A tensor of plausible scale for ``name`` (so a forward stays finite)."""
    if name.endswith('num_batches_tracked'):
        return torch.tensor(7)
    if name.endswith('running_var'):
        return torch.rand(shape) + 0.5
    if name.endswith('running_mean') or name.endswith('bias'):
        return torch.randn(shape) * 0.1
    if len(shape) == 1:                                       # BN weights
        return torch.rand(shape) * 0.5 + 0.5
    fan_in = math.prod(shape[1:])
    return torch.randn(shape) * math.sqrt(1.0 / fan_in)


def _their_state_dict(num_classes=395):
    """Their embed_net's keys and shapes, built from torchvision's ResNet-50 (their resnet.py
    has the same names, no fc) and their Non_local (g = Sequential(conv), W = (conv, BN))."""
    import torchvision
    resnet = {k: v.shape for k, v in torchvision.models.resnet50().state_dict().items()
              if not k.startswith('fc.')}
    torch.manual_seed(2)
    sd = {}
    for prefix in ('visible_module.visible.', 'thermal_module.thermal.', 'base_resnet.base.'):
        for k, shape in resnet.items():
            sd[prefix + k] = _value(k, shape)
    for layer, (count, c) in {2: (2, 512), 3: (3, 1024)}.items():
        for i in range(count):
            p = 'NL_{}.{}.'.format(layer, i)
            shapes = {'g.0.weight': (1, c, 1, 1), 'g.0.bias': (1,), 'theta.weight': (1, c, 1, 1),
                      'theta.bias': (1,), 'phi.weight': (1, c, 1, 1), 'phi.bias': (1,),
                      'W.0.weight': (c, 1, 1, 1), 'W.0.bias': (c,), 'W.1.weight': (c,),
                      'W.1.bias': (c,), 'W.1.running_mean': (c,), 'W.1.running_var': (c,),
                      'W.1.num_batches_tracked': ()}
            for k, shape in shapes.items():
                sd[p + k] = _value(k, shape)
    for k in ('weight', 'bias', 'running_mean', 'running_var', 'num_batches_tracked'):
        sd['bottleneck.' + k] = _value(k, (2048,))
    sd['classifier.weight'] = torch.randn(num_classes, 2048) * 0.01
    return sd


def _their_features(sd, x, prefix):
    """Their embed_net in eval mode, written from their model.py with torch.nn.functional
    and torchvision's ResNet-50 layers: the stem of ``prefix``, layer1-4 (last stride 1) with
    Non_local (f = theta^T phi / N, y = f g, z = W(y) + x) after blocks 2, 3 of layer2 and
    3, 4, 5 of layer3, GeM p = 3, the BN neck, l2-normalised (their "FC" feature)."""
    import torchvision

    def bn(t, p):
        return F.batch_norm(t, sd[p + 'running_mean'], sd[p + 'running_var'], sd[p + 'weight'],
                            sd[p + 'bias'], False, 0.0, 1e-5)

    def non_local(t, p):
        b, c, h, w = t.shape
        g = F.conv2d(t, sd[p + 'g.0.weight'], sd[p + 'g.0.bias']).view(b, 1, -1).permute(0, 2, 1)
        th = F.conv2d(t, sd[p + 'theta.weight'], sd[p + 'theta.bias']).view(b, 1, -1)
        ph = F.conv2d(t, sd[p + 'phi.weight'], sd[p + 'phi.bias']).view(b, 1, -1)
        f = torch.matmul(th.permute(0, 2, 1), ph)
        y = torch.matmul(f / f.size(-1), g).permute(0, 2, 1).reshape(b, 1, h, w)
        return bn(F.conv2d(y, sd[p + 'W.0.weight'], sd[p + 'W.0.bias']), p + 'W.1.') + t

    t = F.conv2d(x, sd[prefix + 'conv1.weight'], stride=2, padding=3)
    t = F.max_pool2d(F.relu(bn(t, prefix + 'bn1.')), 3, 2, 1)
    base = torchvision.models.resnet50()
    base.load_state_dict({k[len('base_resnet.base.'):]: v for k, v in sd.items()
                          if k.startswith('base_resnet.base.')}, strict=False)
    base.layer4[0].conv2.stride = (1, 1)
    base.layer4[0].downsample[0].stride = (1, 1)
    base.eval()
    for k, nl in ((1, []), (2, [2, 3]), (3, [3, 4, 5]), (4, [])):
        for i, block in enumerate(getattr(base, 'layer{}'.format(k))):
            t = block(t)
            if i in nl:
                t = non_local(t, 'NL_{}.{}.'.format(k, nl.index(i)))
    pooled = (t.flatten(2).pow(3).mean(-1) + 1e-12).pow(1 / 3)
    feat = bn(pooled, 'bottleneck.')
    return feat / feat.norm(dim=1, keepdim=True)


@pytest.fixture(scope='module')
def their_checkpoint(tmp_path_factory):
    sd = _their_state_dict()
    path = tmp_path_factory.mktemp('agw_released') / 'sysu_agw_p4_n8_lr_0.1_seed_0_best.t'
    torch.save({'net': sd, 'cmc': [0.475], 'mAP': 0.4765, 'mINP': 0.353, 'epoch': 40}, path)
    return sd, str(path)


def test_their_checkpoint_loads_strictly_with_their_tensors_in_place(their_checkpoint):
    sd, path = their_checkpoint
    model = build_model('agw_resnet50', 395, pretrained=False)
    report = load_weights(model, path)
    assert not report.missing and not report.unexpected and not report.mismatched
    # left out: their stem copies' layer1-4 (2 x 4 layers) and the shared copy's conv1/bn1
    assert all(k.startswith(('visible_module.visible.layer', 'thermal_module.thermal.layer',
                             'base_resnet.base.conv1', 'base_resnet.base.bn1'))
               for k in report.left_out)
    assert 'base_resnet.base.conv1.weight' in report.left_out
    own = model.state_dict()
    for theirs, ours in [('visible_module.visible.conv1.weight', 'visible_stem.conv1.weight'),
                         ('thermal_module.thermal.bn1.running_var', 'thermal_stem.bn1.running_var'),
                         ('base_resnet.base.layer3.5.conv2.weight', 'layer3.5.conv2.weight'),
                         ('base_resnet.base.layer4.0.downsample.0.weight',
                          'layer4.0.downsample.0.weight'),
                         ('NL_2.1.g.0.weight', 'nl2.1.g.weight'),
                         ('NL_3.2.W.1.running_mean', 'nl3.2.W.1.running_mean'),
                         ('bottleneck.bias', 'bottleneck.bias'),
                         ('classifier.weight', 'classifier.weight')]:
        assert torch.equal(own[ours], sd[theirs]), ours
    assert 'AGW/CAJ authors' in report.summary()
    # and it gives their features: their forward from the same tensors, for each stem
    model.eval()
    torch.manual_seed(3)
    x = torch.randn(2, 3, 64, 32)
    with torch.no_grad():
        for modality, prefix in ((0, 'visible_module.visible.'), (1, 'thermal_module.thermal.')):
            ours = model(x, modality=torch.full((2,), modality))
            theirs = _their_features(sd, x, prefix)
            assert torch.isfinite(theirs).all()
            assert torch.allclose(ours, theirs, atol=1e-4), (ours - theirs).abs().max()


@pytest.mark.parametrize('name,options', [('agw_resnet_tiny', {}),
                                          ('agw_resnet50', {'non_local': False}),
                                          ('agw_resnet50', {'pooling': 'avg'})])
def test_another_architecture_refuses_their_checkpoint(their_checkpoint, name, options):
    _, path = their_checkpoint
    model = build_model(name, 395, pretrained=False, **options)
    with pytest.raises(CheckpointError, match=r"AGW/CAJ authors' checkpoint .*not that "
                                              r"architecture"):
        load_weights(model, path)


def test_filter_passes_the_plugins_own_state_dict_unchanged(tiny):
    own = tiny.state_dict()
    out, left_out, source = released_checkpoint_filter(own, tiny)
    assert out is own and left_out == {} and source == ''


def test_imagenet_resnet_goes_into_all_three_copies(tmp_path):
    from timm.models.resnet import Bottleneck, ResNet
    ref = ResNet(Bottleneck, [1, 2, 3, 1], channels=(8, 16, 32, 64), stem_width=8)
    path = tmp_path / 'resnet_tiny.pth'
    torch.save(ref.state_dict(), path)     # with its fc, as an ImageNet file has
    model = build_model('agw_resnet_tiny', 5, pretrained=False, pretrained_path=str(path))
    for stem in (model.visible_stem, model.thermal_stem):
        assert torch.equal(stem.conv1.weight, ref.conv1.weight)
        assert torch.equal(stem.bn1.running_mean, ref.bn1.running_mean)
    assert torch.equal(model.layer3[2].conv3.weight, ref.layer3[2].conv3.weight)
    from vireid_plugin.models.weights import PretrainedWeightsError
    torch.save({'conv1.weight': torch.zeros(3)}, tmp_path / 'bad.pth')
    with pytest.raises(PretrainedWeightsError, match=r'bad.pth is not a ResNet-50 state dict'):
        build_model('agw_resnet_tiny', 5, pretrained=False,
                    pretrained_path=str(tmp_path / 'bad.pth'))


# ---------------------------------------------------------------- the ADP triplet
def test_adp_triplet_on_three_samples_by_hand():
    # 1-D features a = 0, b = 1 (pid 0), c = 3 (pid 1): d(a,b) = 1, d(a,c) = 3, d(b,c) = 2,
    # d(i,i) = sqrt(1e-12) = 1e-6 (the anchor is among its own positives, as theirs).
    e, eps = math.exp, 1e-6
    # positives of a and of b: scores (1e-6, 1), max 1 ->
    #   d_p = (1e-6 e^(1e-6 - 1) + 1) / (e^(1e-6 - 1) + 1 + 1e-6)
    dp_ab = (eps * e(eps - 1) + 1) / (e(eps - 1) + 1 + eps)
    # negatives of a: c at 3, scores -3, max over the masked row = 0 -> 3 e^-3 / (e^-3 + 1e-6)
    dn_a = 3 * e(-3) / (e(-3) + eps)
    dn_b = 2 * e(-2) / (e(-2) + eps)
    # c: its only positive is itself (1e-6; max 1e-6 -> weight 1 / (1 + 1e-6));
    #    negatives a (3) and b (2), max 0 -> (3 e^-3 + 2 e^-2) / (e^-3 + e^-2 + 1e-6)
    dp_c = eps / (1 + eps)
    dn_c = (3 * e(-3) + 2 * e(-2)) / (e(-3) + e(-2) + eps)
    dp, dn = [dp_ab, dp_ab, dp_c], [dn_a, dn_b, dn_c]

    def softplus(v):
        return math.log1p(math.exp(v))

    feats = torch.tensor([[0.], [1.], [3.]])
    pid = torch.tensor([0, 0, 1])
    # square False, gamma 1: mean softplus(d_p - d_n) (= their TripletLoss_WRT)
    wrt = sum(softplus(p - n) for p, n in zip(dp, dn)) / 3
    assert adp_triplet(feats, pid, square=False).item() == pytest.approx(wrt, abs=1e-5)
    # square True, gamma 2: every d_p < d_n -> softplus(-min(2 (d_p - d_n)^2, 88))
    sq = sum(softplus(-min(2 * (p - n) ** 2, 88)) for p, n in zip(dp, dn)) / 3
    assert adp_triplet(feats, pid, gamma=2., square=True).item() == pytest.approx(sq, abs=1e-5)
    # alpha 2: positives of a and b weigh e^(2 (1e-6 - 1)) vs 1
    dp2 = (eps * e(2 * (eps - 1)) + 1) / (e(2 * (eps - 1)) + 1 + eps)
    assert dp2 > dp_ab
    # a violated triplet (d_p > d_n) takes softplus(+x): swap c's label with b's
    pid2 = torch.tensor([0, 1, 0])      # a ~ c (3 apart), b alone; d_p(a) = ~3 > d_n(a) = ~1
    loss = adp_triplet(feats, pid2, square=True)
    assert loss.item() > math.log(2)    # at least one softplus of a positive value


def test_adp_triplet_is_a_registered_term_reading_the_pooled_features():
    term = build_loss(['adp_triplet'], [1.0], {'adp_triplet': {'square': False}})
    feats = torch.tensor([[0.], [1.], [3.]])
    total, parts = term({'features': feats}, {'pid': torch.tensor([0, 0, 1])})
    assert total.item() == pytest.approx(adp_triplet(feats, torch.tensor([0, 0, 1]),
                                                     square=False).item())


# ---------------------------------------------------------------- channel augmentations
class ScriptedRng:
    """Returns the scripted values in order and records the ranges asked for."""

    def __init__(self, *values):
        self.values, self.calls = list(values), []

    def _next(self, call):
        self.calls.append(call)
        return self.values.pop(0)

    def randint(self, a, b):
        return self._next(('randint', a, b))

    def uniform(self, a, b):
        return self._next(('uniform', a, b))


def image():
    """3 x 4 x 4: R = 1, G = 2, B = 3 everywhere."""
    return torch.stack([torch.full((4, 4), v) for v in (1., 2., 3.)])


@pytest.mark.parametrize('idx,expect', [(0, 1.), (1, 2.), (2, 3.)])
def test_channel_adap_gray_copies_one_channel(idx, expect):
    rng = ScriptedRng(idx)
    out = ca.channel_adap_gray(image(), rng)
    assert rng.calls == [('randint', 0, 3)]
    assert torch.equal(out, torch.full((3, 4, 4), expect))


def test_channel_adap_gray_grey_or_unchanged():
    # idx 3 and uniform 0.3 <= 0.5: grey 0.2989 x 1 + 0.5870 x 2 + 0.1140 x 3 = 1.8149
    out = ca.channel_adap_gray(image(), ScriptedRng(3, 0.3))
    assert torch.allclose(out, torch.full((3, 4, 4), 1.8149))
    rng = ScriptedRng(3, 0.7)             # uniform 0.7 > 0.5: unchanged
    assert torch.equal(ca.channel_adap_gray(image(), rng), image())
    assert rng.calls == [('randint', 0, 3), ('uniform', 0, 1)]


def test_channel_exchange_draws_0_to_gray():
    rng = ScriptedRng(2)
    assert torch.equal(ca.channel_exchange(image(), rng), torch.full((3, 4, 4), 3.))
    assert rng.calls == [('randint', 0, 2)]       # gray = 2: the grey value is unreachable
    out = ca.channel_exchange(image(), ScriptedRng(3), gray=3)
    assert torch.allclose(out, torch.full((3, 4, 4), 1.8149))


def test_channel_random_erasing_fills_the_box_with_their_means():
    # go (0.2 <= 0.5); area 0.25 x 16 = 4, aspect 1 -> h = w = round(sqrt(4)) = 2 (< 4);
    # top = randint(0, 4 - 2) -> 1, left = randint(0, 2) -> 0: rows 1-2, columns 0-1
    rng = ScriptedRng(0.2, 0.25, 1.0, 1, 0)
    out = ca.channel_random_erasing(image(), rng)
    assert rng.calls == [('uniform', 0, 1), ('uniform', 0.02, 0.4),
                         ('uniform', 0.3, 1 / 0.3), ('randint', 0, 2), ('randint', 0, 2)]
    expect = image()
    for c, mean in enumerate((0.4914, 0.4822, 0.4465)):
        expect[c, 1:3, 0:2] = mean
    assert torch.equal(out, expect)
    # a box that does not fit (h = round(sqrt(0.4 x 16 x 3.33)) = 5 >= 4) is drawn again
    rng = ScriptedRng(0.0, 0.4, 1 / 0.3, 0.25, 1.0, 0, 2)
    out = ca.channel_random_erasing(image(), rng)
    assert len(rng.calls) == 7 and torch.equal(out[:, 0:2, 2:4], expect[:, 1:3, 0:2])
    assert torch.equal(ca.channel_random_erasing(image(), ScriptedRng(0.6)), image())


def test_batch_form_draws_from_each_items_seed_only():
    x = torch.randn(4, 3, 8, 4)
    steps = ca.ChannelSteps(['random_flip', 'channel_erase', 'channel_adap_gray'])
    assert steps.names == ['channel_erase', 'channel_adap_gray']
    a = steps(x.clone(), torch.tensor([5, 6, 7, 8]))
    b = steps(x.clone(), torch.tensor([5, 6, 7, 8]))          # a resumed run: same draws
    assert torch.equal(a, b)
    c = steps(x[[2, 0]].clone(), torch.tensor([7, 5]))         # item 2 alone, reordered
    assert torch.equal(c[0], a[2]) and torch.equal(c[1], a[0])


def test_modality_scoped_steps_and_the_exchange_view():
    class Items(torch.utils.data.Dataset):
        def __len__(self):
            return 2

        def __getitem__(self, i):
            return {'img': image() + torch.rand(3, 4, 4) * 0.01, 'pid': 10 + i, 'camid': i,
                    'modality': i, 'impath': 'p{}'.format(i)}

    items = ca.ChannelAugItems(Items(), ['channel_adap_gray_infrared'], view=True)
    torch.manual_seed(0)
    batch = ca.collate_views([items[0], items[1]])
    # item 0 visible: untouched by the infrared step, plus its exchanged view (one channel)
    assert batch['img'].shape == (3, 3, 4, 4)
    assert batch['pid'].tolist() == [10, 11, 10] and batch['modality'].tolist() == [0, 1, 0]
    assert batch['impath'] == ['p0', 'p1', 'p0']
    assert torch.allclose(batch['img'][0], image(), atol=0.011)
    view = batch['img'][2]
    assert torch.equal(view[0], view[1]) and torch.equal(view[1], view[2])


# ---------------------------------------------------------------- schedule, flip average
@pytest.mark.parametrize('epoch,factor', [(0, 0.1), (4, 0.5), (9, 1.0), (19, 1.0), (20, 0.1),
                                          (49, 0.1), (50, 0.01), (99, 0.01)])
def test_their_lr_schedule(epoch, factor):
    # lr (epoch + 1) / 10 for 0-9, lr for 10-19, 0.1 lr for 20-49, 0.01 lr from 50
    assert warmup_multi_step_factor(epoch, 10, [20, 50], 0.1) == pytest.approx(factor)


def test_flip_average_in_the_feature_extraction():
    from vireid_plugin.engine.evaluation import extract_pool_features

    class Pool(torch.utils.data.Dataset):
        def __init__(self):
            self.data = [0, 1]

        def __len__(self):
            return len(self.data)

        def __getitem__(self, i):
            img = torch.arange(6.).view(1, 1, 6) + 10 * self.data[i]
            return {'img': img, 'modality': 0, 'camid': 0}

    def first_row(imgs, modality, camid):
        return imgs[:, 0, 0, :]

    import contextlib
    plain = extract_pool_features(first_row, Pool(), 2, 0, 'cpu', contextlib.nullcontext,
                                  pool=[0, 1])
    flipped = extract_pool_features(first_row, Pool(), 2, 0, 'cpu', contextlib.nullcontext,
                                    pool=[0, 1], flip_average=True)
    assert plain[0].tolist() == [0, 1, 2, 3, 4, 5]
    # (row + reversed row) / 2: every entry (0 + 5) / 2 = 2.5; the second item 12.5
    assert flipped.tolist() == [[2.5] * 6, [12.5] * 6]


# ---------------------------------------------------------------- through the data manager
@pytest.fixture(scope='module')
def small_sysu(tmp_path_factory):
    return synthetic_sysu(tmp_path_factory, 8, 2, 6, name='agw_sysu')


def _cfg(root, *extra):
    import os
    from vireid_plugin.config import load_config
    demo = os.path.join(os.path.dirname(__file__), '..', 'configs', 'demo_agw.yaml')
    return load_config(demo, ['data.root', root, 'data.synthetic', 'True',
                              'train.batch_size', '16', 'data.workers', '0'] + list(extra))


CAJ = '[random_flip,random_pad_crop,channel_erase,channel_adap_gray_infrared,' \
      'channel_exchange_view]'


def test_caj_batches_hold_the_exchanged_visible_views(small_sysu, tmp_path):
    from vireid_plugin.runner import build_data_manager
    dm = build_data_manager(_cfg(small_sysu, 'data.transforms', CAJ, 'data_cache.enabled',
                                 'False', 'data.save_dir', str(tmp_path)))
    data = next(iter(dm.train_loader))
    # 2 ids x (4 visible + 4 infrared) = 16, plus the 8 visible items' second views
    assert data['img'].shape[0] == 24 and data['pid'].shape[0] == 24
    assert (data['modality'] == 0).sum() == 16 and (data['modality'][16:] == 0).all()
    visible = (data['modality'][:16] == 0).nonzero().flatten()
    assert torch.equal(data['pid'][16:], data['pid'][visible])
    views = data['img'][16:]
    assert torch.equal(views[:, 0], views[:, 1]) and torch.equal(views[:, 1], views[:, 2])
    again = next(iter(dm.train_loader))       # a second pass of epoch 0: the same draws
    assert torch.equal(again['img'], data['img'])


def test_uint8_cache_path_runs_the_channel_steps_and_refuses_the_scoped_ones(small_sysu,
                                                                            tmp_path):
    from vireid_plugin.config import ConfigError
    from vireid_plugin.runner import build_data_manager
    dm = build_data_manager(_cfg(small_sysu, 'data.transforms', '[random_flip,channel_erase]',
                                 'data_cache.enabled', 'True', 'data_cache.dir',
                                 str(tmp_path / 'cache'), 'data.save_dir', str(tmp_path)))
    assert dm.batch_transform.channel.names == ['channel_erase']
    data = next(iter(dm.train_loader))
    out = dm.batch_transform(data['img'], data['aug_seed'])
    assert out.shape == (16, 3, 64, 32) and out.dtype == torch.float32
    with pytest.raises(ConfigError, match=r"channel_adap_gray_infrared.*gpu_augment False"):
        build_data_manager(_cfg(small_sysu, 'data.transforms', CAJ, 'data_cache.enabled',
                                'True', 'data_cache.dir', str(tmp_path / 'cache'),
                                'data.save_dir', str(tmp_path)))


def test_caj_recipe_settings_train_and_evaluate_end_to_end(cli, small_sysu, tmp_path):
    import json
    import os
    demo = os.path.join(os.path.dirname(__file__), '..', 'configs', 'demo_agw.yaml')
    rc = cli.main(['--config-file', demo, 'data.root', small_sysu, 'data.synthetic', 'True',
                   'data.save_dir', str(tmp_path), 'data.transforms', CAJ,
                   'data_cache.enabled', 'False', 'train.batch_size', '16',
                   'train.max_epoch', '1', 'train.optim', 'sgd', 'train.lr', '0.01',
                   'train.lr_scheduler', 'warmup_multi_step', 'train.warmup_epochs', '10',
                   'train.stepsize', '[20, 50]', 'loss.adp_triplet.square', 'True',
                   'test.flip_average', 'True', 'test.num_trials', '1',
                   'test.eval_before_train', 'False'])
    assert rc == 0
    with open(os.path.join(str(tmp_path), 'results.json')) as f:
        rows = json.load(f)[-1]['rows']
    assert rows[0]['mAP'] > 0


def test_stem_bn_takes_its_statistics_from_its_own_modality_only():
    # their visible stem sees only x1: its BN's batch statistics are of the visible items
    from vireid_plugin.models.agw.model import masked_batch_norm
    torch.manual_seed(4)
    ref = torch.nn.BatchNorm2d(3)
    ours = torch.nn.BatchNorm2d(3)
    for bn in (ref, ours):
        torch.nn.init.uniform_(bn.weight, 0.5, 1.5)
        torch.nn.init.uniform_(bn.bias, -0.5, 0.5)
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(5, 3, 4, 2)
    mask = torch.tensor([True, False, True, True, False])
    expect = ref.train()(x[mask])                    # PyTorch's BN on the masked items alone
    out = masked_batch_norm(ours, x, mask)
    assert torch.allclose(out[mask], expect, atol=1e-5)
    for name in ('running_mean', 'running_var', 'num_batches_tracked'):
        assert torch.allclose(getattr(ours, name).float(), getattr(ref, name).float(),
                              atol=1e-6), name
    before = ours.running_mean.clone()
    masked_batch_norm(ours, x, torch.zeros(5, dtype=torch.bool))   # no item: stats unchanged
    assert torch.equal(ours.running_mean, before) and int(ours.num_batches_tracked) == 1


def test_pretrained_asks_timm_for_torchvisions_resnet50_weights(monkeypatch):
    # timm's resnet50.tv_in1k is torchvision's ResNet-50; its key names are torchvision's
    import torchvision
    from vireid_plugin.models.agw import builder
    torch.manual_seed(5)
    ref = torchvision.models.resnet50()
    asked = []
    monkeypatch.setattr(builder, 'download_timm_weights',
                        lambda name: asked.append(name) or ref.state_dict())
    model = build_model('agw_resnet50', 4)
    assert asked == ['resnet50.tv_in1k']
    assert torch.equal(model.visible_stem.conv1.weight, ref.conv1.weight)
    assert torch.equal(model.thermal_stem.bn1.running_var, ref.bn1.running_var)
    assert torch.equal(model.layer4[2].conv3.weight, ref.layer4[2].conv3.weight)
    assert torch.equal(model.layer1[0].downsample[1].weight, ref.layer1[0].downsample[1].weight)
