"""Synthetic LLCM: idx/*.txt, vis|nir/<pid4>/ and the test_vis|test_nir copies, drawn
by the shared person renderer (``data/synthetic.py``).
"""
import os
import shutil

import numpy as np

from ...synthetic import (DEFAULT_SIZE, IDENT, IMAGE, SCENE, SPLIT, make_scene, random_identities,
                          render_person, rng_stream, save_image, synthetic_writer, write_atomic,
                          write_lines)
from .dataset import LLCM

#: rng stream tag of this dataset (``data/synthetic.py``)
STREAM = 4

LLCM_CAMS = {'vis': tuple(range(1, 10)), 'nir': (1, 2, 4, 5, 6, 7, 8, 9)}   # no infrared cam3


def _llcm_ids(rng, num_train, num_test):
    """Raw ids from 0 with gaps; the test ids are exactly those divisible by 3 (as LLCM's)."""
    test = rng.choice(np.arange(0, 3 * (num_test + num_test // 4 + 2), 3), num_test, replace=False)
    others = [i for i in range(3 * (num_train + num_train // 4 + 2)) if i % 3]
    train = rng.choice(others, num_train, replace=False)
    return sorted(int(i) for i in train), sorted(int(i) for i in test)


# real_ids: 1,064 identities (713 train, 351 test; the LLCM README)
@synthetic_writer('llcm', LLCM.dataset_dir, real_ids=1064)
def make_llcm(root, seed=0, num_train=144, num_test=32, cams_per_id=(2, 3), images=(2, 4),
              size=DEFAULT_SIZE, overwrite=False):
    """Write ``<root>/LLCM`` (idx/*.txt, vis|nir/<pid4>/, test_vis|test_nir/cam<K>/<pid4>/).

    Each id is filmed by ``cams_per_id`` (min, max) cameras per modality, with
    ``images`` (min, max) images each. Visible images are dim (low light).
    Index lines come in per-id blocks in a shuffled id order, labelled by first
    appearance; test_id.txt is one line without a trailing newline; the test
    images are copied into test_*/cam<K>/<pid4>/ as in the release.
    """
    if min(num_train, num_test) < 1:
        raise ValueError('LLCM needs at least one train and one test id')
    rng = rng_stream(seed, STREAM, SPLIT)
    train, test = _llcm_ids(rng, num_train, num_test)
    people = dict(zip(train + test, random_identities(rng_stream(seed, STREAM, IDENT),
                                                      num_train + num_test)))
    scenes = {c: make_scene(rng_stream(seed, STREAM, SCENE, c), outdoor=c > 3)
              for c in range(1, 10)}
    shots = {}   # (pid, mod) -> [(cam, n_images)]
    for pid in train + test:
        for mod in ('vis', 'nir'):
            k = int(rng.integers(cams_per_id[0], cams_per_id[1] + 1))
            cams = sorted(int(c) for c in rng.choice(LLCM_CAMS[mod], k, replace=False))
            shots[pid, mod] = [(c, int(rng.integers(images[0], images[1] + 1))) for c in cams]

    def build(out):
        for k, (part, pids) in enumerate((('train', train), ('test', test)), 1):
            order = [int(p) for p in rng_stream(seed, STREAM, SPLIT, k).permutation(pids)]
            for mod in ('vis', 'nir'):
                lines = []
                for label, pid in enumerate(order):
                    for cam, n in shots[pid, mod]:
                        r = rng_stream(seed, STREAM, IMAGE, pid, cam, mod == 'nir')
                        clock = int(r.integers(6 * 3600, 23 * 3600))
                        for k in range(n):
                            img = render_person(people[pid], mod == 'nir', r, scene=scenes[cam],
                                                size=size, light=None if mod == 'nir' else
                                                scenes[cam]['light'] * r.uniform(0.45, 0.8))
                            t = clock + 7 * k
                            name = '{:04d}_c{:02d}_s{:02d}{:02d}{:02d}_f{}_{}.jpg'.format(
                                pid, cam, t // 3600, t // 60 % 60, t % 60,
                                int(r.integers(100, 30000)), mod)
                            rel = '{}/{:04d}/{}'.format(mod, pid, name)
                            save_image(img, os.path.join(out, rel), quality=90)
                            if part == 'test':
                                copy = os.path.join(out, 'test_' + mod, 'cam{}'.format(cam),
                                                    '{:04d}'.format(pid), name)
                                os.makedirs(os.path.dirname(copy), exist_ok=True)
                                shutil.copyfile(os.path.join(out, rel), copy)
                            lines.append('{} {}'.format(rel, label))
                write_lines(os.path.join(out, 'idx', '{}_{}.txt'.format(part, mod)), lines)
            if part == 'test':
                with open(os.path.join(out, 'idx', 'test_id.txt'), 'w') as f:
                    f.write(','.join('{:04d}'.format(p) for p in order))
    return write_atomic(root, LLCM.dataset_dir, build, overwrite, 'llcm')
