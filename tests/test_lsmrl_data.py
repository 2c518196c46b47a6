"""The video data path LSMRL relies on: one augmentation draw per clip (every video
model), the padding rule for short test tracklets, and LSMRL on such a clip."""
import random

import numpy as np
import torch
from PIL import Image

from dataset_trees import write_vcm_tree
from test_datasets_vcm import QUERY_IDX, TEST, TRAIN, build, red_levels
from vireid_plugin import compat
from vireid_plugin.data.clip_transform import transform_clip
from vireid_plugin.models import build_model


def textured_image(path, size=(32, 16)):
    """A picture whose flips, crops and erasings all look different."""
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (size[0], size[1], 3), dtype=np.uint8)).save(path)
    return str(path)


def seed_all(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_transform(h=32, w=16):
    transform, _ = compat.transforms.build_transforms(
        h, w, transforms=['random_flip', 'random_crop', 'random_erase'])
    return transform


def test_a_clip_of_identical_frames_stays_identical_after_augmentation(tmp_path):
    write_vcm_tree(tmp_path, TRAIN, TEST, QUERY_IDX)
    ds = build(tmp_path, mode='train', seq_len=6, transform=train_transform())
    path, pid, camid, dsetid, modality = ds.data[0]
    ds.data[0] = ((textured_image(tmp_path / 'same.png'),) * 12, pid, camid, dsetid, modality)
    clips = [ds[0]['img'] for _ in range(12)]
    for clip in clips:
        assert all(torch.equal(frame, clip[0]) for frame in clip[1:])
    # the draws do vary from clip to clip (flip / crop / erasing are really on)
    assert any(not torch.equal(clip, clips[0]) for clip in clips[1:])


def test_transform_clip_draws_once_and_moves_the_generators_on():
    img = Image.open(textured_image('/tmp/lsmrl_textured.png'))
    transform = train_transform()
    seed_all(3)
    first = transform_clip(transform, [img, img, img])
    assert torch.equal(first[0], first[1]) and torch.equal(first[1], first[2])
    seed_all(3)
    assert torch.equal(transform(img), first[0])   # the same draw a single frame gets


def test_short_test_tracklet_is_padded_with_its_last_frame_and_scored(tmp_path):
    write_vcm_tree(tmp_path, TRAIN, TEST, QUERY_IDX)
    query = build(tmp_path, mode='query', seq_len=6, min_seq_len=1,
                  transform=compat.transforms.build_transforms(128, 64, transforms=[])[1])
    short = next(i for i, it in enumerate(query.data) if len(it[0]) == 3)
    item = query[short]
    # 3 frames, T = 6: c = 1, indices 0, 1, 2 then the last frame three more times
    frames = item['img']
    assert all(torch.equal(frames[k], frames[2]) for k in (3, 4, 5))
    assert not torch.equal(frames[0], frames[1]) and not torch.equal(frames[1], frames[2])
    model = build_model('lsmrl_clip_tiny', 3, pretrained=False).eval()
    with torch.no_grad():
        feat = model(item['img'][None])
    assert feat.shape == (1, 96 + 64) and torch.isfinite(feat).all()


def test_red_levels_helper_still_reads_unnormalised_clips(tmp_path):
    write_vcm_tree(tmp_path, TRAIN, TEST, QUERY_IDX)
    query = build(tmp_path, mode='query', seq_len=6, min_seq_len=1)
    short = next(i for i, it in enumerate(query.data) if len(it[0]) == 3)
    assert red_levels(query[short]['img']) == [0, 1, 2, 2, 2, 2]
