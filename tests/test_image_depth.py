"""16-bit and float images (thermal cameras' raw counts) read by a documented rule:
per-image min-max to 8 bits (data/io.py), not PIL's clipping to all white."""
import os
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from vireid_plugin.data.datasets.sysu_mm01 import SYSUMM01
from vireid_plugin.data.io import ImageReadError, read_image
from vireid_plugin.data.synthetic import make_sysu_mm01
from vireid_plugin.engine.evaluation import score_modes

IR_CAMS = (3, 6)
#: |mAP and R1 difference| (percentage points) allowed between the 8-bit tree and the same
#: tree written as raw 16-bit counts. The 8-bit infrared images are what a camera's
#: automatic gain control makes of the counts (each spans 0..255), so the documented
#: stretch recovers them exactly: the metrics are equal up to float summation order.
TOLERANCE = 1e-6


def test_16bit_values_by_hand(tmp_path):
    # counts 1000, 1500, 2000, 3000: min 1000, max 3000 -> 0, 63.75, 127.5, 255 -> rounded
    path = str(tmp_path / 'raw.png')
    Image.fromarray(np.array([[1000, 1500], [2000, 3000]], dtype=np.uint16)).save(path)
    assert Image.open(path).mode == 'I;16'
    out = np.asarray(read_image(path))
    assert out.shape == (2, 2, 3)
    assert out[..., 0].tolist() == [[0, 64], [128, 255]]
    assert (out[..., 0] == out[..., 1]).all() and (out[..., 1] == out[..., 2]).all()


@pytest.mark.parametrize('dtype', [np.int32, np.float32])
def test_32bit_and_float_tiff(tmp_path, dtype):
    path = str(tmp_path / 'raw.tif')
    Image.fromarray(np.array([[-1.0, 0.0], [1.0, 3.0]], dtype=dtype)).save(path)
    assert Image.open(path).mode in ('I', 'F')
    # -1..3 -> (v + 1) * 255 / 4: 0, 63.75, 127.5, 255
    assert np.asarray(read_image(path))[..., 0].tolist() == [[0, 64], [128, 255]]


def test_constant_16bit_image_reads_black(tmp_path):
    path = str(tmp_path / 'flat.png')
    Image.fromarray(np.full((3, 2), 40000, dtype=np.uint16)).save(path)
    assert not np.asarray(read_image(path)).any()


def test_nan_pixels_are_refused_naming_file_and_mode(tmp_path):
    path = str(tmp_path / 'nan.tif')
    Image.fromarray(np.array([[np.nan, 1.0]], dtype=np.float32)).save(path)
    with pytest.raises(ImageReadError) as err:
        read_image(path)
    assert path in str(err.value) and 'mode F' in str(err.value)


def test_8bit_images_are_unchanged(tmp_path):
    path = str(tmp_path / 'l.png')
    pixels = np.array([[3, 200], [17, 90]], dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    assert np.asarray(read_image(path))[..., 0].tolist() == pixels.tolist()


# ------------------------------------------------------ a 16-bit thermal tree, scored
def _rewrite_infrared(folder, to_16bit):
    """Every infrared image of a SYSU-MM01 tree as a lossless PNG: its grey levels stretched
    to span 0..255 (what a thermal camera's gain control writes as 8 bits), or the raw
    counts such a frame came from, 7000 + 37 v (a narrow band of the 16-bit range)."""
    for cam in IR_CAMS:
        cam_dir = os.path.join(folder, 'cam{}'.format(cam))
        for pid in os.listdir(cam_dir):
            for name in os.listdir(os.path.join(cam_dir, pid)):
                path = os.path.join(cam_dir, pid, name)
                grey = np.asarray(Image.open(path).convert('L'), dtype=np.int64)
                lo, hi = grey.min(), grey.max()
                agc = (grey - lo) * 255 // (hi - lo)   # integer arithmetic: 0..255 exactly
                os.remove(path)
                data = (7000 + 37 * agc).astype(np.uint16) if to_16bit else agc.astype(np.uint8)
                Image.fromarray(data).save(os.path.splitext(path)[0] + '.png')


def _metrics(root, reader=read_image):
    """mAP and R1 of every mode: features of a fixed random projection of the pixels read
    by ``reader``."""
    dataset = SYSUMM01(root=root, num_trials=2, mode='query', transform=None)
    torch.manual_seed(0)
    proj = None
    feats = []
    for item in dataset.test_pool:
        img = np.asarray(reader(item[0]).resize((16, 32)), dtype=np.float32) / 255.0
        x = torch.from_numpy(img).flatten()
        if proj is None:
            proj = torch.randn(x.numel(), 32)
        feats.append(x @ proj)
    rows = score_modes(torch.stack(feats), dataset.test_pool, dataset.eval_modes())
    return {(r['mode'], m): r[m] for r in rows for m in ('mAP', 'R1')}


@pytest.fixture(scope='module')
def trees(tmp_path_factory):
    base = tmp_path_factory.mktemp('depth')
    make_sysu_mm01(str(base / 'plain'), num_train=2, num_val=1, num_test=8, images_per_cam=2,
                   size=(64, 32))
    out = {}
    for kind in ('8bit', '16bit'):
        shutil.copytree(str(base / 'plain'), str(base / kind))
        _rewrite_infrared(os.path.join(str(base / kind), 'SYSU-MM01'), kind == '16bit')
        out[kind] = str(base / kind)
    return out


def test_16bit_thermal_tree_scores_like_the_8bit_tree(trees):
    sample = os.path.join(trees['16bit'], 'SYSU-MM01', 'cam3')
    pid = sorted(os.listdir(sample))[0]
    assert Image.open(os.path.join(sample, pid, '0001.png')).mode == 'I;16'
    # the pixels themselves: the 16-bit file reads as its 8-bit counterpart
    eight_png = os.path.join(trees['8bit'], 'SYSU-MM01', 'cam3', pid, '0001.png')
    assert (np.asarray(read_image(eight_png)) ==
            np.asarray(read_image(os.path.join(sample, pid, '0001.png')))).all()
    eight, sixteen = _metrics(trees['8bit']), _metrics(trees['16bit'])
    assert eight.keys() == sixteen.keys()
    for key in eight:
        assert abs(eight[key] - sixteen[key]) <= TOLERANCE, (key, eight[key], sixteen[key])


def test_plain_pil_conversion_would_fail_this_check(trees):
    """The check above can fail: PIL's convert('RGB') reads the 16-bit tree all white."""
    def clipping(path):
        with Image.open(path) as img:
            return img.convert('RGB')
    eight, white = _metrics(trees['8bit']), _metrics(trees['16bit'], clipping)
    assert max(abs(eight[k] - white[k]) for k in eight) > TOLERANCE
