"""BatchAugment (data/batch_augment.py) draws what the PIL pipeline draws.

Each test runs the PIL train transform that the data manager builds (torchreid's
``build_transforms`` plus the plugin's names) many times on one test image, and
``BatchAugment`` once on a batch of copies of it (CPU tensors), then compares what
can be read off the outputs: flip rate, crop offsets, erased area, grayscale rate,
brightness, shape, dtype, value range and statistics.
"""
import random

import numpy as np
import pytest
import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image

from vireid_plugin import compat
from vireid_plugin.data.batch_augment import BatchAugment, _gaussian_blur, _jitter
from vireid_plugin.data.synthetic import random_identities, render_person
from vireid_plugin.data.transforms import add_plugin_transforms

H, W = 64, 32
N = 500   # draws per pipeline


def pil_pipeline(names, mean=(0.0,) * 3, std=(1.0,) * 3):
    """The data manager's train transform for ``names`` (torchreid's + the plugin's)."""
    tr, _ = compat.transforms.build_transforms(H, W, transforms=list(names),
                                               norm_mean=list(mean), norm_std=list(std))
    return add_plugin_transforms(tr, names, H, W)


def pil_draws(names, img, n=N, seed=0, **norm):
    tf = pil_pipeline(names, **norm)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.stack([tf(Image.fromarray(img)) for _ in range(n)])


def batch_draws(names, img, n=N, seed=0, mean=(0.0,) * 3, std=(1.0,) * 3):
    aug = BatchAugment(names, H, W, list(mean), list(std), seed=seed)
    x = torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0).expand(n, 3, H, W).contiguous()
    return aug(x, seed=seed)


def ks_distance(a, b):
    """Two-sample Kolmogorov-Smirnov statistic."""
    a, b = np.sort(np.asarray(a, float)), np.sort(np.asarray(b, float))
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side='right') / len(a)
    cdf_b = np.searchsorted(b, grid, side='right') / len(b)
    return float(np.abs(cdf_a - cdf_b).max())


def binomial_ok(rate, p=0.5, n=N):
    return abs(rate - p) < 4 * np.sqrt(p * (1 - p) / n)


def coordinate_image():
    """R encodes the row, G the column (values 20..146 / 20..144), B constant."""
    rows, cols = np.meshgrid(np.arange(H), np.arange(W), indexing='ij')
    return np.stack([20 + 2 * rows, 20 + 4 * cols, np.full_like(rows, 77)], -1).astype(np.uint8)


def person_image():
    ident = random_identities(np.random.default_rng(3), 1)[0]
    return render_person(ident, rng=np.random.default_rng(4), size=(H, W))


def test_flip_rate_and_outputs_match_the_pil_flip():
    img = coordinate_image()
    plain = torch.from_numpy(img).permute(2, 0, 1).float() / 255
    for out in (pil_draws(['random_flip'], img), batch_draws(['random_flip'], img)):
        assert out.shape == (N, 3, H, W) and out.dtype == torch.float32
        flipped = torch.isclose(out, plain.flip(-1), atol=1e-6).flatten(1).all(1)
        kept = torch.isclose(out, plain, atol=1e-6).flatten(1).all(1)
        assert bool((flipped ^ kept).all())     # every output is the image or its mirror
        assert binomial_ok(flipped.float().mean().item())


