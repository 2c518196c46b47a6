"""Train-transform names the plugin adds to torchreid's list.

torchreid's ``build_transforms`` knows random_flip, random_crop, random_patch,
color_jitter and random_erase and ignores other names; the plugin's names are
inserted into the torchreid-built pipeline before ``ToTensor``.
"""
import torchvision.transforms as T

TORCHREID_TRANSFORMS = ('random_flip', 'random_crop', 'random_patch', 'color_jitter',
                        'random_erase')
# RandomGrayscale on visible images removes colour, which infrared never has
# (MIP's released SYSU recipe uses p = 0.5 on every training image).
PLUGIN_TRANSFORMS = {'random_grayscale': lambda: T.RandomGrayscale(p=0.5)}


def check_transform_names(names):
    unknown = [n for n in names if n.lower() not in TORCHREID_TRANSFORMS + tuple(PLUGIN_TRANSFORMS)]
    if unknown:
        raise ValueError('unknown transform(s) {}; available: {}'.format(
            unknown, ', '.join(TORCHREID_TRANSFORMS + tuple(PLUGIN_TRANSFORMS))))


def add_plugin_transforms(transform, names):
    """Return ``transform`` (a Compose) with the plugin's named transforms before ToTensor."""
    extra = [PLUGIN_TRANSFORMS[n.lower()]() for n in names if n.lower() in PLUGIN_TRANSFORMS]
    if not extra:
        return transform
    steps = list(transform.transforms)
    at = next((i for i, t in enumerate(steps) if isinstance(t, T.ToTensor)), len(steps))
    return T.Compose(steps[:at] + extra + steps[at:])
