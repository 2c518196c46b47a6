"""Synthetic BUPTCampus: DATA/<pid>/<RGB|IR|FakeIR>/<cam>/..., data_paths.json and
the split files, paired RGB/IR tracklets drawn by the shared person renderer
(``data/synthetic.py``).
"""
import json
import os

import numpy as np

from ...synthetic import (DEFAULT_SIZE, IDENT, IMAGE, SCENE, SPLIT, make_scene, random_identities,
                          render_tracklet, rng_stream, save_image, synthetic_writer, walk_pose,
                          walk_start, write_atomic, write_lines)
from .dataset import BUPTCampus

#: rng stream tag of this dataset (``data/synthetic.py``)
STREAM = 5

BUPT_CAMS = ('LS3', 'G25', 'CQ1', 'W4', 'TSG1', 'TSG2')


def _render_pair(ident, rng, scene, length, size):
    """(RGB frames, IR frames) of one walk filmed by both sensors of a camera at once."""
    start, motion = walk_start(rng)
    poses = [walk_pose(start, motion, f, rng.normal(0, 0.004)) for f in range(length)]
    seeds = rng.integers(2 ** 32, size=2)
    return tuple(render_tracklet(ident, ir, np.random.default_rng(int(sd)), scene, length,
                                 size, poses=poses) for ir, sd in zip((False, True), seeds))


def _bupt_plan(rng, train, aux, test, cams_per_id):
    """{split file: [(pid, modality field, camera, tid)]} and every tracklet pair to render.

    Train ids: one pair in each of ``cams_per_id`` cameras; auxiliary ids: two pairs
    in one camera; test ids: a query (one half of a pair, RGB or IR in turn) and
    gallery pairs in two other cameras plus, for every third id, one in the
    query's camera (dropped by the same-camera removal).
    """
    lines = {name: [] for name in ('train.txt', 'train_auxiliary.txt', 'query.txt',
                                   'gallery.txt')}
    for pid in train:
        k = int(rng.integers(cams_per_id[0], cams_per_id[1] + 1))
        for cam in sorted(rng.choice(len(BUPT_CAMS), k, replace=False)):
            lines['train.txt'].append((pid, 'RGB/IR', BUPT_CAMS[cam], 1))
    for pid in aux:
        cam = BUPT_CAMS[int(rng.integers(len(BUPT_CAMS)))]
        lines['train_auxiliary.txt'] += [(pid, 'RGB/IR', cam, t) for t in (1, 2)]
    for i, pid in enumerate(test):
        cams = [BUPT_CAMS[c] for c in rng.choice(len(BUPT_CAMS), 3, replace=False)]
        lines['query.txt'].append((pid, ('RGB', 'IR')[i % 2], cams[0], 1))
        pairs = [(cams[1], 1), (cams[2], 1)] + ([(cams[0], 2)] if i % 3 == 0 else [])
        lines['gallery.txt'] += [(pid, mod, cam, tid) for cam, tid in pairs
                                 for mod in ('RGB', 'IR')]
    pairs = sorted({(p, c, t) for rows in lines.values() for p, _, c, t in rows})
    return lines, pairs


# real_ids: 3,080 identities (the BUPTCampus README)
@synthetic_writer('buptcampus', BUPTCampus.dataset_dir, real_ids=3080)
def make_buptcampus(root, seed=0, num_train=96, num_aux=16, num_test=48, cams_per_id=(2, 3),
                    lengths=(8, 16), size=DEFAULT_SIZE, overwrite=False):
    """Write ``<root>/BUPTCampus`` (DATA/<pid>/<RGB|IR|FakeIR>/<cam>/..., data_paths.json,
    train.txt, train_auxiliary.txt, query.txt, gallery.txt); returns its path.

    Every tracklet is an RGB/IR pair filmed at once (same poses, same frame
    numbers); FakeIR/ holds a stand-in for the authors' PairGAN output (the IR
    frame under the RGB name). ``lengths``: (min, max) frames a tracklet.
    """
    if min(num_train, num_test) < 1:
        raise ValueError('BUPTCampus needs at least one train and one test id')
    n = num_train + num_aux + num_test
    rng = rng_stream(seed, STREAM, SPLIT)
    ids = [int(i) for i in rng.permutation(np.arange(1, n + n // 4 + 2))[:n]]
    train, aux, test = (sorted(ids[:num_train]), sorted(ids[num_train:num_train + num_aux]),
                        sorted(ids[num_train + num_aux:]))
    people = dict(zip(ids, random_identities(rng_stream(seed, STREAM, IDENT), n)))
    scenes = {c: make_scene(rng_stream(seed, STREAM, SCENE, i), outdoor=i % 2 == 0)
              for i, c in enumerate(BUPT_CAMS)}
    lines, pairs = _bupt_plan(rng, train, aux, test, cams_per_id)

    def build(out):
        paths = {}
        for pid, cam, tid in pairs:
            r = rng_stream(seed, STREAM, IMAGE, pid, BUPT_CAMS.index(cam), tid)
            length = int(r.integers(lengths[0], lengths[1] + 1))
            first = int(r.integers(100, 9000))
            rgb, ir = _render_pair(people[pid], r, scenes[cam], length, size)
            for mod, frames in (('RGB', rgb), ('IR', ir)):
                rels = []
                for f, img in enumerate(frames, first):
                    name = '{}_{}_{}_{}_{}.jpg'.format(pid, mod, cam, tid, f)
                    rels.append('{}/{}/{}/{}'.format(pid, mod, cam, name))
                    save_image(img, os.path.join(out, 'DATA', rels[-1]), quality=90)
                    if mod == 'IR':   # PairGAN stand-in: the IR frame, named as the RGB one
                        fake = name.replace('_IR_', '_RGB_')
                        save_image(img, os.path.join(out, 'DATA', str(pid), 'FakeIR', cam,
                                                     fake), quality=90)
                paths.setdefault(str(pid), {}).setdefault(mod, {}).setdefault(
                    cam, {})[str(tid)] = rels
        with open(os.path.join(out, 'data_paths.json'), 'w') as f:
            json.dump(paths, f)
        for name, rows in lines.items():
            write_lines(os.path.join(out, name), ['{} {} {} {}'.format(*r) for r in rows])
    return write_atomic(root, BUPTCampus.dataset_dir, build, overwrite, 'buptcampus')
