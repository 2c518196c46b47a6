"""Image reading that fails loudly (torchreid's reader retries forever)."""
import os

from PIL import Image, UnidentifiedImageError

from ..errors import UserError


class ImageReadError(UserError, OSError):
    """An image file is missing or cannot be decoded; ``path``: the file (when known)."""

    def __init__(self, message, path=None):
        super().__init__(message)
        self.path = path


def read_image(path):
    """Open ``path`` as a 3-channel RGB PIL image (thermal/IR files are often 1-channel)."""
    if not os.path.isfile(path):
        raise ImageReadError('image file not found: {}'.format(path), path=path)
    try:
        with Image.open(path) as img:
            return img.convert('RGB')
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageReadError('cannot read image {}: {}'.format(path, exc), path=path) from exc
