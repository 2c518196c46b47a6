"""AGW (Ye et al., TPAMI 2021): the two-stream ResNet-50 of the authors' ``embed_net(
no_local='on', gm_pool='on')`` (mangye16/Cross-Modal-Re-ID-baseline ``model.py``).

- One stem per modality (conv1, bn1, ReLU, max-pool of a ResNet-50): visible images
  go through ``visible_stem``, infrared ones through ``thermal_stem``; in training the
  BN of each stem takes its statistics from its own modality only, as theirs.
- Shared ``layer1``-``layer4`` with last stride 1 (no dilation); the shared layers
  see the whole mixed batch (BN statistics over both modalities, as their
  ``torch.cat((x1, x2), 0)``).
- Non-local blocks (``nonlocal_block.py``) after the last ``NON_LOCAL[k]`` blocks of
  layer k: the last 2 of layer2, the last 3 of layer3, none in layers 1 and 4
  (their ``non_layers = [0, 2, 3, 0]``; indices ``layers[k] - (i + 1)``).
- GeM pooling with p = 3: ``(mean(x^p) + 1e-12)^(1/p)`` over the positions, no clamp.
- BN neck ``BatchNorm1d`` with its bias frozen (weight N(1, 0.01), bias 0), then a
  bias-free classifier initialised N(0, 0.001).

Training returns the GeM feature ('features', for the triplet term), the BN feature
('bn_features') and the classifier's logits of the BN feature ('logits'). Evaluation
returns one l2-normalised feature: the BN feature ('bn', their "FC" row, default) or
the pooled feature ('pool', their "POOL" row); their ``test.py`` ranks by the inner
product of these normalised features, i.e. by cosine similarity.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..contract import engine_required, outputs_for
from .nonlocal_block import NonLocal
from .released import released_checkpoint_filter

__all__ = ['AGWReID', 'ModalityStem', 'masked_batch_norm', 'gem', 'TEST_FEATURES', 'POOLINGS',
           'NON_LOCAL']

TEST_FEATURES = ('bn', 'pool')
POOLINGS = ('gem', 'avg')
#: non-local blocks after the last n blocks of layer1..layer4 (their non_layers)
NON_LOCAL = (0, 2, 3, 0)


def gem(x, p=3.0, eps=1e-12):
    """Their GeM: ``(mean over positions of x^p + eps)^(1/p)`` of (B, C, H, W) -> (B, C)."""
    return (x.flatten(2).pow(p).mean(-1) + eps).pow(1.0 / p)


def non_local_positions(num_blocks, count):
    """Indices of the blocks of a layer followed by a non-local block: the last ``count``."""
    return sorted(num_blocks - (i + 1) for i in range(min(count, num_blocks)))


def masked_batch_norm(bn, x, mask):
    """``bn`` (a ``BatchNorm2d``) in training mode with its batch statistics taken over the
    items of ``mask`` (B,) only, running statistics updated from them as PyTorch's BN does
    (unbiased variance, ``bn.momentum``; left alone when ``mask`` selects nothing). Every
    item is normalised with those statistics. No data-dependent control flow or shapes,
    so it compiles into one graph."""
    w = mask.to(x.dtype).view(-1, 1, 1, 1)
    n = w.sum() * x.shape[2] * x.shape[3]
    mean = (x * w).sum((0, 2, 3)) / n.clamp(min=1)
    var = ((x - mean.view(1, -1, 1, 1)).pow(2) * w).sum((0, 2, 3)) / n.clamp(min=1)
    out = (x - mean.view(1, -1, 1, 1)) * torch.rsqrt(var.view(1, -1, 1, 1) + bn.eps)
    out = out * bn.weight.view(1, -1, 1, 1) + bn.bias.view(1, -1, 1, 1)
    if bn.track_running_stats:
        with torch.no_grad():
            seen = n > 0
            m = bn.momentum
            unbiased = var * n / (n - 1).clamp(min=1)
            bn.running_mean.copy_(torch.where(seen, (1 - m) * bn.running_mean + m * mean,
                                              bn.running_mean))
            bn.running_var.copy_(torch.where(seen, (1 - m) * bn.running_var + m * unbiased,
                                             bn.running_var))
            bn.num_batches_tracked.add_(seen.long())
    return out


class ModalityStem(nn.Module):
    """conv1, bn1, ReLU, max-pool of a ResNet (timm's names: ``act1`` is the ReLU).
    ``forward(x, mask)`` in training takes bn1's batch statistics over the items of
    ``mask`` only: the stem's own modality, as their stem that only sees its images."""

    def __init__(self, resnet):
        super().__init__()
        self.conv1, self.bn1, self.act1, self.maxpool = \
            resnet.conv1, resnet.bn1, resnet.act1, resnet.maxpool

    def forward(self, x, mask=None):
        x = self.conv1(x)
        if self.training and mask is not None:
            x = masked_batch_norm(self.bn1, x, mask)
        else:
            x = self.bn1(x)
        return self.maxpool(self.act1(x))


class AGWReID(nn.Module):
    """Two-stream ResNet with non-local blocks, GeM and a BN neck (see the module doc).

    Args:
        resnets: three ResNets of one architecture (timm's ``ResNet``, last stride 1):
            the visible stem, the thermal stem and the shared layers come from one each,
            as their three ``resnet50`` copies.
        num_classes: training identities.
        non_local: the non-local blocks (their ``no_local='on'``).
        pooling: 'gem' (their ``gm_pool='on'``) or 'avg'.
        gem_p: GeM's exponent (3).
        test_feature: 'bn' or 'pool': the l2-normalised feature evaluation returns.
        backbone_lr_mult: LR multiplier of everything but the neck and the classifier
            (their SGD groups: 0.1 x LR on the backbone).
    """

    #: how the authors' ``test.py`` ranks: -q @ g^T of l2-normalised features
    TEST_DISTANCE = 'cosine'
    TEST_DISTANCE_SOURCE = ('AGW/CAJ test.py: inner product of l2-normalised features '
                            '(mangye16/Cross-Modal-Re-ID-baseline)')

    def __init__(self, resnets, num_classes, non_local=True, pooling='gem', gem_p=3.0,
                 test_feature='bn', backbone_lr_mult=0.1, arch='agw'):
        super().__init__()
        if test_feature not in TEST_FEATURES:
            raise ValueError('agw.test_feature must be one of {}, got {!r}'.format(
                TEST_FEATURES, test_feature))
        if pooling not in POOLINGS:
            raise ValueError('agw.pooling must be one of {}, got {!r}'.format(POOLINGS, pooling))
        visible, thermal, base = resnets
        self.arch = arch
        self.visible_stem = ModalityStem(visible)
        self.thermal_stem = ModalityStem(thermal)
        self.layer1, self.layer2, self.layer3, self.layer4 = \
            base.layer1, base.layer2, base.layer3, base.layer4
        self.non_local = bool(non_local)
        self.nl_positions = {}
        for k, count in enumerate(NON_LOCAL, start=1):
            layer = getattr(self, 'layer{}'.format(k))
            positions = non_local_positions(len(layer), count) if self.non_local else []
            if positions:
                width = _out_channels(layer)
                self.nl_positions[k] = positions
                setattr(self, 'nl{}'.format(k), nn.ModuleList(NonLocal(width)
                                                              for _ in positions))
        self.feature_dim = _out_channels(self.layer4)
        self.pooling, self.gem_p = pooling, float(gem_p)
        self.bottleneck = nn.BatchNorm1d(self.feature_dim)
        self.bottleneck.bias.requires_grad_(False)   # no shift
        nn.init.normal_(self.bottleneck.weight, 1.0, 0.01)
        nn.init.zeros_(self.bottleneck.bias)
        self.classifier = nn.Linear(self.feature_dim, num_classes, bias=False)
        nn.init.normal_(self.classifier.weight, 0.0, 0.001)
        self.test_feature = test_feature
        self.backbone_lr_mult = float(backbone_lr_mult)

    # ---- what the optimiser and the checkpoint loader ask ---------------------------
    def lr_multipliers(self):
        backbone = ['visible_stem', 'thermal_stem', 'layer1', 'layer2', 'layer3', 'layer4'] + \
            ['nl{}'.format(k) for k in self.nl_positions]
        return {name: self.backbone_lr_mult for name in backbone}

    checkpoint_filter = staticmethod(released_checkpoint_filter)

    # ---- forward -----------------------------------------------------------------------
    def stems(self, x, modality):
        """Each image through the stem of its modality (0 visible, 1 infrared). Both stems
        run on the whole batch and each item keeps its own stem's output; in training each
        stem's BN takes its statistics from its own modality's items only, as their stems,
        which see only their images (one graph, no data-dependent shapes)."""
        infrared = (modality.to(x.device) == 1)
        return torch.where(infrared.view(-1, 1, 1, 1), self.thermal_stem(x, infrared),
                           self.visible_stem(x, ~infrared))

    def forward_features(self, x, modality):
        """Images -> the (B, C, h, w) map of layer4 (stems, shared layers, non-local)."""
        x = self.stems(x, modality)
        for k in (1, 2, 3, 4):
            positions = self.nl_positions.get(k, ())
            blocks = getattr(self, 'nl{}'.format(k), None)
            for i, block in enumerate(getattr(self, 'layer{}'.format(k))):
                x = block(x)
                if i in positions:
                    x = blocks[positions.index(i)](x)
        return x

    def pool(self, x):
        if self.pooling == 'gem':
            return gem(x, self.gem_p)
        return x.mean((2, 3))

    def forward(self, x, modality=None, camid=None, named_outputs=False):
        if modality is None:
            raise engine_required(self.arch, 'it sends each image through the stem of its '
                                  'modality (visible or infrared), which images alone do '
                                  'not tell')
        if not torch.is_tensor(modality):
            modality = torch.as_tensor(modality)
        if modality.dim() == 0:
            modality = modality.expand(x.shape[0])
        pooled = self.pool(self.forward_features(x, modality))
        bn = self.bottleneck(pooled)
        if not self.training:
            return F.normalize(bn if self.test_feature == 'bn' else pooled, dim=1)
        named = {'features': pooled, 'bn_features': bn, 'logits': self.classifier(bn)}
        return outputs_for(self, named, named_outputs)


def _out_channels(layer):
    """Output channels of a ResNet stage (its last block's last BN)."""
    last = layer[-1]
    bn = getattr(last, 'bn3', None) or getattr(last, 'bn2')
    return bn.num_features
