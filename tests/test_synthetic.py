"""Synthetic datasets: exact layouts, determinism, atomic writes, cross-modal rule."""
import dataclasses
import json
import os
import re

import numpy as np
import pytest
from PIL import Image

from vireid_plugin.data import synthetic as syn
from vireid_plugin.data.prepare import ensure_synthetic, write_synthetic
from vireid_plugin.data.synthetic import SYNTHETIC_MARKER
from vireid_plugin.registry import SYNTHETIC_WRITERS


def _read(path):
    with open(path) as f:
        return f.read()


def _img(path):
    with Image.open(path) as im:
        return np.asarray(im.convert('RGB'), dtype=np.int16)


def _assert_grey3(arr):
    """Infrared files are 3-channel images whose channels (nearly) agree."""
    assert arr.ndim == 3 and arr.shape[2] == 3
    assert np.abs(arr - arr[..., :1]).max() <= 3


# ---------------------------------------------------------------- layouts

def test_sysu_layout(tmp_path):
    path = syn.make_sysu_mm01(str(tmp_path), num_train=4, num_val=2, num_test=8,
                              images_per_cam=2)
    assert path == os.path.join(str(tmp_path), 'SYSU-MM01')
    assert sorted(os.listdir(tmp_path)) == ['SYSU-MM01']   # no temp folder left over
    assert sorted(os.listdir(path)) == [SYNTHETIC_MARKER, 'cam1', 'cam2', 'cam3', 'cam4',
                                        'cam5', 'cam6', 'exp']
    groups = {}
    for name in ('train_id', 'val_id', 'test_id', 'available_id'):
        text = _read(os.path.join(path, 'exp', name + '.txt'))
        assert re.fullmatch(r'[1-9]\d*(,[1-9]\d*)*\n?', text), name
        groups[name] = [int(x) for x in text.split(',')]
    train, val, test = (set(groups[k]) for k in ('train_id', 'val_id', 'test_id'))
    assert (len(train), len(val), len(test)) == (4, 2, 8)
    assert not (train & val or train & test or val & test)
    assert sorted(train | val | test) == groups['available_id']
    cams = {}
    for cam in range(1, 7):
        for folder in os.listdir(os.path.join(path, 'cam{}'.format(cam))):
            assert re.fullmatch(r'\d{4}', folder)
            files = sorted(os.listdir(os.path.join(path, 'cam{}'.format(cam), folder)))
            assert files == ['0001.jpg', '0002.jpg']
            cams.setdefault(int(folder), set()).add(cam)
    assert set(cams) == set(groups['available_id'])
    assert all(c & {1, 2, 4, 5} and c & {3, 6} for c in cams.values())
    assert len(set.union(*cams.values())) == 6
    assert any(len(c) < 6 for c in cams.values())   # some (id, cam) folders dropped
    no_indoor = [pid for pid in test if not cams[pid] & {1, 2}]
    assert len(no_indoor) == 1 and cams[no_indoor[0]] & {4, 5}
    pid, cam = min(cams), min(cams[min(cams)] & {3, 6})
    _assert_grey3(_img(os.path.join(path, 'cam{}'.format(cam), '{:04d}'.format(pid), '0001.jpg')))


