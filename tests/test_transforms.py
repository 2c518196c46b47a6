"""The plugin's named train transforms inside torchreid's pipeline."""
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from vireid_plugin.data.transforms import add_plugin_transforms, check_transform_names


def base():
    return T.Compose([T.Resize((32, 16)), T.ToTensor()])


def test_plugin_transforms_go_before_to_tensor_in_the_named_order():
    out = add_plugin_transforms(base(), ['random_flip', 'random_pad_crop', 'jitter_or_blur',
                                         'random_grayscale'], 32, 16)
    kinds = [type(t).__name__ for t in out.transforms]
    assert kinds == ['Resize', 'Compose', 'RandomChoice', 'RandomGrayscale', 'ToTensor']
    pad_crop = out.transforms[1]
    assert pad_crop.transforms[0].padding == 10
    assert pad_crop.transforms[1].size == (32, 16)


def test_pad_crop_keeps_the_size_and_shifts_the_content():
    torch.manual_seed(0)
    img = Image.fromarray((torch.arange(32 * 16 * 3) % 251).to(torch.uint8)
                          .view(32, 16, 3).numpy())
    plain = base()(img)
    aug = add_plugin_transforms(base(), ['random_pad_crop'], 32, 16)
    draws = [aug(img) for _ in range(8)]
    assert all(d.shape == plain.shape == (3, 32, 16) for d in draws)
    assert any(not torch.equal(d, plain) for d in draws)
    # a crop of the zero-padded image: some draw shows padding (zeros) at a border
    assert any((d[:, 0] == 0).all() or (d[:, :, 0] == 0).all() for d in draws)


def test_unknown_transform_name():
    with pytest.raises(ValueError, match="unknown transform.*random_pad_crops"):
        check_transform_names(['random_pad_crops'])
