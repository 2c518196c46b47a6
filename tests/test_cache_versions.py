"""The image cache never pulls data from under a run: a rebuild writes a new version and
switches the manifest atomically; a process reading the old version keeps reading its
bytes; the old version is removed when its last reader ends (or by the next open)."""
import hashlib
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from vireid_plugin.data.cache import open_image_cache

from tests.helpers import REPO, resized, write_pngs

SIZE = (24, 12)

READER = r'''
import hashlib, json, pickle, sys
from vireid_plugin.data.cache import open_image_cache
paths, folder = json.loads(sys.argv[1]), sys.argv[2]
cache = open_image_cache(paths, (24, 12), 'toy', folder=folder, verbose=False)

def digest(c):
    return [hashlib.sha1(c.read(i).numpy().tobytes()).hexdigest() for i in range(len(c))]

print(json.dumps({'array': cache.array_path, 'rows': digest(cache)}), flush=True)
sys.stdin.readline()                        # meanwhile another process rebuilds
worker = pickle.loads(pickle.dumps(cache))  # a DataLoader worker started now: its own map
print(json.dumps({'rows': digest(cache), 'worker': digest(worker)}), flush=True)
if sys.stdin.readline().strip() == 'close':
    cache.close()
    print('closed', flush=True)
sys.stdin.readline()
'''


def write_images(folder, n=4):
    return write_pngs(folder, n, seed=1)


def expected_digest(path):
    return hashlib.sha1(resized(path, SIZE).contiguous().numpy().tobytes()).hexdigest()


def change(path, value):
    Image.fromarray(np.full((40, 20, 3), value, np.uint8)).save(path)
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))   # coarse clocks


