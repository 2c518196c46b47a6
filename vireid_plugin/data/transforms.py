"""Train-transform names the plugin adds to torchreid's list.

torchreid's ``build_transforms`` knows random_flip, random_crop, random_patch,
color_jitter and random_erase and ignores other names; the plugin's names are
inserted into the torchreid-built pipeline before ``ToTensor``.
"""
import torchvision.transforms as T

from ..registry import TRANSFORMS

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
    unknown = [n for n in names if n.lower() not in TORCHREID_TRANSFORMS + tuple(PLUGIN_TRANSFORMS)]
    if unknown:
        raise ValueError('unknown transform(s) {}; available: {}'.format(
            unknown, ', '.join(TORCHREID_TRANSFORMS + tuple(PLUGIN_TRANSFORMS))))


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


# every name data.transforms accepts, for config validation (config/ never imports data/)
for _name in TORCHREID_TRANSFORMS + tuple(PLUGIN_TRANSFORMS):
    TRANSFORMS.register(_name, 'torchreid' if _name in TORCHREID_TRANSFORMS else 'plugin')
