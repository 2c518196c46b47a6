"""Tiny fake dataset trees on disk for the dataset tests.

Every image is the same 4 px wide x 8 px high JPEG (encoded once and copied),
so a tree of a few hundred files costs milliseconds. Add a ``write_<dataset>_tree``
function per dataset; the helpers above them are generic.
"""
import functools
import io
import json
import os

from PIL import Image

IMAGE_SIZE = (4, 8)  # PIL (width, height)

#: the keyword arguments torchreid's ImageDataManager passes to an image dataset
IMAGE_DATASET_KWARGS = dict(transform=None, k_tfm=1, combineall=False, cuhk03_labeled=False,
                            cuhk03_classic_split=False, market1501_500k=False, verbose=False)


def build_image_dataset(root, name, split_id=0, **kw):
    """The registered image dataset ``name`` on ``root``, built as torchreid's
    ImageDataManager builds it (mode 'train' unless ``kw`` says otherwise)."""
    from vireid_plugin.registry import IMAGE_DATASETS
    kwargs = dict(IMAGE_DATASET_KWARGS, mode='train')
    kwargs.update(kw)
    return IMAGE_DATASETS.get(name)(root=str(root), split_id=split_id, **kwargs)


@functools.lru_cache(maxsize=None)
def jpeg_bytes(size=IMAGE_SIZE, color=(90, 120, 150)):
    buf = io.BytesIO()
    Image.new('RGB', size, color).save(buf, format='JPEG')
    return buf.getvalue()


def write_images(folder, names):
    """Create ``folder`` with one tiny JPEG per file name; return the paths."""
    os.makedirs(folder, exist_ok=True)
    data = jpeg_bytes()
    paths = []
    for name in names:
        path = os.path.join(folder, name)
        with open(path, 'wb') as f:
            f.write(data)
        paths.append(path)
    return paths


def assert_missing_root_explained(build, parts):
    """``build()`` on a root that does not exist refuses with a DatasetNotFoundError whose
    message holds every one of ``parts`` (the layout, where to get it, the demo config)."""
    import pytest

    from vireid_plugin.data.datasets.common import DatasetNotFoundError
    with pytest.raises(DatasetNotFoundError) as err:
        build()
    msg = str(err.value)
    for part in parts:
        assert part in msg, (part, msg)


def assert_missing_file_named(path, build, match):
    """Delete ``path`` (a pathlib.Path); ``build()`` then refuses with a DatasetNotFoundError
    whose message names the file and matches ``match`` (where to get the dataset)."""
    import pytest

    from vireid_plugin.data.datasets.common import DatasetNotFoundError
    path.unlink()
    with pytest.raises(DatasetNotFoundError, match=match) as err:
        build()
    assert str(path) in str(err.value)


def replace_line(path, lineno, text):
    """Overwrite the 1-based line ``lineno`` of a text file (a pathlib.Path)."""
    lines = path.read_text().splitlines()
    lines[lineno - 1] = text
    path.write_text('\n'.join(lines) + '\n')


def numbered(n, width=4, ext='.jpg'):
    """File names 0001.jpg .. n (the zero-padded naming SYSU-MM01 uses)."""
    return ['{:0{}d}{}'.format(i, width, ext) for i in range(1, n + 1)]


def write_sysu_tree(root, images, splits, nested=True):
    """A SYSU-MM01 tree; returns the dataset folder.

    images: {(pid, cam): count or list of file names}; cam1..cam6 are always
        created, an (id, cam) absent here has no folder.
    splits: {'train': ids, 'val': ids, 'test': ids} written as one
        comma-separated line to exp/<split>_id.txt.
    nested: put the tree in ``root/SYSU-MM01`` (torchreid convention) or in ``root``.
    """
    folder = os.path.join(str(root), 'SYSU-MM01') if nested else str(root)
    for cam in range(1, 7):
        os.makedirs(os.path.join(folder, 'cam{}'.format(cam)), exist_ok=True)
    for (pid, cam), names in images.items():
        if isinstance(names, int):
            names = numbered(names)
        write_images(os.path.join(folder, 'cam{}'.format(cam), '{:04d}'.format(pid)), names)
    os.makedirs(os.path.join(folder, 'exp'), exist_ok=True)
    for split, ids in splits.items():
        with open(os.path.join(folder, 'exp', split + '_id.txt'), 'w') as f:
            f.write(','.join(str(i) for i in ids) + '\n')
    return folder


