"""The training augmentation as torch ops on a whole batch, on the batch's device.

``BatchAugment`` takes the uint8 batches of the image cache (``data/cache.py``),
``(B, C, H, W)`` images or ``(B, T, C, H, W)`` clips already at the training size,
and returns what the PIL pipeline of the same ``data.transforms`` would have
returned for each item: flipped / cropped / jittered / erased, normalised float32.
Every random choice is drawn per sample with vectorised torch ops (no loop over the
batch), from a ``torch.Generator`` on the batch's device; a clip gets one draw that
all its T frames share (as ``clip_transform.transform_clip`` does on the CPU path).

The order and the distributions are those of torchreid's ``build_transforms`` plus
the plugin's names (``transforms.py``): resize (done by the cache), random_flip,
random_crop, color_jitter, then the plugin's transforms in the order they are named,
to [0, 1], normalise, random_erase (torchreid erases after normalising, with
``norm_mean`` as the fill value). ``random_patch`` keeps a pool of patches across
images and has no batch form: it is refused (use ``data_cache.gpu_augment False``,
which runs the PIL pipeline on the cached pixels).

Differences from the PIL pipeline, each at most about one grey level: intermediate
values are not rounded to uint8 between steps, grayscale uses torchvision's tensor
weights (0.2989, 0.587, 0.114; PIL: 0.299, 0.587, 0.114) and contrast blends with
the unrounded mean grey level.

Randomness: every item's draws come from its own seed only, through a counter-based
generator (``ItemDraws``: splitmix64 of (item seed, draw number), vectorised over the
batch), so an item is augmented the same alone, in any batch, on any rank of any
number of processes, and after a resume with another process count. ``forward(imgs,
seed)`` takes the batch's ``aug_seed`` values (the sampler's per-item seeds: the
draws then depend on (run seed, epoch, position) only); a single int seeds a
generator that gives the items their seeds; without ``seed`` the generator, seeded
once from ``seed`` of the constructor, runs on and gives them.
"""
import torch
import torch.nn.functional as F
import torchvision.transforms.v2.functional as TF

from .channel_aug import CHANNEL_NAMES, ChannelSteps

__all__ = ['BatchAugment', 'ItemDraws', 'BATCH_TRANSFORMS', 'UNSUPPORTED']

#: names the batch form implements, in the order torchreid's pipeline applies its own
TORCHREID_ORDER = ('random_flip', 'random_crop', 'color_jitter')
#: the plugin's names (applied after torchreid's, in the order they are named)
PLUGIN_ORDER = ('random_grayscale', 'random_pad_crop', 'jitter_or_blur')
BATCH_TRANSFORMS = TORCHREID_ORDER + PLUGIN_ORDER + ('random_erase',) + CHANNEL_NAMES
#: steps that only move pixels (run on uint8 before the conversion to float)
UINT8_STEPS = ('random_flip', 'random_pad_crop')
UNSUPPORTED = {'random_patch': 'keeps a pool of patches taken from earlier images'}

# the parameters of the PIL pipeline's transforms (torchreid's and transforms.py's)
FLIP_P = 0.5
TRANSLATE_P, TRANSLATE_SCALE = 0.5, 1.125            # torchreid Random2DTranslation
JITTER = (0.2, 0.15)                                 # torchreid color_jitter: brightness, contrast
GRAY_P = 0.5
PAD = 10
JITTER_OR_BLUR = (0.3, 0.3)                          # its ColorJitter: brightness, contrast
BLUR_KERNEL, BLUR_SIGMA = 21, (0.1, 3.0)
ERASE_P, ERASE_AREA, ERASE_RATIO, ERASE_ATTEMPTS = 0.5, (0.02, 0.4), 0.3, 100


