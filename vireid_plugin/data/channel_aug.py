"""CAJ's channel augmentations (Ye et al., ICCV 2021; mangye16/Cross-Modal-Re-ID-baseline
``ICCV21_CAJ/ChannelAug.py`` and ``data_loader.py``), on normalised image tensors.

Per-item functions, each drawing from ``rng`` (Python's ``random`` module, as theirs, or a
``random.Random``), on a ``(..., C, H, W)`` tensor (a clip's frames share one draw):

- :func:`channel_random_erasing` (``ChannelRandomErasing(p=0.5)``): with probability p,
  up to 100 attempts of area ``U(0.02, 0.4) x H x W`` and aspect ``U(0.3, 1/0.3)``,
  ``h = round(sqrt(area x aspect))``, ``w = round(sqrt(area / aspect))``; the first box
  with ``h < H`` and ``w < W`` is filled, at ``randint(0, H - h)``, ``randint(0, W - w)``,
  with one value per channel: (0.4914, 0.4822, 0.4465) (their constants, on the
  normalised image);
- :func:`channel_adap_gray` (``ChannelAdapGray(p=0.5)``): ``randint(0, 3)``: 0, 1, 2 copy
  that channel (R, G, B) into all three; 3: with probability p (``uniform(0, 1) <= p``)
  all three become ``0.2989 R + 0.5870 G + 0.1140 B``, else unchanged;
- :func:`channel_exchange` (``ChannelExchange(gray=2)``): ``randint(0, gray)``: 0, 1, 2
  copy that channel; 3 (reachable only with gray >= 3) the grey value.

Registered ``data.transforms`` names (run after normalisation and ``random_erase``, in
the order named; ``_infrared`` / ``_visible``: only on that modality's images):
``channel_erase``, ``channel_adap_gray``, ``channel_exchange``, and the modality-scoped
forms of each, e.g. ``channel_adap_gray_infrared`` (CAJ's thermal pipeline). The name
``channel_exchange_view`` is CAJ's second visible view (their ``transform_color1``):
every visible item also yields the same image through its own draw of the whole
pipeline, the visible steps, then ``channel_exchange``; the batch holds both views
with the same label (their ``labels = cat(label1, label1, label2)``).

Randomness: on the PIL path the steps draw from Python's global generator, which the
sampler's per-item seed sets (``seeded.py``); on the uint8 cache path
:class:`ChannelSteps` applies them to a normalised batch with one ``random.Random`` per
item seeded from that item's ``aug_seed``: both repeat exactly on resume.
"""
import math
import random

import torch

from ..registry import TRANSFORMS
from .wrapped import WrappedDataset

__all__ = ['channel_random_erasing', 'channel_adap_gray', 'channel_exchange', 'CHANNEL_NAMES',
           'VIEW_NAME', 'ChannelSteps', 'ChannelAugItems', 'collate_views', 'channel_names',
           'ERASE_MEAN', 'GREY_WEIGHTS']

ERASE_MEAN = (0.4914, 0.4822, 0.4465)
GREY_WEIGHTS = (0.2989, 0.5870, 0.1140)
ERASE_P, ERASE_AREA, ERASE_RATIO, ERASE_ATTEMPTS = 0.5, (0.02, 0.4), 0.3, 100
ADAP_GRAY_P = 0.5
EXCHANGE_GRAY = 2


def _grey(img):
    r, g, b = img[..., 0, :, :], img[..., 1, :, :], img[..., 2, :, :]
    return GREY_WEIGHTS[0] * r + GREY_WEIGHTS[1] * g + GREY_WEIGHTS[2] * b


def _one_channel(img, plane):
    out = img.clone()
    out[..., :, :, :] = plane.unsqueeze(-3)
    return out


def channel_random_erasing(img, rng=random, p=ERASE_P, area=ERASE_AREA, ratio=ERASE_RATIO,
                           mean=ERASE_MEAN):
    """Their ``ChannelRandomErasing`` (see the module doc); returns a new tensor."""
    if rng.uniform(0, 1) > p:
        return img
    height, width = img.shape[-2:]
    for _ in range(ERASE_ATTEMPTS):
        target = rng.uniform(*area) * height * width
        aspect = rng.uniform(ratio, 1 / ratio)
        h = int(round(math.sqrt(target * aspect)))
        w = int(round(math.sqrt(target / aspect)))
        if w < width and h < height:
            top = rng.randint(0, height - h)
            left = rng.randint(0, width - w)
            out = img.clone()
            if img.shape[-3] == 3:
                for c in range(3):
                    out[..., c, top:top + h, left:left + w] = mean[c]
            else:
                out[..., 0, top:top + h, left:left + w] = mean[0]
            return out
    return img


def channel_adap_gray(img, rng=random, p=ADAP_GRAY_P):
    """Their ``ChannelAdapGray`` (see the module doc); returns a new tensor."""
    idx = rng.randint(0, 3)
    if idx < 3:
        return _one_channel(img, img[..., idx, :, :])
    if rng.uniform(0, 1) > p:
        return img
    return _one_channel(img, _grey(img))