def _offsets(out):
    """(dy, dx) of each pad-crop draw, read from the coordinate image's centre pixel."""
    r = torch.round(out[:, 0, H // 2, W // 2] * 255).numpy()
    g = torch.round(out[:, 1, H // 2, W // 2] * 255).numpy()
    return (r - 20) / 2 - H // 2, (g - 20) / 4 - W // 2


def test_pad_crop_offsets_have_the_pil_distribution():
    img = coordinate_image()
    pil = _offsets(pil_draws(['random_pad_crop'], img))
    ours = _offsets(batch_draws(['random_pad_crop'], img))
    for dy, dx in (pil, ours):
        for d in (dy, dx):
            # T.Pad(10) + RandomCrop: offsets uniform on -10..10 (mean 0, variance 440/12)
            assert set(np.unique(d)) <= set(range(-10, 11)) and len(np.unique(d)) >= 19
            assert abs(d.mean()) < 4 * np.sqrt(440 / 12 / N)
            assert abs(d.var() - 440 / 12) < 0.2 * 440 / 12
    assert ks_distance(pil[0], ours[0]) < 0.12 and ks_distance(pil[1], ours[1]) < 0.12


def test_pad_crop_shows_zero_padding_where_the_crop_leaves_the_image():
    img = np.full((H, W, 3), 200, np.uint8)
    out = batch_draws(['random_pad_crop'], img, n=64)
    # the border rows/columns that came from the padding are exactly 0
    zeros = (out == 0).all(1)                       # (n, H, W)
    assert bool(zeros.any()) and bool(((out == 0) | torch.isclose(out, torch.tensor(200 / 255)))
                                      .all())


def test_torchreid_random_crop_rate_and_size():
    img = person_image()
    plain = torch.from_numpy(img).permute(2, 0, 1).float() / 255
    for out in (pil_draws(['random_crop'], img, n=300), batch_draws(['random_crop'], img, n=300)):
        assert out.shape == (300, 3, H, W)
        kept = torch.isclose(out, plain, atol=1e-6).flatten(1).all(1).float().mean().item()
        assert binomial_ok(kept, n=300)   # Random2DTranslation translates with p = 0.5


def _erased_fraction(out, fill):
    return (out == fill).all(1).flatten(1).float().mean(1).numpy()


def test_erase_rate_and_area_match_torchreid_random_erasing():
    img = np.zeros((H, W, 3), np.uint8)   # normalised to -1 everywhere: the fill (0.5) differs
    norm = dict(mean=(0.5,) * 3, std=(0.5,) * 3)
    pil = _erased_fraction(pil_draws(['random_erase'], img, **norm), 0.5)
    ours = _erased_fraction(batch_draws(['random_erase'], img, **norm), 0.5)
    for frac in (pil, ours):
        assert binomial_ok((frac > 0).mean())                        # p = 0.5
        hit = frac[frac > 0]
        assert hit.min() > 0.015 and hit.max() < 0.42                # area U(0.02, 0.4) of H x W
    assert abs(pil[pil > 0].mean() - ours[ours > 0].mean()) < 0.03
    assert ks_distance(pil[pil > 0], ours[ours > 0]) < 0.15


def test_erased_region_is_one_rectangle():
    img = np.zeros((H, W, 3), np.uint8)
    out = batch_draws(['random_erase'], img, n=64, mean=(0.5,) * 3, std=(0.5,) * 3)
    for mask in (out == 0.5).all(1):
        if mask.any():
            rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
            box = mask[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
            assert bool(box.all()) and int(mask.sum()) == box.numel()


def test_grayscale_rate():
    img = person_image()
    for out in (pil_draws(['random_grayscale'], img), batch_draws(['random_grayscale'], img)):
        grey = ((out[:, 0] - out[:, 1]).abs().flatten(1).max(1).values < 0.01) & \
            ((out[:, 1] - out[:, 2]).abs().flatten(1).max(1).values < 0.01)
        assert binomial_ok(grey.float().mean().item())


def test_color_jitter_brightness_distribution():
    img = person_image()
    pil = pil_draws(['color_jitter'], img).mean((1, 2, 3)).numpy()
    ours = batch_draws(['color_jitter'], img).mean((1, 2, 3)).numpy()
    base = img.mean() / 255
    for m in (pil, ours):      # brightness x U(0.8, 1.2), contrast keeps the mean
        assert m.min() > 0.78 * base and m.max() < 1.22 * base
    assert ks_distance(pil, ours) < 0.12


def test_recipe_output_statistics_match():
    names = ['random_flip', 'random_pad_crop', 'color_jitter', 'random_erase',
             'random_grayscale']
    norm = dict(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    img = person_image()
    pil = pil_draws(names, img, n=300, **norm)
    ours = batch_draws(names, img, n=300, **norm)
    assert pil.shape == ours.shape == (300, 3, H, W) and pil.dtype == ours.dtype
    lo = (0 - torch.tensor(norm['mean'])) / torch.tensor(norm['std'])
    hi = (1 - torch.tensor(norm['mean'])) / torch.tensor(norm['std'])
    for out in (pil, ours):
        per_channel = out.transpose(0, 1).flatten(1)
        assert bool((per_channel.min(1).values >= lo - 1e-5).all())
        assert bool((per_channel.max(1).values <= hi + 1e-5).all())
    # per-channel mean and spread of everything drawn, and of the per-draw means
    assert torch.allclose(pil.mean((0, 2, 3)), ours.mean((0, 2, 3)), atol=0.06)
    assert torch.allclose(pil.std((0, 2, 3)), ours.std((0, 2, 3)), rtol=0.06)
    assert ks_distance(pil.mean((1, 2, 3)), ours.mean((1, 2, 3))) < 0.15


def _sharpness(out):
    """Mean absolute horizontal difference of each draw (blur lowers it)."""
    return (out[..., 1:] - out[..., :-1]).abs().mean((1, 2, 3)).numpy()


def test_jitter_or_blur_sharpness_distribution():
    # PIL's GaussianBlur(21) is slow: fewer PIL draws, a looser bound
    img = person_image()
    pil = _sharpness(pil_draws(['jitter_or_blur'], img, n=100))
    ours = _sharpness(batch_draws(['jitter_or_blur'], img, n=400))
    # critical KS distance at alpha = 0.001 for 100 vs 400 draws: 0.22
    assert ks_distance(pil, ours) < 0.25
    # and the statistic can tell: the same jitter without the blur branch is told apart
    x = torch.from_numpy(img).permute(2, 0, 1).float().div(255).expand(400, 1, 3, H, W)
    never = _sharpness(_jitter(x, torch.Generator().manual_seed(0), 0.3, 0.3,
                               BatchAugment._rand)[:, 0])
    assert ks_distance(pil, never) > 0.25


def test_per_sample_blur_equals_torchvision_gaussian_blur():
    x = torch.rand(3, 1, 3, H, W)
    sigma = torch.tensor([0.3, 1.0, 2.7])
    ours = _gaussian_blur(x, sigma, 21)
    for i, s in enumerate(sigma.tolist()):
        ref = TF.gaussian_blur(x[i, 0], [21, 21], [s, s])
        assert torch.allclose(ours[i, 0], ref, atol=1e-5)


def test_one_draw_per_clip_and_different_draws_across_clips():
    names = ['random_flip', 'random_crop', 'color_jitter', 'random_pad_crop', 'jitter_or_blur',
             'random_erase', 'random_grayscale']
    img = torch.from_numpy(person_image()).permute(2, 0, 1)
    clips = img.view(1, 1, 3, H, W).expand(16, 4, 3, H, W).contiguous()   # 4 equal frames
    out = BatchAugment(names, H, W, [0.5] * 3, [0.5] * 3)(clips, seed=7)
    assert out.shape == (16, 4, 3, H, W)
    assert torch.allclose(out, out[:, :1].expand_as(out), atol=1e-5)     # frames agree
    assert len({round(float(v), 4) for v in out[:, 0].mean((1, 2, 3))}) > 8  # clips differ


def test_seeded_draws_repeat_and_follow_the_seed():
    img = torch.from_numpy(person_image()).permute(2, 0, 1).expand(8, 3, H, W).contiguous()
    aug = BatchAugment(['random_flip', 'random_pad_crop', 'random_erase'], H, W, [0.5] * 3,
                       [0.5] * 3)
    a, b, c = aug(img, seed=11), aug(img, seed=11), aug(img, seed=12)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # one int for the batch: the items' seeds are drawn from a generator seeded with it
    seeds = torch.randint(2 ** 62, (8,), generator=torch.Generator().manual_seed(11))
    assert torch.equal(aug(img, seeds), a)


ALL = ['random_flip', 'random_crop', 'color_jitter', 'random_grayscale', 'random_pad_crop',
       'jitter_or_blur', 'random_erase']


@pytest.mark.parametrize('video', [False, True])
def test_an_item_is_augmented_alone_as_in_any_batch(video):
    """What 1 and N processes (each its share of the global batch) and a resume with
    another process count see: an item's augmentation depends on its own seed only."""
    g = torch.Generator().manual_seed(0)
    shape = (8, 2, 3, H, W) if video else (8, 3, H, W)
    imgs = torch.randint(0, 256, shape, dtype=torch.uint8, generator=g)
    seeds = torch.randint(2 ** 62, (8,), generator=g)
    aug = BatchAugment(ALL, H, W, [0.5] * 3, [0.5] * 3, seed=0)
    whole = aug(imgs, seeds)
    alone = torch.cat([aug(imgs[i:i + 1], seeds[i:i + 1]) for i in range(8)])
    half = aug(imgs[4:], seeds[4:])                      # rank 1 of 2
    shuffled = aug(imgs.flip(0), seeds.flip(0)).flip(0)  # other neighbours
    for other in (alone, shuffled):
        assert torch.allclose(other, whole, atol=1e-5)
    assert torch.allclose(half, whole[4:], atol=1e-5)
    # and the seed matters: another seed, another augmentation of the same pixels
    assert not torch.allclose(aug(imgs[:1], seeds[1:2]), whole[:1], atol=1e-3)


def test_item_draws_are_uniform_and_independent_of_the_batch():
    from vireid_plugin.data.batch_augment import ItemDraws
    seeds = torch.arange(4000) * 7919
    u = ItemDraws(seeds).rand(4000, 3)
    assert u.min() >= 0 and u.max() < 1
    # uniform: mean 1/2, variance 1/12, and the draws of one item uncorrelated
    assert abs(float(u.mean()) - 0.5) < 0.01 and abs(float(u.var()) - 1 / 12) < 0.003
    assert abs(float(torch.corrcoef(u.T)[0, 1])) < 0.05
    assert ks_distance(u[:, 0].numpy(), np.linspace(0, 1, 4000)) < 0.04
    again = ItemDraws(seeds[10:11]).rand(1, 3)
    assert torch.equal(again, u[10:11])
    ints = ItemDraws(seeds).randint(0, 21, (4000,))
    assert ints.min() == 0 and ints.max() == 20 and len(ints.unique()) == 21


def _splitmix64_uniform(seed, call, j):
    """The documented draw, from splitmix64's definition in unsigned 64-bit integers
    (Python ints mod 2**64): the key mixes the seed's stream, the counter is
    j + (call << 32) + 1, and the top 24 bits of the mix make the float."""
    m = (1 << 64) - 1

    def mix(z):
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & m
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & m
        return z ^ (z >> 31)
    key = mix(seed ^ 0x2545F4914F6CDD1D)
    z = mix((key + (j + (call << 32) + 1) * 0x9E3779B97F4A7C15) & m)
    return (z >> 40) / float(1 << 24)


def test_item_draws_are_splitmix64_in_wrapping_int64():
    """torch's int64 products wrap as unsigned 64-bit arithmetic does: the draws equal
    the definition computed with Python integers (scripts/gpu_check.py compares the CUDA
    draws with these CPU ones)."""
    from vireid_plugin.data.batch_augment import ItemDraws
    seeds = [0, 1, 7919, 2 ** 62 - 1, 123456789012345]
    draws = ItemDraws(seeds)
    first, second = draws.rand(len(seeds), 3), draws.rand(len(seeds), 2)
    for b, seed in enumerate(seeds):
        assert first[b].tolist() == [_splitmix64_uniform(seed, 1, j) for j in range(3)]
        assert second[b].tolist() == [_splitmix64_uniform(seed, 2, j) for j in range(2)]


def test_refused_and_unknown_names():
    with pytest.raises(ValueError, match='random_patch.*gpu_augment False'):
        BatchAugment(['random_flip', 'random_patch'], H, W, [0.5] * 3, [0.5] * 3)
    with pytest.raises(ValueError, match='unknown transform.*random_flipp'):
        BatchAugment(['random_flipp'], H, W, [0.5] * 3, [0.5] * 3)
    aug = BatchAugment(['random_flip'], H, W, [0.5] * 3, [0.5] * 3)
    with pytest.raises(ValueError, match='built for 64x32'):
        aug(torch.zeros(2, 3, 32, 16, dtype=torch.uint8))


def test_the_log_lists_every_step_the_batch_form_runs():
    # issue 26.14: torchreid's "Building train transforms" list is replaced on the cache
    # path; the batch form names its own steps in the order forward() runs them: torchreid's
    # (flip), the plugin's (grayscale), normalisation, erasing
    aug = BatchAugment(['random_erase', 'random_grayscale', 'random_flip'], 8, 4,
                       [0.5, 0.5, 0.5], [0.25, 0.25, 0.25])
    assert aug.describe() == ['random_flip', 'random_grayscale',
                              'normalize (mean=[0.5, 0.5, 0.5], std=[0.25, 0.25, 0.25])',
                              'random_erase']
