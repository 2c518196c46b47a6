"""Image-to-text cross-entropy: each sequence must pick its identity's text feature
among the text features of all training identities (CLIP-ReID stage 2 / VLD)."""
import torch.nn.functional as F

from ..registry import LOSSES
from .build import LossTerm

__all__ = ['ImageToTextLoss', 'text_logits']


def text_logits(image, text, normalize=False, scale=1.0):
    """(B, D) x (C, D) -> (B, C) ``scale * image @ text.T`` (cosines if ``normalize``)."""
    image, text = image.float(), text.float()
    if normalize:
        image, text = F.normalize(image, dim=1), F.normalize(text, dim=1)
    return scale * image @ text.t()


@LOSSES.register('i2t')
class ImageToTextLoss(LossTerm):
    """CE of ``text_logits(outputs[key], outputs[text_key])`` against ``batch['pid']``.

    Defaults follow CLIP-ReID and VLD: raw dot products (no normalisation, scale 1)
    and CLIP-ReID's label smoothing 0.1.
    """

    default_key = 'image_proj'
    config = {'label_smooth': 0.1, 'normalize': False, 'scale': 1.0}

    def __init__(self, label_smooth=0.1, normalize=False, scale=1.0, key=None,
                 text_key='text_features'):
        super().__init__(key)
        self.label_smooth = float(label_smooth)
        self.normalize = bool(normalize)
        self.scale = float(scale)
        self.text_key = text_key

    def forward(self, outputs, batch):
        logits = text_logits(self.output(outputs), self._fetch(outputs, self.text_key, 'outputs'),
                             self.normalize, self.scale)
        return F.cross_entropy(logits, self.label(batch), label_smoothing=self.label_smooth)
