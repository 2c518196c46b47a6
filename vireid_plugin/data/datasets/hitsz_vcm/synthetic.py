"""Synthetic HITSZ-VCM: info/*.txt and <Train|Test>/<pid4>/<ir|rgb>/D<c>/<f>.jpg
tracklets, drawn by the shared person renderer (``data/synthetic.py``).
"""
import os

import numpy as np

from ...synthetic import (DEFAULT_SIZE, IDENT, IMAGE, SCENE, SPLIT, make_scene, random_identities,
                          render_tracklet, rng_stream, save_image, synthetic_writer, write_atomic,
                          write_lines)
from .dataset import HITSZVCM

#: rng stream tag of this dataset (``data/synthetic.py``)
STREAM = 3

VCM_IR, VCM_RGB = 1, 2
_VCM_FOLDER = {VCM_IR: 'ir', VCM_RGB: 'rgb'}


def _vcm_plan(rng, pids, tracklets, lengths, min_len, num_cams):
    """[(pid, modality, cam, length)]: first tracklet per modality is long enough
    for the loader; the others may be short (the loader drops those)."""
    lo, hi = lengths
    plan = []
    for pid in pids:
        for m in (VCM_IR, VCM_RGB):
            k = int(rng.integers(tracklets[0], tracklets[1] + 1))
            cams = rng.choice(np.arange(1, num_cams + 1), k, replace=k > num_cams)
            lens = [int(rng.integers(max(lo, min_len), max(hi, min_len) + 1))]
            lens += [int(rng.integers(lo, hi + 1)) for _ in range(k - 1)]
            plan += [(pid, m, int(c), n) for c, n in zip(cams, lens)]
    # make sure the short-tracklet filter has something to drop
    if lo < min_len and all(n >= min_len for *_, n in plan):
        extra = [i for i in range(1, len(plan)) if plan[i][:2] == plan[i - 1][:2]]
        if extra:
            pid, m, c, _ = plan[extra[0]]
            plan[extra[0]] = (pid, m, c, lo)
    return sorted(plan, key=lambda p: p[:3])   # stable: tracklet order kept per camera


# real_ids: 927 identities (500 train, 427 test; the HITSZ-VCM paper)
@synthetic_writer('hitsz_vcm', HITSZVCM.dataset_dir, real_ids=927)
def make_hitsz_vcm(root, seed=0, flat=False, num_train=64, num_test=24, tracklets=(3, 4),
                   lengths=(8, 24), min_len=12, num_cams=6, size=DEFAULT_SIZE, overwrite=False):
    """Write ``<root>/HITSZ-VCM`` (info/*.txt + <Train|Test>/<pid4>/<ir|rgb>/D<c>/<f>.jpg).

    ``tracklets``: (min, max) tracklets per id and modality, each in a camera
    D1..D<num_cams> (both modalities share cameras: RGB by day, IR by night).
    ``flat`` puts the pid folders directly under HITSZ-VCM/.
    """
    n = num_train + num_test
    rng = rng_stream(seed, STREAM, SPLIT)
    ids = sorted(int(i) for i in rng.choice(np.arange(1, n + n // 4 + 3), n, replace=False))
    splits = {'train': ids[:num_train], 'test': ids[num_train:]}
    people = dict(zip(ids, random_identities(rng_stream(seed, STREAM, IDENT), n)))
    scenes = {c: make_scene(rng_stream(seed, STREAM, SCENE, c), outdoor=c > num_cams // 2)
              for c in range(1, num_cams + 1)}

    def build(out):
        for split, pids in splits.items():
            folder = out if flat else os.path.join(out, split.capitalize())
            names, rows = [], []
            next_frame, next_track = {}, {}
            for pid, m, cam, length in _vcm_plan(rng, pids, tracklets, lengths, min_len,
                                                 num_cams):
                key = (pid, m, cam)
                t = next_track[key] = next_track.get(key, 0) + 1
                f0 = next_frame.get(key, 1)     # frame numbers continue across tracklets
                next_frame[key] = f0 + length
                r = rng_stream(seed, STREAM, IMAGE, pid, m, cam, t)
                frames = render_tracklet(people[pid], m == VCM_IR, r, scenes[cam], length, size)
                rows.append('{} {} {} {:04d} {}'.format(m, len(names) + 1, len(names) + length,
                                                        pid, cam))
                for f, img in enumerate(frames, f0):
                    names.append('{:04d}M{}D{}T{}F{}.jpg'.format(pid, m, cam, t, f))
                    save_image(img, os.path.join(folder, '{:04d}'.format(pid), _VCM_FOLDER[m],
                                                 'D{}'.format(cam), '{}.jpg'.format(f)),
                               quality=90)
            info = os.path.join(out, 'info')
            write_lines(os.path.join(info, '{}_name.txt'.format(split)), names)
            write_lines(os.path.join(info, 'track_{}_info.txt'.format(split)), rows)
            if split == 'test':
                query = [str(i) for i, row in enumerate(rows, 1) if row.startswith('1 ')]
                write_lines(os.path.join(info, 'query_IDX.txt'), [' '.join(query)])
    return write_atomic(root, HITSZVCM.dataset_dir, build, overwrite, 'hitsz_vcm')