class Reader:
    """Another process holding the cache open (as a training run does)."""

    def __init__(self, paths, folder):
        env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''),
                   OMP_NUM_THREADS='1')
        self.proc = subprocess.Popen([sys.executable, '-c', READER, json.dumps(paths), folder],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     env=env)

    def say(self, line=''):
        self.proc.stdin.write(line + '\n')
        self.proc.stdin.flush()

    def answer(self):
        line = self.proc.stdout.readline()
        assert line, 'the reader process died (exit status {})'.format(self.proc.wait())
        return line.strip()

    def end(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def arrays(folder):
    """Every array file, temporary ones (hidden) included."""
    return sorted(n for n in os.listdir(folder) if n.endswith('.npy'))


def current(folder):
    with open(os.path.join(folder, 'toy_24x12.json')) as f:
        return json.load(f)['array']


def test_a_reader_keeps_its_version_while_another_process_rebuilds(tmp_path):
    paths, folder = write_images(str(tmp_path / 'd')), str(tmp_path / 'c')
    original = [expected_digest(p) for p in paths]
    reader = Reader(paths, folder)
    try:
        first = json.loads(reader.answer())              # built by the reader, read by it
        assert first['rows'] == original
        v1 = os.path.basename(first['array'])
        assert arrays(folder) == [v1] == [current(folder)]

        change(paths[2], 77)                             # this process rebuilds
        rebuilt = open_image_cache(paths, SIZE, 'toy', folder=folder, verbose=False)
        v2 = current(folder)
        assert v2 != v1 and arrays(folder) == sorted([v1, v2])   # v1 is in use: kept
        assert bool((rebuilt.read(2) == 77).all())
        assert hashlib.sha1(rebuilt.read(0).numpy().tobytes()).hexdigest() == original[0]

        reader.say()
        second = json.loads(reader.answer())
        assert second['rows'] == original                # its original bytes, row 2 too
        assert second['worker'] == original              # a worker opened after the switch
        reader.say('close')
        assert reader.answer() == 'closed'
        assert arrays(folder) == [v2]                    # its last reader ended: removed
        assert not os.path.exists(os.path.join(folder, v1 + '.use'))
        rebuilt.close()
        assert arrays(folder) == [v2]                    # the current version stays
    finally:
        reader.end()


def test_a_killed_reader_frees_its_version_for_the_next_open(tmp_path):
    paths, folder = write_images(str(tmp_path / 'd')), str(tmp_path / 'c')
    open_image_cache(paths, SIZE, 'toy', folder=folder, verbose=False).close()
    v1 = current(folder)
    reader = Reader(paths, folder)
    try:
        assert os.path.basename(json.loads(reader.answer())['array']) == v1
        change(paths[0], 5)
        open_image_cache(paths, SIZE, 'toy', folder=folder, verbose=False).close()
        v2 = current(folder)
        assert arrays(folder) == sorted([v1, v2])        # still read by the other process
        reader.proc.send_signal(signal.SIGKILL)          # ends without closing anything
        reader.proc.wait()
        # the next open (here: up to date, nothing built) sweeps what nobody reads
        cache = open_image_cache(paths, SIZE, 'toy', folder=folder, verbose=False)
        assert arrays(folder) == [v2] and cache.array_path.endswith(v2)
        cache.close()
    finally:
        reader.end()


def built_then_changed(tmp_path, index, value):
    """A cache built for fresh images, then image ``index`` changed to ``value``; returns
    (the image paths, the cache folder, its current version, its manifest's bytes)."""
    paths, folder = write_images(str(tmp_path / 'd')), str(tmp_path / 'c')
    open_image_cache(paths, SIZE, 'toy', folder=folder, verbose=False).close()
    v1 = current(folder)
    manifest = open(os.path.join(folder, 'toy_24x12.json'), 'rb').read()
    change(paths[index], value)
    return paths, folder, v1, manifest


def test_an_interrupted_build_leaves_the_current_version_and_its_leftovers_are_swept(
        tmp_path, monkeypatch):
    from vireid_plugin.data import cache as cache_mod
    paths, folder, v1, manifest = built_then_changed(tmp_path, 1, 9)

    def interrupted(path, size):
        raise KeyboardInterrupt   # pre-emption in the middle of decoding
    monkeypatch.setattr(cache_mod, 'resize_to_cache', interrupted)
    try:
        open_image_cache(paths, SIZE, 'toy', folder=folder, verbose=False)
    except KeyboardInterrupt:
        pass
    monkeypatch.undo()
    assert open(os.path.join(folder, 'toy_24x12.json'), 'rb').read() == manifest
    assert arrays(folder) == [v1]                 # the current version; no temporary array
    # a temporary array left by a build that was killed outright goes at the next open
    stale = os.path.join(folder, '.tmp-toy_24x12-0123456789ab.npy')
    open(stale, 'wb').close()
    cache = open_image_cache(paths, SIZE, 'toy', folder=folder, verbose=False)
    assert not os.path.exists(stale) and current(folder) != v1
    assert bool((cache.read(1) == 9).all())
    cache.close()


def test_a_disk_without_room_for_the_new_version_is_one_error_and_nothing_lost(
        tmp_path, monkeypatch):
    from collections import namedtuple
    from vireid_plugin.checkpoint_io import WriteError
    paths, folder, v1, manifest = built_then_changed(tmp_path, 3, 200)
    full = namedtuple('statvfs', 'f_bavail f_frsize')(1, 4096)     # 4 KB free
    monkeypatch.setattr(os, 'statvfs', lambda path: full)
    needed = len(paths) * 3 * SIZE[0] * SIZE[1]
    with pytest.raises(WriteError) as info:
        open_image_cache(paths, SIZE, 'toy', folder=folder, verbose=False)
    monkeypatch.undo()
    msg = str(info.value)
    assert 'cannot write {}'.format(folder) in msg and 'No space left on device' in msg
    assert 'needs {:.2f} GB'.format((needed + 4096) / 1e9) in msg and 'ENOSPC' in msg
    assert open(os.path.join(folder, 'toy_24x12.json'), 'rb').read() == manifest
    assert arrays(folder) == [v1]