@functools.lru_cache(maxsize=None)
def image_bytes(fmt, mode, color, size=IMAGE_SIZE):
    """One solid-colour image encoded as ``fmt`` (e.g. a 1-channel 'L' BMP for RegDB thermal)."""
    buf = io.BytesIO()
    Image.new(mode, size, color).save(buf, format=fmt)
    return buf.getvalue()


def _write_bytes(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)


def write_regdb_tree(root, trials, nested=True, per_id=2):
    """A RegDB tree; returns the dataset folder.

    trials: {trial: {'train': {folder id: label}, 'test': {folder id: label}}}
        written to idx/{train,test}_{visible,thermal}_<trial>.txt; every folder id
        named anywhere gets ``per_id`` visible (RGB) and thermal (1-channel) BMPs.
    """
    folder = os.path.join(str(root), 'RegDB') if nested else str(root)
    ids = sorted({i for t in trials.values() for part in t.values() for i in part})
    kinds = (('Visible', 'visible', 'v', 'RGB', (200, 40, 40)),
             ('Thermal', 'thermal', 't', 'L', 128))
    for sub, _, tag, mode, color in kinds:
        for i in ids:
            for k in range(per_id):
                _write_bytes(os.path.join(folder, sub, str(i), '{}_{}_{}.bmp'.format(tag, k, i)),
                             image_bytes('BMP', mode, color))
    os.makedirs(os.path.join(folder, 'idx'), exist_ok=True)
    for trial, parts in trials.items():
        for part, labels in parts.items():
            for sub, name, tag, _, _ in kinds:
                lines = ['{}/{}/{}_{}_{}.bmp {}'.format(sub, i, tag, k, i, label)
                         for i, label in labels.items() for k in range(per_id)]
                path = os.path.join(folder, 'idx', '{}_{}_{}.txt'.format(part, name, trial))
                with open(path, 'w') as f:
                    f.write('\n'.join(lines) + '\n')
    return folder


def vcm_frame_color(j):
    """Colour of the j-th frame (0-based) of every HITSZ-VCM tracklet the writer makes."""
    return (10 * j, 0, 0)


def write_vcm_tree(root, train, test, query_idx, layout='split', nested=True):
    """A HITSZ-VCM tree; returns the dataset folder.

    train, test: track rows in file order, each (m, pid, cam, n_frames), m 1 = IR,
        2 = RGB; frame j of a tracklet is a solid ``vcm_frame_color(j)`` JPEG.
    query_idx: lines of query_IDX.txt, each a list of 1-based test rows.
    layout: 'split' (Train/, Test/), 'flat' (<pid4>/ under the folder) or
        'mixed' (Train/ for train, flat for test).
    """
    folder = os.path.join(str(root), 'HITSZ-VCM') if nested else str(root)
    os.makedirs(os.path.join(folder, 'info'), exist_ok=True)
    for split, rows in (('train', train), ('test', test)):
        sub = 'Train' if split == 'train' else 'Test'
        base = os.path.join(folder, sub) if layout == 'split' or (
            layout == 'mixed' and split == 'train') else folder
        names, tracks, counter = [], [], {}
        for t, (m, pid, cam, n) in enumerate(rows, 1):
            start = len(names) + 1
            for j in range(n):
                key = (pid, m, cam)   # frame numbers run on within a camera folder
                counter[key] = counter.get(key, 0) + 1
                names.append('{:04d}M{}D{}T{}F{}.jpg'.format(pid, m, cam, t, counter[key]))
                _write_bytes(os.path.join(base, '{:04d}'.format(pid), 'ir' if m == 1 else 'rgb',
                                          'D{}'.format(cam), '{}.jpg'.format(counter[key])),
                             jpeg_bytes(color=vcm_frame_color(j)))
            tracks.append('{} {} {} {:04d} {}'.format(m, start, len(names), pid, cam))
        for fname, lines in (('{}_name.txt', names), ('track_{}_info.txt', tracks)):
            with open(os.path.join(folder, 'info', fname.format(split)), 'w') as f:
                f.write('\n'.join(lines) + '\n')
    with open(os.path.join(folder, 'info', 'query_IDX.txt'), 'w') as f:
        f.write('\n'.join(' '.join(str(r) for r in line) for line in query_idx) + '\n')
    return folder