# splitmix64 (Steele, Lea and Flood 2014) in signed int64 arithmetic (wrapping products)
_GOLDEN = 0x9E3779B97F4A7C15 - (1 << 64)
_MIX1 = 0xBF58476D1CE4E5B9 - (1 << 64)
_MIX2 = 0x94D049BB133111EB - (1 << 64)
#: the augmentation's own stream of an item seed (the same seed also picks a clip's frames)
_STREAM = 0x2545F4914F6CDD1D


def _shift_right(z, k):
    """Logical right shift of int64 values (torch's ``>>`` keeps the sign)."""
    return (z >> k) & ((1 << (64 - k)) - 1)


def _mix(z):
    z = (z ^ _shift_right(z, 30)) * _MIX1
    z = (z ^ _shift_right(z, 27)) * _MIX2
    return z ^ _shift_right(z, 31)


class ItemDraws:
    """Uniform draws per item that depend on the item's seed and the draw's number only.

    ``rand(B, *shape)`` gives item b the values ``u(seed_b, call, j)`` (24-bit floats in
    [0, 1)): the ``call``-th request of the batch, ``j`` its position in the item's
    ``shape``. The steps of ``BatchAugment`` make the same requests for every item, so
    what an item draws does not depend on the rest of its batch.
    """

    def __init__(self, seeds):
        seeds = torch.as_tensor(seeds, dtype=torch.long).reshape(-1)
        self.device = seeds.device
        self.keys = _mix(seeds ^ _STREAM).view(-1, 1)
        self.calls = 0

    def rand(self, *shape):
        if shape[0] != self.keys.shape[0]:
            raise ValueError('draws for {} items, asked for {}'.format(self.keys.shape[0],
                                                                        shape[0]))
        self.calls += 1
        per_item = 1
        for n in shape[1:]:
            per_item *= int(n)
        counter = torch.arange(per_item, dtype=torch.long, device=self.device) + \
            (self.calls << 32) + 1
        z = _mix(self.keys + counter.view(1, -1) * _GOLDEN)
        return (_shift_right(z, 40).float() * (1.0 / (1 << 24))).view(shape)

    def randint(self, low, high, shape):
        """Integers uniform in [low, high) per item (``shape[0]`` items)."""
        u = self.rand(*shape)
        return (low + (u * (high - low)).long()).clamp_(max=high - 1)


