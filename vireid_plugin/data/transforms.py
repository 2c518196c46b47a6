"""Train-transform names the plugin adds to torchreid's list.

torchreid's ``build_transforms`` knows random_flip, random_crop, random_patch,
color_jitter and random_erase and ignores other names; the plugin's names are
inserted into the torchreid-built pipeline before ``ToTensor``. CAJ's channel
augmentations (``channel_aug.py``: ``channel_erase``, ``channel_adap_gray``, ...) run on
the normalised tensor and may depend on the item's modality: the data manager applies
them to each item after this pipeline.
"""
import torchvision.transforms as T

from ..registry import TRANSFORMS
from .channel_aug import CHANNEL_NAMES, VIEW_NAME

TORCHREID_TRANSFORMS = ('random_flip', 'random_crop', 'random_patch', 'color_jitter',
                        'random_erase')
# Each entry builds its transform from the (height, width) of the images.
PLUGIN_TRANSFORMS = {
    # RandomGrayscale on visible images removes colour, which infrared never has
    # (MIP's released SYSU recipe uses p = 0.5 on every training image).
    'random_grayscale': lambda h, w: T.RandomGrayscale(p=0.5),
    # pad 10 then crop back (TransReID / MIP / AGW); torchreid's random_crop enlarges instead
    'random_pad_crop': lambda h, w: T.Compose([T.Pad(10), T.RandomCrop((h, w))]),
    # MIP's released INPUT.AUG 2: one of colour jitter or Gaussian blur per image
    'jitter_or_blur': lambda h, w: T.RandomChoice([
        T.ColorJitter(brightness=0.3, contrast=0.3), T.GaussianBlur(21, sigma=(0.1, 3.0))]),
}


def check_transform_names(names):
    known = TORCHREID_TRANSFORMS + tuple(PLUGIN_TRANSFORMS) + CHANNEL_NAMES + (VIEW_NAME,)
    unknown = [n for n in names if n.lower() not in known]
    if unknown:
        raise ValueError('unknown transform(s) {}; available: {}'.format(
            unknown, ', '.join(known)))


def add_plugin_transforms(transform, names, height, width):
    """Return ``transform`` (a Compose) with the plugin's named transforms before ToTensor,
    in the order they are named."""
    extra = [PLUGIN_TRANSFORMS[n.lower()](height, width) for n in names
             if n.lower() in PLUGIN_TRANSFORMS]
    if not extra:
        return transform
    steps = list(transform.transforms)
    at = next((i for i, t in enumerate(steps) if isinstance(t, T.ToTensor)), len(steps))
    return T.Compose(steps[:at] + extra + steps[at:])


# ---- the MIP authors' input pipeline (data.resize_interpolation, data.erase_fill,
# data.grayscale_after_erase); the defaults keep torchreid's pipeline unchanged
RESIZE_INTERPOLATIONS = ('bilinear', 'bicubic')
ERASE_FILLS = ('mean', 'random')


def apply_pipeline_options(transform, names, height, width, resize_interpolation='bilinear',
                           erase_fill='mean', grayscale_after_erase=False):
    """Return ``transform`` (torchreid's train Compose plus the plugin's names) changed as
    the MIP authors' ``INPUT.AUG 2`` pipeline (wurqjackey/MIP ``datasets/make_dataloader.py``):

    - ``resize_interpolation='bicubic'``: the train resize is bicubic (their
      ``T.Resize(size, interpolation=3)``; the test resize stays bilinear, as theirs);
    - ``erase_fill='random'``: ``random_erase`` is timm's ``RandomErasing`` in 'pixel'
      mode (per-pixel standard-normal fill, area 2-33 %, log-uniform aspect 0.3-3.3,
      one box, p 0.5: the call they make on their patched timm's ``RandomErasing_ori``)
      instead of torchreid's (``norm_mean`` fill, area 2-40 %);
    - ``grayscale_after_erase=True``: ``random_grayscale`` (p 0.5) runs on the normalised
      tensor after erasing instead of on the image before ``ToTensor``.
    """
    if resize_interpolation not in RESIZE_INTERPOLATIONS:
        raise ValueError('resize_interpolation must be one of {}, got {!r}'.format(
            RESIZE_INTERPOLATIONS, resize_interpolation))
    if erase_fill not in ERASE_FILLS:
        raise ValueError('erase_fill must be one of {}, got {!r}'.format(ERASE_FILLS, erase_fill))
    names = [n.lower() for n in names]
    steps = list(transform.transforms)
    if resize_interpolation == 'bicubic':
        at = next(i for i, t in enumerate(steps) if isinstance(t, T.Resize))
        steps[at] = T.Resize(steps[at].size, interpolation=T.InterpolationMode.BICUBIC,
                             antialias=steps[at].antialias)
    if erase_fill == 'random' and 'random_erase' in names:
        from timm.data.random_erasing import RandomErasing

        from .. import compat
        steps = [RandomErasing(probability=0.5, mode='pixel', max_count=1, device='cpu')
                 if isinstance(t, compat.transforms.RandomErasing) else t for t in steps]
    if grayscale_after_erase and 'random_grayscale' in names:
        steps = [t for t in steps if not isinstance(t, T.RandomGrayscale)]
        steps.append(T.RandomGrayscale(p=0.5))
    return T.Compose(steps)


# every name data.transforms accepts, for config validation (config/ never imports data/)
for _name in TORCHREID_TRANSFORMS + tuple(PLUGIN_TRANSFORMS):
    TRANSFORMS.register(_name, 'torchreid' if _name in TORCHREID_TRANSFORMS else 'plugin')