def channel_exchange(img, rng=random, gray=EXCHANGE_GRAY):
    """Their ``ChannelExchange(gray)`` (see the module doc); returns a new tensor."""
    idx = rng.randint(0, gray)
    if idx < 3:
        return _one_channel(img, img[..., idx, :, :])
    return _one_channel(img, _grey(img))


_STEPS = {'channel_erase': channel_random_erasing, 'channel_adap_gray': channel_adap_gray,
          'channel_exchange': channel_exchange}
MODALITIES = {'visible': 0, 'infrared': 1}
#: every registered name: the step on all images, or on one modality's
CHANNEL_NAMES = tuple(_STEPS) + tuple('{}_{}'.format(step, m) for step in _STEPS
                                      for m in MODALITIES)
VIEW_NAME = 'channel_exchange_view'


def channel_names(names):
    """The channel steps among ``data.transforms`` names, lower-cased, in order."""
    return [n.lower() for n in names if n.lower() in CHANNEL_NAMES]


def _parse(name):
    """'channel_adap_gray_infrared' -> (the step, 1); 'channel_erase' -> (the step, None)."""
    for m, code in MODALITIES.items():
        if name.endswith('_' + m):
            return _STEPS[name[:-len(m) - 1]], code
    return _STEPS[name], None


def apply_steps(img, names, modality, rng=random):
    """``img`` through the channel steps ``names`` that apply to ``modality`` (0 / 1)."""
    for name in names:
        step, only = _parse(name)
        if only is None or only == int(modality):
            img = step(img, rng)
    return img


class ChannelSteps:
    """The batch form: ``(x, seeds, modality=None)`` with x the normalised ``(B, C, H, W)``
    or ``(B, T, C, H, W)`` batch and ``seeds`` the items' ``aug_seed`` values; item b
    draws from ``random.Random(seeds[b])`` only. Modality-scoped names need
    ``modality``."""

    def __init__(self, names):
        self.names = channel_names(names)
        self.scoped = [n for n in self.names if _parse(n)[1] is not None]

    def __bool__(self):
        return bool(self.names)

    def __call__(self, x, seeds, modality=None):
        if not self.names:
            return x
        if seeds is None:
            raise ValueError('the channel augmentations {} need the per-item seeds '
                             '(aug_seed)'.format(self.names))
        if self.scoped and modality is None:
            raise ValueError('{} apply to one modality; the batch form got no modality'
                             .format(self.scoped))
        seeds = [int(s) for s in torch.as_tensor(seeds).reshape(-1).tolist()]
        mods = [0] * len(seeds) if modality is None else \
            [int(m) for m in torch.as_tensor(modality).reshape(-1).tolist()]
        if len(seeds) != x.shape[0]:
            raise ValueError('{} seeds for a batch of {}'.format(len(seeds), x.shape[0]))
        out = [apply_steps(x[b], self.names, mods[b], random.Random(seeds[b] ^ _SALT))
               for b in range(x.shape[0])]
        return torch.stack(out)


_SALT = 0x5EEDC4A1   # the channel draws of an item differ from its other draws


class ChannelAugItems(WrappedDataset):
    """Items of ``dataset`` (whose transform ends with normalisation) through the channel
    steps of their modality; with ``view``, a visible item also carries ``img_view``:
    the item loaded again (a new draw of the pipeline), the visible steps, then
    ``channel_exchange`` (CAJ's ``transform_color1``). Read under ``SeededItems``, so
    every draw comes from the item's seed."""

    def __init__(self, dataset, names, view=False):
        super().__init__(dataset)
        self.names, self.view = channel_names(names), bool(view)

    def __getitem__(self, index):
        item = self.dataset[index]
        modality = int(item.get('modality', 0))
        item['img'] = apply_steps(item['img'], self.names, modality)
        if self.view and modality == 0:
            again = self.dataset[index]['img']
            item['img_view'] = channel_exchange(apply_steps(again, self.names, 0))
        return item


def collate_views(items):
    """Default collation, then the second views appended after the batch: every per-item
    field of a visible item with ``img_view`` repeated for its view (their
    ``input1 = cat(input10, input11)``, ``labels = cat(label1, label1, label2)``)."""
    views = [it.pop('img_view', None) for it in items]
    batch = torch.utils.data.default_collate(items)
    which = [i for i, v in enumerate(views) if v is not None]
    if not which:
        return batch
    index = torch.tensor(which)
    for key, value in list(batch.items()):
        if key == 'img':
            batch[key] = torch.cat([value, torch.stack([views[i] for i in which])])
        elif torch.is_tensor(value) and value.dim() and value.shape[0] == len(items):
            batch[key] = torch.cat([value, value[index]])
        elif isinstance(value, list) and len(value) == len(items):
            batch[key] = value + [value[i] for i in which]
    return batch


for _name in CHANNEL_NAMES + (VIEW_NAME,):
    TRANSFORMS.register(_name, 'plugin')