class BatchAugment(torch.nn.Module):
    """Batch form of the train transform named by ``transforms`` (see the module doc).

    Args:
        transforms: ``data.transforms`` names (torchreid's and the plugin's).
        height, width: the training size (the cache's images are already at it).
        norm_mean, norm_std: ``data.norm_mean`` / ``data.norm_std``.
        seed: seeds the generator when ``forward`` gets no seed.
    """

    def __init__(self, transforms, height, width, norm_mean, norm_std, seed=0):
        super().__init__()
        names = [transforms] if isinstance(transforms, str) else list(transforms or [])
        names = [n.lower() for n in names]
        refused = [n for n in names if n in UNSUPPORTED]
        if refused:
            raise ValueError('data.transforms {} has no batch form ({}); set data_cache.'
                             'gpu_augment False to run the PIL pipeline on the cached '
                             'images'.format(refused[0], UNSUPPORTED[refused[0]]))
        unknown = [n for n in names if n not in BATCH_TRANSFORMS]
        if unknown:
            raise ValueError('unknown transform(s) {} for the batch augmentation; '
                             'available: {}'.format(unknown, ', '.join(BATCH_TRANSFORMS)))
        # torchreid's steps in its fixed order, then the plugin's in the named order
        self.steps = [n for n in TORCHREID_ORDER if n in names] + \
            [n for n in names if n in PLUGIN_ORDER]
        self.erase = 'random_erase' in names
        self.channel = ChannelSteps(names)   # CAJ's, last, from each item's own seed
        self.size = (int(height), int(width))
        self.mean = torch.tensor(norm_mean, dtype=torch.float32)
        self.std = torch.tensor(norm_std, dtype=torch.float32)
        self.fill = [float(v) for v in norm_mean]   # torchreid's erase value
        self.seed = int(seed or 0)
        self._generators = {}   # device -> torch.Generator
        self._stats = {}        # device -> (mean, std) shaped (1, 1, C, 1, 1)

    def extra_repr(self):
        return 'steps={}, erase={}, size={}'.format(self.steps, self.erase, self.size)

    def describe(self):
        """The steps in the order they run, as the training log lists them."""
        return (list(self.steps) + ['normalize (mean={}, std={})'.format(
            [round(float(v), 4) for v in self.mean], [round(float(v), 4) for v in self.std])]
            + (['random_erase'] if self.erase else []) + list(self.channel.names))

    def generator(self, device, seed=None):
        """The generator that gives items their seeds when ``forward`` gets none (or one
        int) for ``device``; re-seeded from ``seed`` when one is given."""
        device = torch.device(device)
        key = str(device)
        gen = self._generators.get(key)
        if gen is None:
            gen = torch.Generator(device=device)
            gen.manual_seed(self.seed)
            self._generators[key] = gen
        if seed is not None:
            gen.manual_seed(int(seed) % 2 ** 63)
        return gen

    def item_seeds(self, n, device, seed=None):
        """(n,) int64 seeds on ``device``: ``seed`` itself when it holds one per item, else
        drawn from ``generator(device, seed)``."""
        if torch.is_tensor(seed) and seed.numel() == n and n > 0:
            return seed.reshape(-1).to(device=device, dtype=torch.long)
        if torch.is_tensor(seed):
            if seed.numel() not in (0, 1):
                raise ValueError('BatchAugment got {} seeds for {} items'.format(
                    seed.numel(), n))
            seed = int(seed.reshape(-1)[0]) if seed.numel() else None
        gen = self.generator(device, seed)
        return torch.randint(2 ** 62, (n,), generator=gen, device=gen.device,
                             dtype=torch.long)

    @torch.no_grad()
    def forward(self, imgs, seed=None):
        """uint8 (or [0, 255] float) ``(B, C, H, W)`` / ``(B, T, C, H, W)`` -> normalised
        float32 of the same shape. ``seed``: one per item (a (B,) tensor), one int for the
        batch, or None (see the module doc)."""
        item_seeds = seed   # the channel steps draw from each item's seed (channel_aug)
        video = imgs.dim() == 5
        if not video and imgs.dim() != 4:
            raise ValueError('BatchAugment expects (B, C, H, W) or (B, T, C, H, W), got '
                             'shape {}'.format(tuple(imgs.shape)))
        if tuple(imgs.shape[-2:]) != self.size:
            raise ValueError('BatchAugment built for {}x{} images got {}x{}'.format(
                *self.size, *imgs.shape[-2:]))
        x = imgs if video else imgs.unsqueeze(1)          # (B, T, C, H, W)
        if x.is_floating_point():
            x = x.float() / 255
        gen = ItemDraws(self.item_seeds(x.shape[0], x.device, seed))
        for name in self.steps:
            # flips and crops move pixels: done on uint8 (a quarter of the memory traffic)
            if name not in UINT8_STEPS and not x.is_floating_point():
                x = x.float().div_(255)
            x = getattr(self, '_' + name)(x, gen)
        if not x.is_floating_point():
            x = x.float().div_(255)
        mean, std = self._normalisation(x.device)
        x = x.sub_(mean).div_(std)
        if self.erase:
            x = self._random_erase(x, gen)
        if self.channel:
            x = self.channel(x, item_seeds)
        return x if video else x.squeeze(1)

    def _normalisation(self, device):
        """mean and std on ``device``, copied there once (a copy from pageable host memory
        would wait for the device's queued work every batch)."""
        key = str(device)
        if key not in self._stats:
            self._stats[key] = tuple(v.to(device).view(1, 1, -1, 1, 1)
                                     for v in (self.mean, self.std))
        return self._stats[key]

    # ---- draws: one value per sample (shared by a clip's frames) -------------------
    @staticmethod
    def _rand(gen, *shape):
        """Per-item uniforms from ``ItemDraws`` (or a torch.Generator: one stream)."""
        if isinstance(gen, torch.Generator):
            return torch.rand(shape, generator=gen, device=gen.device)
        return gen.rand(*shape)

    @staticmethod
    def _per_sample(mask, x):
        """A (B,) bool mask broadcastable against (B, T, C, H, W) ``x``."""
        return mask.view(-1, *([1] * (x.dim() - 1)))

    # ---- the steps ------------------------------------------------------------------
    def _random_flip(self, x, gen):
        flip = self._rand(gen, x.shape[0]) < FLIP_P
        return torch.where(self._per_sample(flip, x), TF.horizontal_flip(x), x)

    def _random_crop(self, x, gen):
        """torchreid's Random2DTranslation: with p 0.5, enlarge 1.125x (bilinear) and crop
        back at a random offset (``round(uniform(0, range))``), else unchanged."""
        b, t, c, h, w = x.shape
        big_h, big_w = int(round(h * TRANSLATE_SCALE)), int(round(w * TRANSLATE_SCALE))
        apply = self._rand(gen, b) <= TRANSLATE_P
        top = torch.round(self._rand(gen, b) * (big_h - h)).long()
        left = torch.round(self._rand(gen, b) * (big_w - w)).long()
        big = F.interpolate(x.reshape(b, t * c, h, w), size=(big_h, big_w), mode='bilinear',
                            align_corners=False).view(b, t, c, big_h, big_w)
        return torch.where(self._per_sample(apply, x), _crop(big, top, left, h, w), x)

    def _color_jitter(self, x, gen):
        return _jitter(x, gen, *JITTER, self._rand)

    def _random_grayscale(self, x, gen):
        gray = self._rand(gen, x.shape[0]) < GRAY_P
        g = TF.rgb_to_grayscale(x, num_output_channels=3) if x.shape[2] == 3 else x
        return torch.where(self._per_sample(gray, x), g, x)

    def _random_pad_crop(self, x, gen):
        """T.Pad(10) (zeros) then T.RandomCrop((H, W)): offsets uniform in 0..20."""
        b, t, c, h, w = x.shape
        padded = F.pad(x, (PAD, PAD, PAD, PAD))
        top = gen.randint(0, 2 * PAD + 1, (b,))
        left = gen.randint(0, 2 * PAD + 1, (b,))
        return _crop(padded, top, left, h, w)

    def _jitter_or_blur(self, x, gen):
        """T.RandomChoice([ColorJitter(0.3, 0.3), GaussianBlur(21, (0.1, 3.0))])."""
        blur = self._rand(gen, x.shape[0]) < 0.5
        jittered = _jitter(x, gen, *JITTER_OR_BLUR, self._rand)
        sigma = BLUR_SIGMA[0] + self._rand(gen, x.shape[0]) * (BLUR_SIGMA[1] - BLUR_SIGMA[0])
        blurred = _gaussian_blur(x, sigma, BLUR_KERNEL)
        return torch.where(self._per_sample(blur, x), blurred, jittered)

    def _random_erase(self, x, gen):
        """torchreid's RandomErasing (after normalising; fill = norm_mean): with p 0.5, up to
        100 attempts of area U(0.02, 0.4) x H x W and aspect U(0.3, 1/0.3); the first that
        fits (h < H and w < W) is erased at a uniform position."""
        b, t, c, h, w = x.shape
        n = ERASE_ATTEMPTS
        do = self._rand(gen, b) <= ERASE_P
        area = (ERASE_AREA[0] + self._rand(gen, b, n) * (ERASE_AREA[1] - ERASE_AREA[0])) * h * w
        ratio = ERASE_RATIO + self._rand(gen, b, n) * (1 / ERASE_RATIO - ERASE_RATIO)
        eh = torch.round(torch.sqrt(area * ratio)).long()
        ew = torch.round(torch.sqrt(area / ratio)).long()
        fits = (ew < w) & (eh < h)
        first = fits.to(torch.uint8).argmax(1, keepdim=True)      # first fitting attempt
        eh, ew = eh.gather(1, first).squeeze(1), ew.gather(1, first).squeeze(1)
        do = do & fits.any(1)
        # random.randint(0, H - h) inclusive
        top = (self._rand(gen, b) * (h - eh + 1).clamp(min=1)).long()
        left = (self._rand(gen, b) * (w - ew + 1).clamp(min=1)).long()
        rows = torch.arange(h, device=x.device).view(1, h, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, w)
        box = ((rows >= top.view(-1, 1, 1)) & (rows < (top + eh).view(-1, 1, 1)) &
               (cols >= left.view(-1, 1, 1)) & (cols < (left + ew).view(-1, 1, 1)) &
               do.view(-1, 1, 1))
        box = box.view(b, 1, h, w)
        for ch, value in enumerate(self.fill):   # in place, one pass in all
            x[:, :, ch].masked_fill_(box, value)
        return x


