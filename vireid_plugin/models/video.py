"""Video ReID by temporal average pooling over a per-frame image backbone."""
import torch.nn as nn

from .build import register_arch
from .contract import outputs_for
from .vit_reid import VIT_ARCHS, build_vit_reid
from .weights import timm_weights_check

__all__ = ['TemporalAvgReID', 'vit_base_video_avg', 'vit_tiny_video_avg']


class TemporalAvgReID(nn.Module):
    """Run an image backbone on (B*T, C, H, W), average its features over T, then the head.

    Built from an image ReID model's ``backbone`` (``backbone(x, camid) -> (N, D)``)
    and ``head`` (BNNeck), which become this model's own children: an image
    checkpoint's keys load unchanged, and torchreid's ``open_layers``/``fixbase``
    see ``backbone`` and ``head`` as they do for the image model. The head sees one
    feature per clip, so the output contract is the image one.

    Frames (B, C, H, W) are clips of one frame: torchreid's video engines feed a clip's
    frames one by one (each with the clip's identity) and pool over time themselves.
    """

    #: the ranking of the video references (``test.dist_metric auto``)
    TEST_DISTANCE = 'cosine'
    TEST_DISTANCE_SOURCE = ('MITML (HITSZ-VCM) and AuxNet (BUPTCampus): cosine of '
                            'L2-normalised BN features (AuxNet: Euclidean of them, same ranking)')

    def unused_parameters(self):
        """Names of parameters a training step leaves without a gradient: none (DDP can
        skip its search for them, ``train.ddp_find_unused_parameters auto``)."""
        return []

    def attention_spec(self):
        """The attention figure's layout: the image backbone's, run per frame."""
        return dict(self.backbone.attention_spec(), video=True)

    def __init__(self, image_model):
        super().__init__()
        self.backbone = image_model.backbone
        self.head = image_model.head
        self.feature_dim = image_model.feature_dim

    def forward(self, x, modality=None, camid=None, named_outputs=False):
        if x.dim() == 4:   # frames: clips of one frame each
            x = x[:, None]
        if x.dim() != 5:
            raise ValueError('{} expects clips (B, T, C, H, W) or frames (B, C, H, W), got '
                             'shape {}'.format(type(self).__name__, tuple(x.shape)))
        b, t = x.shape[:2]
        # The clip's camera applies to each of its frames.
        frame_camid = None if camid is None else camid.repeat_interleave(t)
        feat = self.backbone(x.flatten(0, 1), frame_camid)
        return outputs_for(self, self.head(feat.view(b, t, -1).mean(1)), named_outputs)


def build_video_avg(name, num_classes, pretrained=True, **kwargs):
    """``VIDEO_ARCHS[name]``: the temporal average over that image model."""
    return TemporalAvgReID(build_vit_reid(VIDEO_ARCHS[name], num_classes, pretrained, **kwargs))


VIDEO_ARCHS = {'vit_base_video_avg': 'vit_base_reid', 'vit_tiny_video_avg': 'vit_tiny_reid'}
_image_weights = timm_weights_check(VIT_ARCHS)


def _weights(name, **options):
    return _image_weights(VIDEO_ARCHS[name])


vit_base_video_avg = register_arch('vit_base_video_avg', build_video_avg, 'vit', _weights)
vit_tiny_video_avg = register_arch('vit_tiny_video_avg', build_video_avg, 'vit', _weights)
