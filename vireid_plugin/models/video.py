"""Video ReID by temporal average pooling over a per-frame image model."""
import torch.nn as nn

from ..registry import MODELS
from .vit_reid import build_vit_reid

__all__ = ['TemporalAvgReID', 'vit_base_video_avg', 'vit_tiny_video_avg']


class TemporalAvgReID(nn.Module):
    """Run an image ReID model on (B*T, C, H, W), average pre-BN features over T.

    ``image_model`` must provide ``forward_global(x, modality, camid)`` (pre-BN
    features) and ``head`` (BNNeck); the BNNeck then sees one feature per clip,
    so the output contract is the image one: dict in train, (B, D) in eval.
    """

    def __init__(self, image_model):
        super().__init__()
        self.image_model = image_model
        self.feature_dim = image_model.feature_dim

    def forward(self, x, modality=None, camid=None):
        if x.dim() != 5:
            raise ValueError('{} expects clips (B, T, C, H, W), got shape {}'.format(
                type(self).__name__, tuple(x.shape)))
        b, t = x.shape[:2]
        # Per-clip labels apply to each of its frames.
        per_frame = [None if v is None else v.repeat_interleave(t) for v in (modality, camid)]
        feat = self.image_model.forward_global(x.flatten(0, 1), *per_frame)
        return self.image_model.head(feat.view(b, t, -1).mean(1))


@MODELS.register('vit_base_video_avg')
def vit_base_video_avg(num_classes, loss='softmax', pretrained=True, use_gpu=True, **kwargs):
    return TemporalAvgReID(build_vit_reid('vit_base_reid', num_classes, pretrained, **kwargs))


@MODELS.register('vit_tiny_video_avg')
def vit_tiny_video_avg(num_classes, loss='softmax', pretrained=True, use_gpu=True, **kwargs):
    return TemporalAvgReID(build_vit_reid('vit_tiny_reid', num_classes, pretrained, **kwargs))
