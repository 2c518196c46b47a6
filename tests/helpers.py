"""Paths and small builders several test files share.

No package import at module level: the processes that test_ddp_grads.py spawns import their
test file (and so this module) without paying for ``vireid_plugin``'s registrations.
"""
import os
import socket
import subprocess
import sys

import torch

TESTS = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(TESTS)
CONFIGS = os.path.join(REPO, 'configs')
DEMO = os.path.join(CONFIGS, 'demo.yaml')

#: what torchrun sets for its workers: a parent's own values must not reach them
DISTRIBUTED_ENV = ('RANK', 'WORLD_SIZE', 'LOCAL_RANK', 'MASTER_ADDR', 'MASTER_PORT',
                   'TORCHELASTIC_RESTART_COUNT')


def config_file(name):
    """The path of ``configs/<name>``."""
    return os.path.join(CONFIGS, name)


def synthetic_sysu(tmp_path_factory, num_train, num_val, num_test, images_per_cam=2,
                   size=(64, 32), name='sysu'):
    """A fresh synthetic SYSU-MM01 root (``make_sysu_mm01``) in a new temporary folder."""
    from vireid_plugin.data.synthetic import make_sysu_mm01
    root = str(tmp_path_factory.mktemp(name))
    make_sysu_mm01(root, num_train=num_train, num_val=num_val, num_test=num_test,
                   images_per_cam=images_per_cam, size=size)
    return root


def write_pngs(folder, n, seed, grow=False):
    """``n`` random RGB PNGs ``img0.png``.. of 40x20 pixels (the i-th ``i`` pixels taller
    when ``grow``) in ``folder``; returns their paths."""
    import numpy as np
    from PIL import Image
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        path = os.path.join(folder, 'img{}.png'.format(i))
        height = 40 + i if grow else 40
        Image.fromarray(rng.integers(0, 256, (height, 20, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def resized(path, size):
    """An image as training reads it, independently of any cache: PIL opens it, torchvision
    resizes it to ``size``; a CxHxW uint8 tensor."""
    import numpy as np
    import torchvision.transforms as T
    from PIL import Image
    img = T.Resize(size)(Image.open(path).convert('RGB'))
    return torch.from_numpy(np.array(img)).permute(2, 0, 1)


def corrupt(path):
    """Overwrite an image with bytes that start as a JPEG and decode as none; its mtime moves
    on by a second (a cache that compares mtimes sees the change on coarse clocks)."""
    with open(path, 'wb') as f:
        f.write(b'\xff\xd8\xff\xe0 this is not a JPEG any more')
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))


def free_port():
    """A TCP port free on 127.0.0.1 now (for MASTER_PORT)."""
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def gloo_rank(rank, port, world=2):
    """In a spawned process: the variables ``init_distributed`` reads, for ``rank`` of
    ``world`` on this host, and one intra-op thread (the 2 cores are shared)."""
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)


class ToyItems(torch.utils.data.Dataset):
    """A torchreid train list ``(path, pid, camid, dsetid, modality)`` as a dataset of dicts;
    ``image(index, pid)`` makes the item's image tensor (no image without it, for tests of
    the labels alone). A key may be an ``(index, ...)`` tuple (samplers that hand out more
    than the index)."""

    def __init__(self, items, image=None):
        self.train = items
        self.image = image

    def __len__(self):
        return len(self.train)

    def __getitem__(self, key):
        i = key[0] if isinstance(key, (tuple, list)) else key
        _, pid, camid, _, modality = self.train[i]
        item = {'pid': pid, 'camid': camid, 'modality': modality}
        if self.image is not None:
            item['img'] = self.image(i, pid)
        return item


def toy_data_manager(items, image, sampler, batch_size=8):
    """What CrossModalEngine reads of a data manager: a train loader of ``ToyItems(items,
    image)`` in ``sampler``'s order (whole batches only), no test sets."""
    import types
    loader = torch.utils.data.DataLoader(ToyItems(items, image), batch_size=batch_size,
                                         sampler=sampler, drop_last=True)
    return types.SimpleNamespace(train_loader=loader, test_loader={}, sources=[])


def torchrun(tmp_path, worker, args, restarts, env=None, timeout=600):
    """Run ``worker`` (Python source; ``{repo}`` and ``{tests}`` are formatted in) under
    ``torchrun --standalone`` with 2 processes and ``--max-restarts restarts``; the workers
    get one intra-op thread, this checkout first on PYTHONPATH, none of the parent's
    distributed variables, and ``env`` on top. Returns the CompletedProcess (text output)."""
    path = tmp_path / 'worker.py'
    path.write_text(worker.format(repo=REPO, tests=TESTS))
    run_env = {k: v for k, v in os.environ.items() if k not in DISTRIBUTED_ENV}
    run_env.update(OMP_NUM_THREADS='1', PYTHONPATH=os.pathsep.join(
        [REPO] + [p for p in run_env.get('PYTHONPATH', '').split(os.pathsep) if p]))
    run_env.update(env or {})
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc-per-node',
           '2', '--max-restarts', str(restarts), '--monitor-interval', '0.5', str(path)]
    return subprocess.run(cmd + [str(a) for a in args], env=run_env, capture_output=True,
                          text=True, timeout=timeout)
