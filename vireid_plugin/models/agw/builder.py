"""Registered AGW models: ``agw_resnet50`` (the authors') and ``agw_resnet_tiny`` (CPU).

The ResNets are timm's (``timm.models.resnet.ResNet``, torchvision's layout and key
names) with layer4's stride set to 1 (their ``last_conv_stride=1``, no dilation).
ImageNet weights: timm's ``resnet50.tv_in1k``, torchvision's original ResNet-50
weights (their ``resnet50-19c8e357.pth`` re-saved by torchvision as
``resnet50-0676ba61.pth``), loaded into all three copies as their three
``resnet50(pretrained=True)`` calls do; ``model.pretrained_path`` names a local
ResNet-50 state dict instead (torchvision's or timm's names).
"""
import warnings

from timm.models.resnet import Bottleneck, ResNet

from ..build import register_arch
from ..weights import (PATH_KEY, PretrainedWeightsError, download_timm_weights, read_checkpoint,
                       timm_weights_check)
from .config import AGW_SECTION  # noqa: F401  (the section must exist before building)
from .model import AGWReID

__all__ = ['AGW_ARCHS', 'build_agw', 'build_resnet', 'load_resnet_weights',
           'agw_resnet50', 'agw_resnet_tiny']

AGW_ARCHS = {
    'agw_resnet50': dict(layers=(3, 4, 6, 3), channels=(64, 128, 256, 512), stem_width=64,
                         timm_name='resnet50.tv_in1k'),
    # CPU demo and tests: 256 features, still 2 + 3 non-local blocks; no ImageNet weights
    'agw_resnet_tiny': dict(layers=(1, 2, 3, 1), channels=(8, 16, 32, 64), stem_width=8,
                            timm_name=None),
}


def build_resnet(layers, channels, stem_width):
    """timm's Bottleneck ResNet with layer4's stride 1 (their ``last_conv_stride=1``)."""
    net = ResNet(Bottleneck, layers=list(layers), channels=tuple(channels),
                 stem_width=stem_width, num_classes=0, zero_init_last=False)
    first = net.layer4[0]
    first.conv2.stride = (1, 1)
    if first.downsample is not None:
        first.downsample[0].stride = (1, 1)
    return net


def load_resnet_weights(resnet, state_dict, source):
    """An ImageNet ResNet state dict into ``resnet`` (its ``fc`` dropped); every other
    tensor must be there with the model's shape."""
    state = {k: v for k, v in state_dict.items() if not k.startswith('fc.')}
    own = resnet.state_dict()
    bad = ['{}: file {} vs model {}'.format(k, tuple(v.shape), tuple(own[k].shape))
           for k, v in state.items() if k in own and v.shape != own[k].shape]
    missing = [k for k in own if k not in state and not k.endswith('num_batches_tracked')]
    if bad or missing:
        raise PretrainedWeightsError(
            '{} is not a ResNet-50 state dict for AGW ({}); {} must name torchvision\'s or '
            'timm\'s resnet50 weights'.format(source, '; '.join(
                (['shapes differ: ' + ', '.join(bad[:4])] if bad else []) +
                (['missing: ' + ', '.join(missing[:4])] if missing else [])), PATH_KEY))
    resnet.load_state_dict(state, strict=False)


def build_agw(arch, num_classes, pretrained=True, num_cameras=0, img_size=None,
              pretrained_path='', **options):
    """``AGW_ARCHS[arch]`` with ImageNet weights in its three ResNet copies (see the module
    doc). ``num_cameras`` and ``img_size`` are not used (no camera embedding; any size)."""
    spec = dict(AGW_ARCHS[arch])
    timm_name = spec.pop('timm_name')
    resnets = [build_resnet(**spec) for _ in range(3)]
    if pretrained or pretrained_path:
        state, source = None, ''
        if pretrained_path:
            state, source = read_checkpoint(pretrained_path), pretrained_path
        elif timm_name is not None:
            state, source = download_timm_weights(timm_name), 'timm {!r}'.format(timm_name)
        else:
            warnings.warn('{} has no ImageNet weights; using random initialisation (set {} '
                          'to load a checkpoint)'.format(arch, PATH_KEY))
        for resnet in resnets if state is not None else ():
            load_resnet_weights(resnet, state, source)
    return AGWReID(resnets, num_classes, arch=arch, **options)


agw_resnet50 = register_arch('agw_resnet50', build_agw, 'agw', timm_weights_check(AGW_ARCHS))
agw_resnet_tiny = register_arch('agw_resnet_tiny', build_agw, 'agw',
                                timm_weights_check(AGW_ARCHS))