def test_regdb_layout(tmp_path):
    path = syn.make_regdb(str(tmp_path), num_ids=6, images_per_id=3, num_trials=4)
    assert sorted(os.listdir(path)) == [SYNTHETIC_MARKER, 'Thermal', 'Visible', 'idx']
    for folder, letter in (('Visible', 'v'), ('Thermal', 't')):
        assert sorted(os.listdir(os.path.join(path, folder)), key=int) == list('123456')
        for pid in range(1, 7):
            names = os.listdir(os.path.join(path, folder, str(pid)))
            assert len(names) == 3
            for name in names:
                assert re.fullmatch(r'(male|female)_(front|back)_{}_\d{{5}}_{}\.bmp'.format(
                    letter, pid), name), name
                if letter == 'v':   # each visible image has its thermal twin
                    twin = name.replace('_v_', '_t_')
                    assert os.path.isfile(os.path.join(path, 'Thermal', str(pid), twin))
    assert sorted(os.listdir(os.path.join(path, 'idx'))) == sorted(
        '{}_{}_{}.txt'.format(p, m, t) for p in ('train', 'test')
        for m in ('visible', 'thermal') for t in range(1, 5))
    splits = set()
    for t in range(1, 5):
        seen = {}
        for part in ('train', 'test'):
            mapping = {}
            for mod, folder in (('visible', 'Visible'), ('thermal', 'Thermal')):
                pairs = []
                for line in _read(os.path.join(path, 'idx', '{}_{}_{}.txt'.format(
                        part, mod, t))).splitlines():
                    rel, label = line.split(' ')
                    assert rel.startswith(folder + '/') and os.path.isfile(os.path.join(path, rel))
                    pairs.append((int(rel.split('/')[1]), int(label)))
                assert len(pairs) == 3 * 3
                mapping[mod] = dict(pairs)
                assert len(mapping[mod]) == len(set(pairs))   # one label per id
            assert mapping['visible'] == mapping['thermal']
            ids = sorted(mapping['visible'])
            assert [mapping['visible'][i] for i in ids] == [0, 1, 2]   # ascending relabel
            seen[part] = tuple(ids)
        assert set(seen['train']) | set(seen['test']) == set(range(1, 7))
        assert not set(seen['train']) & set(seen['test'])
        splits.add(seen['train'])
    assert len(splits) > 1   # trials are different splits
    img = _img(os.path.join(path, 'idx', '..', 'Thermal', '1', os.listdir(
        os.path.join(path, 'Thermal', '1'))[0]))
    _assert_grey3(img)
    assert img.shape == (128, 64, 3)


NAME = re.compile(r'(\d{4})M([12])D(\d)T(\d+)F(\d+)\.jpg')


@pytest.mark.parametrize('flat', [False, True])
def test_hitsz_vcm_layout(tmp_path, flat):
    path = syn.make_hitsz_vcm(str(tmp_path), flat=flat, num_train=3, num_test=3,
                              lengths=(8, 14), size=(64, 32))
    info = os.path.join(path, 'info')
    assert sorted(os.listdir(info)) == ['query_IDX.txt', 'test_name.txt', 'track_test_info.txt',
                                        'track_train_info.txt', 'train_name.txt']
    lengths, pids = [], {}
    for split in ('train', 'test'):
        base = path if flat else os.path.join(path, split.capitalize())
        names = _read(os.path.join(info, '{}_name.txt'.format(split))).splitlines()
        for name in names:
            pid, m, cam, _, frame = NAME.fullmatch(name).groups()
            assert os.path.isfile(os.path.join(base, pid, {'1': 'ir', '2': 'rgb'}[m],
                                               'D' + cam, frame + '.jpg'))
        # frame numbers unique per folder: as many files as names
        split_pids = {n[:4] for n in names}
        on_disk = sum(len(files) for d, _, files in os.walk(base)
                      if os.path.relpath(d, base).split(os.sep)[0] in split_pids)
        assert on_disk == len(names)
        rows = [[int(x) for x in r.split()] for r in _read(
            os.path.join(info, 'track_{}_info.txt'.format(split))).splitlines()]
        assert rows[0][1] == 1 and rows[-1][2] == len(names)
        for prev, row in zip(rows, rows[1:]):
            assert row[1] == prev[2] + 1   # ranges tile the name list
        for m, start, end, pid, cam in rows:
            assert 1 <= start <= end <= len(names)
            keys = {NAME.fullmatch(n).groups()[:4] for n in names[start - 1:end]}
            assert len(keys) == 1   # one tracklet
            assert keys.pop()[:3] == ('{:04d}'.format(pid), str(m), str(cam))
            lengths.append(end - start + 1)
            pids.setdefault((split, pid), []).append((m, cam, end - start + 1))
        if split == 'test':
            query = [int(x) for x in _read(os.path.join(info, 'query_IDX.txt')).split()]
            assert query == [i for i, r in enumerate(rows, 1) if r[0] == 1]
    assert min(lengths) < 12 <= max(lengths)   # some tracklets for the loader to drop
    assert len({p for s, p in pids}) == 6
    for (split, pid), tracks in pids.items():
        assert {m for m, _, n in tracks if n >= 12} == {1, 2}
        if split == 'test':
            assert len({c for _, c, _ in tracks}) >= 2
    if flat:
        assert 'Train' not in os.listdir(path) and 'Test' not in os.listdir(path)


# ---------------------------------------------------------------- determinism

def test_determinism(tmp_path):
    kw = dict(num_ids=2, images_per_id=2, num_trials=1)
    files = []
    for sub, seed in (('a', 0), ('b', 0), ('c', 1)):
        path = syn.make_regdb(str(tmp_path / sub), seed=seed, **kw)
        first = sorted(os.listdir(os.path.join(path, 'Thermal', '2')))[0]
        rel = os.path.join('Thermal', '2', first)
        with open(os.path.join(path, rel), 'rb') as f:
            files.append((rel, f.read()))
    assert files[0] == files[1]
    assert files[0][1] != files[2][1]


