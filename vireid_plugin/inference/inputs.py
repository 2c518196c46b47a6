"""What a user hands the extractor, turned into loader items.

Inputs: image paths, PIL images, numpy arrays (H, W, 3) or (H, W) uint8 (RGB, as
``PIL.Image.fromarray`` reads them), or float tensors (C, H, W) / (B, C, H, W) that are
already model inputs (as torchreid's ``FeatureExtractor`` takes them). For a video
model an item is a clip: a folder of frames (in natural order, frame 2 before frame 10)
or a list of frame paths.

Folders are read recursively (:func:`list_images`, :func:`list_clips`). A file that
cannot be read is reported with its path and skipped (``on_bad='skip'``) or stops
the extraction (``on_bad='stop'``).
"""
import os
import re

import numpy as np
import torch
from PIL import Image

from ..data.frames import sample_frame_indices
from ..data.io import ImageReadError, read_image
from .errors import InferenceInputError

__all__ = ['IMAGE_EXTENSIONS', 'MODALITIES', 'list_images', 'list_clips', 'modality_code',
           'per_item', 'ItemReader', 'describe_item']

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp', '.ppm', '.pgm')
#: modality names and codes (0 = visible, 1 = infrared, the plugin's convention)
MODALITIES = {'visible': 0, 'rgb': 0, 'infrared': 1, 'ir': 1, 'thermal': 1}
ON_BAD = ('skip', 'stop')


def natural_key(name):
    """Sort key comparing digit runs as numbers: frame 2 before frame 10."""
    return [(0, int(t), '') if t.isdigit() else (1, 0, t) for t in re.split(r'(\d+)', name)]


def _is_image_name(name):
    return name.lower().endswith(IMAGE_EXTENSIONS) and not name.startswith('.')


def list_images(folder, others=None):
    """Every image file under ``folder`` (recursively, by extension), sorted; the other
    files (hidden ones aside) are appended to the list ``others`` when given."""
    if not os.path.isdir(folder):
        raise InferenceInputError('image folder not found: {}'.format(folder))
    found = []
    for dirpath, dirnames, names in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith('.'))
        found += [os.path.join(dirpath, n) for n in names if _is_image_name(n)]
        if others is not None:
            others += sorted(os.path.join(dirpath, n) for n in names
                             if not _is_image_name(n) and not n.startswith('.'))
    if not found:
        raise InferenceInputError('no image files ({}) under {}'.format(
            ' '.join(IMAGE_EXTENSIONS), folder))
    return sorted(found)


def list_clips(folder):
    """Clips under ``folder``: each folder holding image files is one tracklet (its frames
    in natural order: 2.jpg before 10.jpg); returns a list of frame-path lists, sorted by folder."""
    if not os.path.isdir(folder):
        raise InferenceInputError('clip folder not found: {}'.format(folder))
    clips = []
    for dirpath, dirnames, names in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith('.'))
        frames = sorted((n for n in names if _is_image_name(n)), key=natural_key)
        if frames:
            clips.append([os.path.join(dirpath, n) for n in frames])
    if not clips:
        raise InferenceInputError('no folder of frames (tracklet) under {}'.format(folder))
    return sorted(clips, key=lambda c: os.path.dirname(c[0]))


def modality_code(value, what='modality'):
    """0 / 1 of a modality given as a name ('visible', 'infrared', 'rgb', 'ir',
    'thermal') or a code; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        code = MODALITIES.get(value.strip().lower())
        if code is None:
            raise InferenceInputError('{} {!r}: expected one of {} (or 0 = visible, '
                                      '1 = infrared)'.format(what, value, ', '.join(MODALITIES)))
        return code
    if int(value) not in (0, 1):
        raise InferenceInputError('{} {!r}: expected 0 (visible) or 1 (infrared)'.format(
            what, value))
    return int(value)


def per_item(value, n, what, convert=int):
    """A per-item list (length ``n``) of a value given once or per item; None: None."""
    if value is None:
        return None
    if isinstance(value, (list, tuple, np.ndarray, torch.Tensor)):
        values = list(value.tolist() if hasattr(value, 'tolist') else value)
        if len(values) != n:
            raise InferenceInputError('{} has {} values for {} inputs'.format(
                what, len(values), n))
        if any(v is None for v in values):
            raise InferenceInputError('{}: give it for every input or for none'.format(what))
        return [convert(v) for v in values]
    return [convert(value)] * n


def describe_item(item):
    """The path of an item (a clip: its folder), else a short type name."""
    if isinstance(item, str):
        return item
    if isinstance(item, (list, tuple)) and item and isinstance(item[0], str):
        return os.path.dirname(item[0]) or item[0]
    return '<{}>'.format(type(item).__name__)


class ItemReader(torch.utils.data.Dataset):
    """Items to uint8 tensors (3, H, W), or (T, 3, H, W) clips, as the evaluation reads
    them; an item that cannot be read gives ``(None, message)`` (the loader's collate
    sorts them out, so worker processes never raise on a user's file)."""

    def __init__(self, items, preprocessing):
        self.items = list(items)
        self.pre = preprocessing

    def __len__(self):
        return len(self.items)

    def _image(self, item):
        if isinstance(item, str):
            return self.pre.to_uint8(read_image(item))
        if isinstance(item, Image.Image):
            return self.pre.to_uint8(item)
        if isinstance(item, np.ndarray):
            if item.dtype != np.uint8 or item.ndim not in (2, 3):
                raise ImageReadError('numpy images must be (H, W, 3) or (H, W) uint8, got {} '
                                     '{}'.format(item.dtype, item.shape))
            return self.pre.to_uint8(Image.fromarray(item))
        raise ImageReadError('cannot read an input of type {} (expected a path, a PIL image, '
                             'a numpy array or a tensor)'.format(type(item).__name__))

    def _clip(self, item):
        if isinstance(item, str):
            if not os.path.isdir(item):
                raise ImageReadError('clip folder not found: {}'.format(item), path=item)
            frames = [os.path.join(item, n) for n in sorted(os.listdir(item), key=natural_key)
                      if _is_image_name(n)]
        else:
            frames = list(item)
        if not frames:
            raise ImageReadError('clip {} holds no frames'.format(describe_item(item)))
        picks = sample_frame_indices(len(frames), self.pre.seq_len, train=False,
                                     rule=self.pre.frame_rule)
        return torch.stack([self._image(frames[int(j)]) for j in picks])

    def __getitem__(self, i):
        item = self.items[i]
        try:
            return i, (self._clip(item) if self.pre.kind == 'video' else self._image(item)), None
        except ImageReadError as exc:
            return i, None, str(exc)


def collate(batch):
    """(indices read, uint8 batch or None, [(index, message)] of items that failed)."""
    good = [(i, x) for i, x, _ in batch if x is not None]
    bad = [(i, msg) for i, x, msg in batch if x is None]
    x = torch.stack([x for _, x in good]) if good else None
    return [i for i, _ in good], x, bad
