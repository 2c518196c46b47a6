"""Synthetic RegDB: Visible/, Thermal/ and idx/ trial files, drawn by the shared
person renderer (``data/synthetic.py``).
"""
import os

from ...synthetic import (DEFAULT_SIZE, IDENT, IMAGE, SCENE, SPLIT, make_scene, random_identities,
                          random_pose, render_person, rng_stream, save_image, synthetic_writer,
                          write_atomic, write_lines)
from .dataset import RegDB

#: rng stream tag of this dataset (``data/synthetic.py``)
STREAM = 2


# real_ids: 412 ids, 10 visible + 10 thermal images each (Nguyen et al. 2017)
@synthetic_writer('regdb', RegDB.dataset_dir, real_ids=412)
def make_regdb(root, seed=0, num_ids=64, images_per_id=10, num_trials=10, size=DEFAULT_SIZE,
               overwrite=False):
    """Write ``<root>/RegDB`` (Visible/, Thermal/, idx/); returns its path.

    Like the real set, each visible image has a thermal twin taken at the same
    moment (same pose, same file number). Trial t splits the ids in half at
    random; labels are 0.. in ascending id order, per split.
    """
    if num_ids < 2 or num_ids % 2:
        raise ValueError('RegDB needs an even num_ids >= 2, got {}'.format(num_ids))
    ids = list(range(1, num_ids + 1))
    people = dict(zip(ids, random_identities(rng_stream(seed, STREAM, IDENT), num_ids)))
    scene = make_scene(rng_stream(seed, STREAM, SCENE), outdoor=True)

    def build(out):
        files = {'visible': {}, 'thermal': {}}
        for pid in ids:
            r = rng_stream(seed, STREAM, IMAGE, pid)
            for k in range(images_per_id):
                number = (pid - 1) * images_per_id + k    # unique over the dataset
                pose = random_pose(r)
                for mod, letter, folder in (('visible', 'v', 'Visible'),
                                            ('thermal', 't', 'Thermal')):
                    img = render_person(people[pid], mod == 'thermal', r, pose=pose,
                                        scene=scene, size=size)
                    rel = '{}/{}/{}_{}_{}_{:05d}_{}.bmp'.format(
                        folder, pid, people[pid].gender, pose['view'], letter, number, pid)
                    save_image(img, os.path.join(out, rel))
                    files[mod].setdefault(pid, []).append(rel)
        for t in range(1, num_trials + 1):
            perm = [int(i) for i in rng_stream(seed, STREAM, SPLIT, t).permutation(ids)]
            for part, group in (('train', perm[:num_ids // 2]), ('test', perm[num_ids // 2:])):
                label = {pid: i for i, pid in enumerate(sorted(group))}
                for mod in ('visible', 'thermal'):
                    write_lines(os.path.join(out, 'idx', '{}_{}_{}.txt'.format(part, mod, t)),
                                ['{} {}'.format(rel, label[pid])
                                 for pid in sorted(group) for rel in files[mod][pid]])
    return write_atomic(root, RegDB.dataset_dir, build, overwrite, 'regdb')