# ---------------------------------------------------------------- rendering rule

def test_infrared_is_not_grey_visible():
    person = syn.random_identities(np.random.default_rng(0), 1)[0]
    pose = syn.random_pose(np.random.default_rng(1))
    vis = syn.render_person(person, False, np.random.default_rng(2), pose=pose, noise=False)
    ir = syn.render_person(person, True, np.random.default_rng(2), pose=pose, noise=False)
    grey = np.asarray(Image.fromarray(vis).convert('L'), dtype=float)
    assert np.abs(ir[..., 0] - grey).mean() > 15
    # nor a fixed monotone map of it: IR cannot be predicted from visible brightness
    assert abs(np.corrcoef(ir[..., 0].ravel(), grey.ravel())[0, 1]) < 0.9


def test_infrared_follows_material_not_colour():
    """A part's IR brightness is set by its material, whatever its visible colour."""
    rng = np.random.default_rng(3)
    people = syn.random_identities(rng, 40)
    pose = dict(syn.random_pose(rng), view='front', flip=False)
    means = {}
    for i, person in enumerate(people):
        person = dataclasses.replace(person, height=0.85, width=1.0, head=0.15, waist=0.52)
        ir, lab = syn.render_person(person, True, np.random.default_rng(i), pose=pose,
                                    return_masks=True)
        vis = syn.render_person(person, False, np.random.default_rng(i), pose=pose)
        means.setdefault(person.materials[1], []).append(
            (syn.part_mean(ir, lab, 'upper'), tuple(vis[lab == syn.PARTS['upper']].mean(0))))
    assert len(means) >= 4
    centres = []
    for mat, rows in means.items():
        ir_means = [r[0] for r in rows]
        assert max(ir_means) - min(ir_means) < 4, syn.MATERIALS[mat]
        if len(rows) > 1:   # while the visible colour of that part differs
            assert np.ptp([r[1] for r in rows], axis=0).max() > 30
        centres.append(np.mean(ir_means))
    assert np.diff(sorted(centres)).min() > 20   # materials are told apart in IR