LLCM_FOLDER = {'vis': 'vis', 'nir': 'nir'}


def llcm_name(mod, pid, cam, k):
    """File name of the k-th (0-based) LLCM image of (pid, camera) in one modality."""
    return '{:04d}_c{:02d}_s{:06d}_f{}_{}.jpg'.format(pid, cam, 120000 + k, 100 + k, mod)


def write_llcm_tree(root, train, test, test_ids, nested=True, copies=True):
    """An LLCM tree; returns the dataset folder.

    train, test: {(mod, pid, cam): n_images}, mod 'vis' or 'nir', written to
        idx/{train,test}_{vis,nir}.txt in dict order with labels numbered by first
        appearance (as the real files), images under vis|nir/<pid4>/.
    test_ids: written to idx/test_id.txt as one line, no trailing newline.
    copies: also write the test_vis|test_nir/cam<K>/<pid4>/ copies.
    """
    folder = os.path.join(str(root), 'LLCM') if nested else str(root)
    for part, groups in (('train', train), ('test', test)):
        for mod in ('vis', 'nir'):
            labels, lines = {}, []
            for (m, pid, cam), n in groups.items():
                if m != mod:
                    continue
                label = labels.setdefault(pid, len(labels))
                for k in range(n):
                    rel = '{}/{:04d}/{}'.format(mod, pid, llcm_name(mod, pid, cam, k))
                    _write_bytes(os.path.join(folder, rel), jpeg_bytes())
                    if copies and part == 'test':
                        _write_bytes(os.path.join(folder, 'test_' + mod, 'cam{}'.format(cam),
                                                  '{:04d}'.format(pid), os.path.basename(rel)),
                                     jpeg_bytes())
                    lines.append('{} {}'.format(rel, label))
            os.makedirs(os.path.join(folder, 'idx'), exist_ok=True)
            with open(os.path.join(folder, 'idx', '{}_{}.txt'.format(part, mod)), 'w') as f:
                f.write('\n'.join(lines) + '\n')
    with open(os.path.join(folder, 'idx', 'test_id.txt'), 'w') as f:
        f.write(','.join('{:04d}'.format(i) for i in test_ids))
    return folder


def write_bupt_tree(root, tracklets, splits, nested=True):
    """A BUPTCampus tree; returns the dataset folder.

    tracklets: {(pid, 'RGB'|'IR', camera, tid): n_frames}: frame j is a solid
        ``vcm_frame_color(j)`` JPEG DATA/<pid>/<mod>/<cam>/<pid>_<mod>_<cam>_<tid>_<f>.jpg,
        listed in data_paths.json; every RGB frame also gets its FakeIR/ twin.
    splits: {file name: [(pid, modality field, camera, tid), ...]} written one a line.
    """
    folder = os.path.join(str(root), 'BUPTCampus') if nested else str(root)
    paths = {}
    for (pid, mod, cam, tid), n in tracklets.items():
        rels = []
        for j in range(n):
            name = '{}_{}_{}_{}_{}.jpg'.format(pid, mod, cam, tid, 500 + j)
            rels.append('{}/{}/{}/{}'.format(pid, mod, cam, name))
            for sub in (mod, 'FakeIR') if mod == 'RGB' else (mod,):
                _write_bytes(os.path.join(folder, 'DATA', str(pid), sub, cam, name),
                             jpeg_bytes(color=vcm_frame_color(j)))
        paths.setdefault(str(pid), {}).setdefault(mod, {}).setdefault(cam, {})[str(tid)] = rels
    with open(os.path.join(folder, 'data_paths.json'), 'w') as f:
        json.dump(paths, f)
    for name, rows in splits.items():
        with open(os.path.join(folder, name), 'w') as f:
            f.write(''.join('{} {} {} {}\n'.format(*row) for row in rows))
    return folder