def _crop(x, top, left, h, w):
    """Per-sample ``x[b, ..., top[b]:top[b]+h, left[b]:left[b]+w]`` of (B, T, C, Hp, Wp),
    as one gather over the flattened image."""
    b, t, c, hp, wp = x.shape
    rows = top.view(-1, 1, 1) + torch.arange(h, device=x.device).view(1, h, 1)
    cols = left.view(-1, 1, 1) + torch.arange(w, device=x.device).view(1, 1, w)
    index = (rows * wp + cols).view(b, 1, 1, h * w).expand(b, t, c, h * w)
    return x.reshape(b, t, c, hp * wp).gather(3, index).view(b, t, c, h, w)


def _jitter(x, gen, brightness, contrast, rand):
    """torchvision ColorJitter(brightness, contrast) per sample: factors U(1 - s, 1 + s),
    brightness and contrast applied in a random order (each order with p 0.5)."""
    b = x.shape[0]
    fb = (1 - brightness + rand(gen, b) * 2 * brightness).view(-1, 1, 1, 1, 1)
    fc = (1 - contrast + rand(gen, b) * 2 * contrast).view(-1, 1, 1, 1, 1)
    contrast_first = (rand(gen, b) < 0.5).view(-1, 1, 1, 1, 1)

    def bright(v):
        return (v * fb).clamp_(0, 1)

    def contr(v):
        grey = TF.rgb_to_grayscale(v) if v.shape[2] == 3 else v
        m = grey.mean(dim=(-3, -2, -1), keepdim=True)              # per frame
        return (fc * v + (1 - fc) * m).clamp_(0, 1)

    return torch.where(contrast_first, bright(contr(x)), contr(bright(x)))


def _gaussian_blur(x, sigma, kernel_size):
    """Separable Gaussian blur with one sigma per sample, reflect padding (as torchvision's
    gaussian_blur, which takes one sigma per call)."""
    b, t, c, h, w = x.shape
    half = kernel_size // 2
    pos = torch.arange(kernel_size, device=x.device, dtype=x.dtype) - half
    k = torch.exp(-0.5 * (pos.view(1, -1) / sigma.view(-1, 1).to(x.dtype)) ** 2)
    k = k / k.sum(1, keepdim=True)                                   # (B, K)
    k = k.repeat_interleave(t * c, 0)                                # (B*T*C, K)
    y = F.pad(x.reshape(1, b * t * c, h, w), (half, half, half, half), mode='reflect')
    y = F.conv2d(y, k.view(-1, 1, 1, kernel_size), groups=b * t * c)
    y = F.conv2d(y, k.view(-1, 1, kernel_size, 1), groups=b * t * c)
    return y.view(b, t, c, h, w)

