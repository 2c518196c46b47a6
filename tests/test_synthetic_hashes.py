"""The synthetic data stays the same, byte for byte, for the same seed.

Each tree is hashed over (relative path, bytes) of every file and folder it holds and
compared with a digest recorded by running the same calls on the code before the datasets
were restructured into families (issue 15): a refactor of the writers or of the renderer
must not change one byte. The digests depend on numpy's generators and on Pillow's JPEG/BMP
encoders: they hold for the environment they were taken in (numpy 2.4.6, Pillow 13.0.0);
an upgrade
that changes the encoded files is a real change of the demo data and needs new digests.

The writers are called the way the demos call them: ``data.synthetic: True`` of
``configs/demo.yaml`` generates the full-size SYSU-MM01 (``prepare_datasets``); the other
datasets are hashed at small sizes to keep the test at a few seconds.
"""
import hashlib
import os

import pytest

from vireid_plugin.config import load_config
from vireid_plugin.data.prepare import prepare_datasets
from vireid_plugin.data.synthetic import (SYNTHETIC_MARKER, make_buptcampus, make_hitsz_vcm,
                                          make_llcm, make_regdb, make_sysu_mm01)

from tests.helpers import DEMO


def tree_digest(folder):
    """sha256 over the sorted relative paths of every entry and the bytes of every file,
    except the synthetic marker at the top (added after the digests were recorded; it
    holds no data: each test asserts it is there)."""
    h = hashlib.sha256()
    entries = []
    for dirpath, dirnames, filenames in os.walk(folder):
        rel = os.path.relpath(dirpath, folder)
        if rel == '.':
            assert SYNTHETIC_MARKER in filenames, 'a synthetic tree carries its marker'
            filenames = [f for f in filenames if f != SYNTHETIC_MARKER]
        entries += [('d', os.path.normpath(os.path.join(rel, d))) for d in dirnames]
        entries += [('f', os.path.normpath(os.path.join(rel, f))) for f in filenames]
    for kind, rel in sorted(entries, key=lambda e: e[1]):
        h.update('{} {}\0'.format(kind, rel.replace(os.sep, '/')).encode())
        if kind == 'f':
            with open(os.path.join(folder, rel), 'rb') as f:
                data = f.read()
            h.update(str(len(data)).encode() + b'\0' + data)
    return h.hexdigest()


# digests recorded on the code before the restructure (commit 2bf0233 plus this test)
SMALL = {
    'sysu_mm01': (make_sysu_mm01, dict(seed=3, num_train=6, num_val=2, num_test=8,
                                       images_per_cam=2),
                  '3959c1f258b856b3192b50de4cd1b10239df61ffffb4cdf8527badbebacb1e96'),
    'regdb': (make_regdb, dict(seed=3, num_ids=6, images_per_id=3, num_trials=3),
              '08f19d95982d5a71e0ad3d6e4570a5e6016c1a3e5d9f82b5a9be8745edbe5479'),
    'hitsz_vcm': (make_hitsz_vcm, dict(seed=3, num_train=4, num_test=4, tracklets=(1, 2),
                                       lengths=(3, 13), min_len=12, num_cams=3),
                  'e234b08b61e8b3b2a5f9869d3658314097f0a210a63e613eece7231042adea69'),
    'hitsz_vcm_flat': (make_hitsz_vcm, dict(seed=4, flat=True, num_train=3, num_test=3,
                                            tracklets=(1, 1), lengths=(2, 4), min_len=3,
                                            num_cams=2),
                       'f2078451b04ac8d024ac6de61cb5eb2dedc27faf5b0f16117d4ab31c5234e9b1'),
    'llcm': (make_llcm, dict(seed=3, num_train=5, num_test=4, cams_per_id=(1, 2),
                             images=(1, 2)),
             'd5731d4860099ff9868714c63bd7f752775b98f812c972fcb446c39f5bbc87ed'),
    'buptcampus': (make_buptcampus, dict(seed=3, num_train=4, num_aux=2, num_test=4,
                                         cams_per_id=(1, 2), lengths=(2, 4)),
                   '46cf125519e2383c47d94444c7b8d7550381d7cd1902c55958ae6dcaa50cd048'),
}


@pytest.mark.parametrize('name', sorted(SMALL))
def test_small_synthetic_trees_are_unchanged(tmp_path, name):
    writer, kwargs, digest = SMALL[name]
    path = writer(str(tmp_path), **kwargs)
    assert os.listdir(str(tmp_path)) == [os.path.basename(path)]
    assert tree_digest(path) == digest


DEMO_SYSU = '8e6b6b85bf7603655971e7e8e773e7ffbab8911a3714782bef01ceaf016639e4'


def test_demo_sysu_tree_is_unchanged(tmp_path):
    """What ``python scripts/main.py --config-file configs/demo.yaml`` generates."""
    cfg = load_config(DEMO,
                      ['data.root', str(tmp_path)])
    made = prepare_datasets(cfg)
    assert made == [os.path.join(str(tmp_path), 'SYSU-MM01')]
    assert tree_digest(made[0]) == DEMO_SYSU
