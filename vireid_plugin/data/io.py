"""Image reading that fails loudly (torchreid's reader retries forever).

Thermal cameras often write 16-bit (PIL mode ``I;16``) or float (``F``, ``I``) PNG/TIFF
files holding raw sensor counts, e.g. 7,000 to 9,000 out of 65,535. PIL's
``convert('RGB')`` clips such values to 255: the image reads all white, and training or
evaluation goes on with no word. :func:`read_image` instead maps a high-bit-depth image
to 8 bits by a linear **per-image min-max** stretch, ``round((v - min) / (max - min) *
255)`` (a constant image reads black): the automatic gain control a thermal camera
applies when it writes 8-bit frames, which is how the field's 8-bit infrared images
(SYSU-MM01, RegDB, LLCM) were made. A fixed bit-depth scale (``v / 257``) would turn raw
counts that use a narrow band of the 16-bit range into an almost uniform grey. An image
with a non-finite pixel (NaN, inf) is refused, naming the file and its mode.
"""
import os

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..errors import UserError

__all__ = ['ImageReadError', 'read_image', 'HIGH_DEPTH_MODES', 'to_8bit']

#: PIL modes of one channel deeper than 8 bits: 16-bit integers, 32-bit integers, floats
HIGH_DEPTH_MODES = ('I;16', 'I;16L', 'I;16B', 'I;16N', 'I', 'F')


class ImageReadError(UserError, OSError):
    """An image file is missing or cannot be decoded; ``path``: the file (when known)."""

    def __init__(self, message, path=None):
        super().__init__(message)
        self.path = path


def to_8bit(img, path='<image>'):
    """A one-channel high-bit-depth PIL image as an 8-bit 'L' image (per-image min-max)."""
    values = np.asarray(img, dtype=np.float64)
    if not np.isfinite(values).all():
        raise ImageReadError('image {} (mode {}) has non-finite pixels (NaN or inf); it cannot '
                             'be mapped to 8 bits'.format(path, img.mode), path=path)
    lo, hi = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if hi > lo:
        out = np.rint((values - lo) * (255.0 / (hi - lo)))
    else:
        out = np.zeros(values.shape)
    return Image.fromarray(out.astype(np.uint8))


def read_image(path):
    """Open ``path`` as a 3-channel RGB PIL image (thermal/IR files are often 1-channel;
    16-bit and float ones are stretched to 8 bits, see the module's doc)."""
    if not os.path.isfile(path):
        raise ImageReadError('image file not found: {}'.format(path), path=path)
    try:
        with Image.open(path) as img:
            if img.mode in HIGH_DEPTH_MODES:
                img.load()
                return to_8bit(img, path).convert('RGB')
            if img.mode == 'RGB':   # the decoded image itself (convert would copy it)
                img.load()
                return img
            return img.convert('RGB')
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        if isinstance(exc, ImageReadError):
            raise
        raise ImageReadError('cannot read image {}: {}'.format(path, exc), path=path) from exc