def test_same_material_different_colour_same_infrared():
    person = syn.random_identities(np.random.default_rng(5), 1)[0]
    recoloured = dataclasses.replace(person, colours=tuple(
        (255 - r, g // 2, 255 - b) for r, g, b in person.colours))
    pose = syn.random_pose(np.random.default_rng(6))
    out = {}
    for key, p in (('a', person), ('b', recoloured)):
        out[key] = [syn.render_person(p, ir, np.random.default_rng(7), pose=pose, noise=False)
                    for ir in (False, True)]
    assert np.abs(out['a'][0].astype(int) - out['b'][0]).max() > 50   # visible differs
    assert np.array_equal(out['a'][1], out['b'][1])                   # infrared identical


# ---------------------------------------------------------------- atomic writes

def test_existing_target_is_refused_and_untouched(tmp_path):
    target = tmp_path / 'RegDB'
    target.mkdir()
    (target / 'keep.txt').write_text('mine')
    with pytest.raises(FileExistsError, match=re.escape(str(target))):
        syn.make_regdb(str(tmp_path), num_ids=2, images_per_id=1, num_trials=1)
    assert os.listdir(tmp_path) == ['RegDB'] and os.listdir(target) == ['keep.txt']
    assert (target / 'keep.txt').read_text() == 'mine'
    # overwrite replaces a synthetic tree only: a folder without the marker (the real
    # dataset) is never replaced
    with pytest.raises(FileExistsError, match='not a synthetic tree'):
        syn.make_regdb(str(tmp_path), num_ids=2, images_per_id=1, num_trials=1, overwrite=True)
    assert os.listdir(tmp_path) == ['RegDB'] and os.listdir(target) == ['keep.txt']
    (target / 'keep.txt').unlink()
    target.rmdir()
    syn.make_regdb(str(tmp_path), num_ids=2, images_per_id=1, num_trials=1)
    first = (target / 'Visible' / '1').iterdir().__next__().read_bytes()
    with pytest.raises(FileExistsError, match='--overwrite'):
        syn.make_regdb(str(tmp_path), num_ids=2, images_per_id=1, num_trials=1, seed=5)
    syn.make_regdb(str(tmp_path), num_ids=2, images_per_id=1, num_trials=1, seed=5,
                   overwrite=True)
    assert os.listdir(tmp_path) == ['RegDB']
    assert sorted(os.listdir(target)) == [SYNTHETIC_MARKER, 'Thermal', 'Visible', 'idx']
    assert (target / 'Visible' / '1').iterdir().__next__().read_bytes() != first


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def failing_save(img, path, **kw):
        calls.append(path)
        if len(calls) == 5:
            raise KeyboardInterrupt
    from vireid_plugin.data.datasets.sysu_mm01 import synthetic as sysu_writer
    monkeypatch.setattr(sysu_writer, 'save_image', failing_save)
    with pytest.raises(KeyboardInterrupt):
        syn.make_sysu_mm01(str(tmp_path), num_train=2, num_val=1, num_test=2, images_per_cam=2)
    assert os.listdir(tmp_path) == []


def test_ensure_synthetic(tmp_path, capsys):
    kw = dict(num_ids=2, images_per_id=1, num_trials=1)
    path = ensure_synthetic('regdb', str(tmp_path), **kw)
    assert path == os.path.join(str(tmp_path), 'RegDB') and os.path.isdir(path)
    first = capsys.readouterr().out
    assert 'synthetic' in first and path in first
    stamp = os.stat(os.path.join(path, 'idx', 'train_visible_1.txt')).st_mtime_ns
    assert ensure_synthetic('regdb', str(tmp_path), **kw) == path
    assert capsys.readouterr().out == ''
    assert os.stat(os.path.join(path, 'idx', 'train_visible_1.txt')).st_mtime_ns == stamp
    with pytest.raises(KeyError, match="'market1501'.*regdb"):
        ensure_synthetic('market1501', str(tmp_path))


def test_write_synthetic_at_the_demo_size(tmp_path, capsys):
    """What scripts/make_synthetic_data.py runs for each dataset."""
    path = write_synthetic('regdb', str(tmp_path), seed=3)
    assert path == str(tmp_path / 'RegDB')
    assert len(os.listdir(tmp_path / 'RegDB' / 'Visible')) == 64   # make_regdb's default
    assert 'wrote {}'.format(path) in capsys.readouterr().out
    with pytest.raises(FileExistsError, match='already exists'):
        write_synthetic('regdb', str(tmp_path))


def test_writers_are_registered_with_the_folders_their_loaders_read():
    from vireid_plugin.data.prepare import dataset_class
    for name in ('sysu_mm01', 'regdb', 'hitsz_vcm', 'llcm', 'buptcampus'):
        writer = SYNTHETIC_WRITERS.get(name)
        assert writer is getattr(syn, 'make_' + name)
        assert writer.folder == dataset_class(name).dataset_dir


# ---------------------------------------------------------------- LLCM, BUPTCampus

LLCM_LINE = re.compile(r'(vis|nir)/(\d{4})/(\d{4})_c(\d{2})_s(\d{6})_f(\d+)_(vis|nir)\.jpg (\d+)')


def test_llcm_layout(tmp_path):
    path = syn.make_llcm(str(tmp_path), num_train=5, num_test=4, images=(1, 2), size=(32, 16))
    assert sorted(os.listdir(path)) == [SYNTHETIC_MARKER, 'idx', 'nir', 'test_nir',
                                        'test_vis', 'vis']
    assert sorted(os.listdir(os.path.join(path, 'idx'))) == [
        'test_id.txt', 'test_nir.txt', 'test_vis.txt', 'train_nir.txt', 'train_vis.txt']
    text = _read(os.path.join(path, 'idx', 'test_id.txt'))
    assert re.fullmatch(r'\d{4}(,\d{4})*', text)          # one line, no trailing newline
    test_ids = [int(t) for t in text.split(',')]
    assert len(test_ids) == 4 and all(i % 3 == 0 for i in test_ids)
    maps, cams = {}, {'vis': set(), 'nir': set()}
    for part in ('train', 'test'):
        for mod in ('vis', 'nir'):
            rows = [LLCM_LINE.fullmatch(line).groups() for line in
                    _read(os.path.join(path, 'idx', '{}_{}.txt'.format(part, mod))).splitlines()]
            pids = [int(r[1]) for r in rows]
            # contiguous per-id blocks, labels 0.. by first appearance
            blocks = [p for i, p in enumerate(pids) if i == 0 or p != pids[i - 1]]
            assert len(blocks) == len(set(blocks))
            assert [int(r[7]) for r in rows] == [blocks.index(p) for p in pids]
            maps[part, mod] = blocks
            for folder, pid, name_pid, cam, _, _, suffix, _ in rows:
                assert folder == suffix == mod and pid == name_pid
                cams[mod].add(int(cam))
                name = '{}_c{}'.format(pid, cam)
                files = [f for f in os.listdir(os.path.join(path, mod, pid)) if f.startswith(name)]
                assert files
                if part == 'test':   # the release's camera-folder copies, byte-identical
                    for f in files:
                        copy = os.path.join(path, 'test_' + mod, 'cam{}'.format(int(cam)), pid, f)
                        with open(copy, 'rb') as a, open(os.path.join(path, mod, pid, f),
                                                         'rb') as b:
                            assert a.read() == b.read()
        assert maps[part, 'vis'] == maps[part, 'nir']      # one id -> label map per split
    assert sorted(maps['test', 'vis']) == sorted(test_ids) and maps['test', 'vis'] == test_ids
    assert not any(p % 3 == 0 for p in maps['train', 'vis'])
    assert 3 not in cams['nir'] and cams['nir'] <= set(range(1, 10))
    one = os.path.join(path, 'nir', '{:04d}'.format(test_ids[0]))
    _assert_grey3(_img(os.path.join(one, sorted(os.listdir(one))[0])))


def test_buptcampus_layout(tmp_path):
    path = syn.make_buptcampus(str(tmp_path), num_train=4, num_aux=2, num_test=6,
                               lengths=(3, 5), size=(32, 16))
    assert sorted(os.listdir(path)) == [SYNTHETIC_MARKER, 'DATA', 'data_paths.json',
                                        'gallery.txt', 'query.txt', 'train.txt',
                                        'train_auxiliary.txt']
    with open(os.path.join(path, 'data_paths.json')) as f:
        paths = json.load(f)
    rows = {}
    for name in ('train.txt', 'train_auxiliary.txt', 'query.txt', 'gallery.txt'):
        rows[name] = [line.split(' ') for line in _read(os.path.join(path, name)).splitlines()]
        for pid, mod, cam, tid in rows[name]:
            assert mod in (('RGB/IR',) if name.startswith('train') else ('RGB', 'IR'))
            assert cam in ('LS3', 'G25', 'CQ1', 'W4', 'TSG1', 'TSG2')
            rgb, ir = paths[pid]['RGB'][cam][tid], paths[pid]['IR'][cam][tid]
            # every tracklet is an RGB/IR pair: same length, same frame numbers
            assert [p.replace('RGB', 'IR') for p in rgb] == ir
            for rel in rgb + ir:
                assert re.fullmatch(r'{0}/(RGB|IR)/{1}/{0}_\1_{1}_{2}_\d+\.jpg'.format(
                    pid, cam, tid), rel), rel
                assert os.path.isfile(os.path.join(path, 'DATA', rel))
            for rel in rgb:
                assert os.path.isfile(os.path.join(path, 'DATA', rel.replace('/RGB/', '/FakeIR/')))
    ids = {n: {r[0] for r in rows[n]} for n in rows}
    test = ids['query.txt']
    assert len(ids['train.txt']) == 4 and len(ids['train_auxiliary.txt']) == 2 and len(test) == 6
    assert ids['gallery.txt'] == test
    assert not (ids['train.txt'] & ids['train_auxiliary.txt'] or ids['train.txt'] & test
                or ids['train_auxiliary.txt'] & test)
    for pid in ids['train_auxiliary.txt']:   # auxiliary ids: one camera
        assert len({r[2] for r in rows['train_auxiliary.txt'] if r[0] == pid}) == 1
    gallery = {tuple(r) for r in rows['gallery.txt']}
    assert {r[1] for r in rows['query.txt']} == {'RGB', 'IR'}
    same_camera = 0
    for pid, mod, cam, tid in rows['query.txt']:
        other = 'IR' if mod == 'RGB' else 'RGB'
        assert (pid, other, cam, tid) not in gallery           # its counterpart is not listed
        assert any(g[0] == pid and g[1] == other and g[2] != cam for g in gallery)
        same_camera += any(g[0] == pid and g[2] == cam for g in gallery)
    assert same_camera >= 1     # something for the same-camera removal to drop
    frame = os.path.join(path, 'DATA', paths[pid]['IR'][cam][tid][0])
    _assert_grey3(_img(frame))
