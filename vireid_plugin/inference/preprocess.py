"""How a run reads an image for its evaluation, as one value stored with every index.

The evaluation's test transform is torchreid's ``build_transforms`` test pipeline:
``Resize((height, width))`` on the PIL image (bilinear, antialiased), ``ToTensor``
(``/ 255``), ``Normalize(norm_mean, norm_std)``. Here the per-image part (decode,
RGB, resize) runs in the loader and yields uint8; the division and normalisation run
once per batch (:meth:`Preprocessing.normalize`), the same float operations in the
same order, so the features are the evaluation's bit for bit. Video items are clips
of ``seq_len`` frames picked by the dataset's test rule (``frame_rule``).
"""
from dataclasses import asdict, dataclass, field
from typing import Tuple

import numpy as np
import torch
import torchvision.transforms as T
from torchvision.transforms.functional import pil_modes_mapping

__all__ = ['Preprocessing', 'preprocessing_of']


@dataclass(frozen=True)
class Preprocessing:
    height: int
    width: int
    norm_mean: Tuple[float, ...] = (0.485, 0.456, 0.406)
    norm_std: Tuple[float, ...] = (0.229, 0.224, 0.225)
    pixel_norm: bool = True           # False: features of [0, 1] pixels (torchreid's option)
    interpolation: str = 'bilinear'
    kind: str = 'image'               # 'image' or 'video'
    seq_len: int = 0                  # video: frames per clip
    frame_rule: str = 'chunk'         # video: sample_frame_indices rule at test time
    normalize_feature: bool = False   # test.normalize_feature: L2-normalised features
    _resample: int = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, '_resample',
                           pil_modes_mapping[T.InterpolationMode(self.interpolation)])

    def as_dict(self):
        out = asdict(self)
        out.pop('_resample')
        out['norm_mean'], out['norm_std'] = list(self.norm_mean), list(self.norm_std)
        return out

    @classmethod
    def from_dict(cls, d):
        d = dict(d)
        d['norm_mean'], d['norm_std'] = tuple(d['norm_mean']), tuple(d['norm_std'])
        return cls(**d)

    def to_uint8(self, img):
        """(3, H, W) uint8 tensor of a PIL image (any mode) at the run's size."""
        img = img.convert('RGB') if img.mode != 'RGB' else img
        # the call torchvision's Resize makes on a PIL image, without its per-call checks
        img = img.resize((int(self.width), int(self.height)), self._resample)
        return torch.from_numpy(np.asarray(img).copy()).permute(2, 0, 1)

    def normalize(self, batch):
        """Model input (float32) of a uint8 batch (..., 3, H, W), as ToTensor + Normalize
        (in place on a new float tensor: elementwise, so the same values as out of place)."""
        x = batch.to(torch.float32, copy=True).div_(255)
        if not self.pixel_norm:
            return x
        shape = (3, 1, 1)
        mean = torch.as_tensor(self.norm_mean, dtype=x.dtype, device=x.device).view(shape)
        std = torch.as_tensor(self.norm_std, dtype=x.dtype, device=x.device).view(shape)
        return x.sub_(mean).div_(std)

    def describe(self):
        text = '{}x{}, mean {}, std {}{}'.format(
            self.height, self.width, list(self.norm_mean), list(self.norm_std),
            '' if self.pixel_norm else ' (not applied)')
        if self.kind == 'video':
            text += ', clips of {} frames ({} rule)'.format(self.seq_len, self.frame_rule)
        if self.normalize_feature:
            text += ', L2-normalised features'
        return text


def preprocessing_of(cfg, frame_rule='chunk', **overrides):
    """The evaluation's preprocessing of a run config (``data.*``, ``video.seq_len``,
    ``test.normalize_feature``); ``frame_rule``: how its test set picks clip frames."""
    video = cfg.data.type == 'video'
    spec = dict(height=int(cfg.data.height), width=int(cfg.data.width),
                norm_mean=tuple(float(v) for v in cfg.data.norm_mean),
                norm_std=tuple(float(v) for v in cfg.data.norm_std),
                kind='video' if video else 'image',
                seq_len=int(cfg.video.seq_len) if video else 0,
                frame_rule=frame_rule if video else 'chunk',
                normalize_feature=bool(cfg.test.normalize_feature))
    spec.update({k: v for k, v in overrides.items() if v is not None})
    return Preprocessing(**spec)

