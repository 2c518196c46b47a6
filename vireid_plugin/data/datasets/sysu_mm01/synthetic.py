"""Synthetic SYSU-MM01: cam1..cam6/<pid4>/<nnnn>.jpg and exp/*_id.txt, drawn by the
shared person renderer (``data/synthetic.py``).
"""
import os

import numpy as np

from ...synthetic import (DEFAULT_SIZE, IDENT, IMAGE, SCENE, SPLIT, make_scene, random_identities,
                          render_person, rng_stream, save_image, synthetic_writer, write_atomic,
                          write_lines)
from .dataset import SYSUMM01

#: rng stream tag of this dataset (``data/synthetic.py``)
STREAM = 1

SYSU_RGB_CAMS, SYSU_IR_CAMS = (1, 2, 4, 5), (3, 6)


def _sysu_scenes(seed):
    rooms = {room: make_scene(rng_stream(seed, STREAM, SCENE, room), outdoor=room >= 3)
             for room in (1, 2, 3, 4, 5)}
    # cam3 (IR) films the same room as cam2; cam6 (IR) is outdoors
    return {1: rooms[1], 2: rooms[2], 3: rooms[2], 4: rooms[3], 5: rooms[4], 6: rooms[5]}


def _sysu_cameras(rng, test_ids, no_indoor, ids, keep_prob):
    """{pid: sorted cams}: random drops, then the real data's guarantees."""
    cams = {}
    for pid in ids:
        keep = {c for c in range(1, 7) if rng.random() < keep_prob}
        if pid in no_indoor:          # indoor search queries of this id have no match
            keep -= {1, 2}
        elif pid in test_ids and not keep & {1, 2}:
            keep.add(int(rng.choice([1, 2])))
        if not keep & set(SYSU_RGB_CAMS):
            keep.add(int(rng.choice([4, 5] if pid in no_indoor else SYSU_RGB_CAMS)))
        if not keep & set(SYSU_IR_CAMS):
            keep.add(int(rng.choice(SYSU_IR_CAMS)))
        cams[pid] = sorted(keep)
    return cams


# real_ids: 491 valid ids (296 train, 99 val, 96 test; the SYSU-MM01 README)
@synthetic_writer('sysu_mm01', SYSUMM01.dataset_dir, real_ids=491)
def make_sysu_mm01(root, seed=0, num_train=128, num_val=16, num_test=32, images_per_cam=3,
                   num_no_indoor=None, keep_prob=0.75, size=DEFAULT_SIZE, overwrite=False):
    """Write ``<root>/SYSU-MM01`` (cam1..cam6/<pid4>/<nnnn>.jpg + exp/*.txt); returns its path.

    Ids are non-contiguous and split at random; some (id, camera) folders are
    dropped. Defaults suit the CPU demo: with 30 training ids the tiny ViT
    memorises them; 144 (train + val) with ``random_grayscale`` take it from
    about 8% to 36% mAP in the demo (docs/benchmarks.md). ``num_no_indoor`` test ids
    (default ``max(1, num_test // 8)``) get no cam1/cam2 folder, so some
    indoor-search queries have no match.
    """
    if min(num_train, num_val, num_test) < 1:
        # the real exp/*.txt files are never empty, and the loader rejects empty ones
        raise ValueError('SYSU-MM01 needs at least one train, val and test id; got {}, {}, '
                         '{}'.format(num_train, num_val, num_test))
    n = num_train + num_val + num_test
    rng = rng_stream(seed, STREAM, SPLIT)
    ids = sorted(int(i) for i in rng.choice(np.arange(1, n + n // 4 + 3), n, replace=False))
    perm = [int(i) for i in rng.permutation(ids)]
    train, val, test = (sorted(perm[:num_train]), sorted(perm[num_train:num_train + num_val]),
                        sorted(perm[num_train + num_val:]))
    if num_no_indoor is None:
        num_no_indoor = max(1, num_test // 8) if num_test >= 4 else 0
    no_indoor = set(int(i) for i in rng.permutation(test)[:num_no_indoor])
    cams = _sysu_cameras(rng, set(test), no_indoor, ids, keep_prob)
    people = dict(zip(ids, random_identities(rng_stream(seed, STREAM, IDENT), n)))
    scenes = _sysu_scenes(seed)

    def build(out):
        for cam in range(1, 7):
            os.makedirs(os.path.join(out, 'cam{}'.format(cam)))
        for pid in ids:
            for cam in cams[pid]:
                r = rng_stream(seed, STREAM, IMAGE, pid, cam)
                for k in range(1, images_per_cam + 1):
                    img = render_person(people[pid], cam in SYSU_IR_CAMS, r,
                                        scene=scenes[cam], size=size)
                    save_image(img, os.path.join(out, 'cam{}'.format(cam), '{:04d}'.format(pid),
                                                 '{:04d}.jpg'.format(k)), quality=90)
        for name, group in (('train_id', train), ('val_id', val), ('test_id', test),
                            ('available_id', ids)):
            write_lines(os.path.join(out, 'exp', name + '.txt'), [','.join(map(str, group))])
    return write_atomic(root, SYSUMM01.dataset_dir, build, overwrite, 'sysu_mm01')
