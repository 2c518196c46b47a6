"""The uint8 training-image cache (data/cache.py) and its data-manager / engine wiring."""
import glob
import json
import os

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

from vireid_plugin.config import ConfigError, load_config
from vireid_plugin.data import CrossModalImageDataManager, CrossModalVideoDataManager
from vireid_plugin.data import cache as cache_mod
from vireid_plugin.data.cache import cache_folder, open_image_cache
from vireid_plugin.data.synthetic import make_hitsz_vcm

from tests.helpers import DEMO, resized, synthetic_sysu, write_pngs

SIZE = (24, 12)


def write_images(folder, n=5):
    return write_pngs(folder, n, seed=0, grow=True)


def expected(path):
    return resized(path, SIZE)


@pytest.fixture
def counted_reads(monkeypatch):
    """How many files the cache decodes (workers=0: in this process)."""
    calls = []
    real = cache_mod.read_image

    def read(path):
        calls.append(path)
        return real(path)
    monkeypatch.setattr(cache_mod, 'read_image', read)
    return calls


def test_built_once_beside_the_data_then_read(tmp_path, capsys, counted_reads):
    paths = write_images(str(tmp_path / 'data' / 'Toy' / 'cam1'))
    root = str(tmp_path / 'data')
    cache = open_image_cache(paths, SIZE, 'toy', root=root)
    assert 'building 5 images at 24x12' in capsys.readouterr().out
    assert len(counted_reads) == 5
    # beside the dataset folders (data.root), not in a folder the dataset's loader lists
    folder = str(tmp_path / 'data' / '.vireid_cache')
    assert sorted(os.listdir(str(tmp_path / 'data' / 'Toy'))) == ['cam1']
    assert os.path.isfile(os.path.join(folder, 'toy_24x12.json'))
    for i, p in enumerate(paths):
        row = cache.read(i)
        assert row.dtype == torch.uint8 and row.shape == (3,) + SIZE
        assert torch.equal(row, expected(p))
    again = open_image_cache(paths, SIZE, 'toy', root=root)
    assert 'up to date' in capsys.readouterr().out
    assert len(counted_reads) == 5                       # nothing decoded the second time
    assert torch.equal(again.read([0, 4]), torch.stack([expected(paths[0]),
                                                        expected(paths[4])]))
    assert len(glob.glob(os.path.join(folder, '*.npy'))) == 1


def test_a_changed_image_is_re_read_and_the_rest_reused(tmp_path, capsys, counted_reads):
    paths = write_images(str(tmp_path / 'd'))
    old = open_image_cache(paths, SIZE, 'toy', folder=str(tmp_path / 'c'))
    before = old.read(list(range(5))).clone()
    Image.fromarray(np.full((41, 20, 3), 200, np.uint8)).save(paths[1])   # new content
    st = os.stat(paths[1])
    os.utime(paths[1], ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))   # coarse clocks
    counted_reads.clear()
    new = open_image_cache(paths, SIZE, 'toy', folder=str(tmp_path / 'c'))
    out = capsys.readouterr().out
    assert '1 changed' in out and 're-reading 1 of 5 images' in out
    assert counted_reads == [os.path.abspath(paths[1])]
    assert bool((new.read(1) == 200).all()) and not torch.equal(new.read(1), before[1])
    for i in (0, 2, 3, 4):
        assert torch.equal(new.read(i), before[i])
    # the manifest names the new version; the superseded one stays while `old` reads it
    with open(str(tmp_path / 'c' / 'toy_24x12.json')) as f:
        current = json.load(f)['array']
    arrays = sorted(os.path.basename(a) for a in glob.glob(str(tmp_path / 'c' / '*.npy')))
    assert current in arrays and len(arrays) == 2
    assert torch.equal(old.read(1), before[1])          # its original bytes
    old.close()                                         # its last reader ends: removed
    arrays = [os.path.basename(a) for a in glob.glob(str(tmp_path / 'c' / '*.npy'))]
    assert arrays == [current]


def test_added_and_removed_files_and_a_damaged_manifest(tmp_path, capsys, counted_reads):
    paths = write_images(str(tmp_path / 'd'), n=6)
    folder = str(tmp_path / 'c')
    open_image_cache(paths[:5], SIZE, 'toy', folder=folder)
    counted_reads.clear()
    cache = open_image_cache(paths[1:], SIZE, 'toy', folder=folder)
    assert '1 added, 1 removed' in capsys.readouterr().out
    assert counted_reads == [os.path.abspath(paths[5])]
    assert len(cache) == 5 and torch.equal(cache.read(4), expected(paths[5]))
    with open(os.path.join(folder, 'toy_24x12.json'), 'w') as f:
        f.write('{not json')
    cache = open_image_cache(paths[1:], SIZE, 'toy', folder=folder)
    assert 'building 5 images' in capsys.readouterr().out
    assert torch.equal(cache.read(0), expected(paths[1]))
    # another size is another cache
    open_image_cache(paths[1:], (12, 6), 'toy', folder=folder)
    assert os.path.isfile(os.path.join(folder, 'toy_12x6.json'))


def test_missing_image_is_named(tmp_path):
    paths = write_images(str(tmp_path / 'd'), n=2)
    with pytest.raises(OSError, match='image file not found: .*nope.png'):
        open_image_cache(paths + [str(tmp_path / 'd' / 'nope.png')], SIZE, 'toy',
                         root=str(tmp_path))


def test_read_only_dataset_folder_falls_back_to_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'xdg'))
    read_only = str(tmp_path / 'ro')
    folder = cache_folder(read_only, writable=lambda f: not f.startswith(read_only))
    assert folder.startswith(str(tmp_path / 'xdg' / 'vireid_plugin'))
    # found again by the same key: the same root gives the same folder, another root not
    assert folder == cache_folder(read_only, writable=lambda f: not f.startswith(read_only))
    assert folder != cache_folder(str(tmp_path / 'ro2'),
                                  writable=lambda f: not f.startswith(read_only))
    with pytest.raises(ConfigError, match='data_cache.dir .* not writable'):
        cache_folder(read_only, folder=str(tmp_path / 'x'), writable=lambda f: False)


def test_files_listed_outside_the_dataset_folder_never_move_the_cache(tmp_path):
    """A list file may point anywhere (``../``, absolute paths): the cache stays in the
    root's folder, never at the files' common parent (``/.vireid_cache`` at worst)."""
    inside = write_images(str(tmp_path / 'data' / 'Toy'), n=2)
    elsewhere = write_images(str(tmp_path / 'elsewhere' / 'x'), n=2)
    cache = open_image_cache(inside + elsewhere, SIZE, 'toy', root=str(tmp_path / 'data'))
    assert os.path.dirname(cache.array_path) == str(tmp_path / 'data' / '.vireid_cache')
    assert not os.path.exists(str(tmp_path / '.vireid_cache'))
    cache.close()


def test_a_manifest_naming_a_foreign_array_is_not_used(tmp_path, capsys):
    paths = write_images(str(tmp_path / 'd'), n=3)
    folder = str(tmp_path / 'c')
    open_image_cache(paths, SIZE, 'toy', folder=folder).close()
    foreign = str(tmp_path / 'foreign.npy')
    np.save(foreign, np.full((3, 3) + SIZE, 7, np.uint8))   # the right shape, other pixels
    manifest = os.path.join(folder, 'toy_24x12.json')
    with open(manifest) as f:
        record = json.load(f)
    for name in (foreign, '../foreign.npy', 'toy_24x12-0123456789ab.npy/../../foreign.npy'):
        record['array'] = name
        with open(manifest, 'w') as f:
            json.dump(record, f)
        capsys.readouterr()
        cache = open_image_cache(paths, SIZE, 'toy', folder=folder)
        out = capsys.readouterr().out
        lines = [line for line in out.splitlines() if 'not a version file' in line]
        assert len(lines) == 1 and repr(name) in lines[0], out
        assert 'building 3 images' in out                # rebuilt from the images
        assert os.path.dirname(cache.array_path) == folder
        for i, p in enumerate(paths):
            assert torch.equal(cache.read(i), expected(p))
        cache.close()


def test_a_cache_of_the_earlier_place_is_carried_over_once(tmp_path, capsys, counted_reads):
    """Earlier versions kept the cache in the training files' common folder (inside the
    dataset folder): its rows are copied to the new place once, nothing decoded again."""
    paths = write_images(str(tmp_path / 'data' / 'Toy'), n=4)
    old_folder = str(tmp_path / 'data' / 'Toy' / '.vireid_cache')
    open_image_cache(paths, SIZE, 'toy', folder=old_folder).close()   # as written before
    counted_reads.clear()
    capsys.readouterr()
    cache = open_image_cache(paths, SIZE, 'toy', root=str(tmp_path / 'data'))
    out = capsys.readouterr().out
    assert 'moving {}'.format(os.path.join(old_folder, 'toy_24x12.json')) in out
    assert counted_reads == []                            # rows copied, not decoded
    assert os.path.dirname(cache.array_path) == str(tmp_path / 'data' / '.vireid_cache')
    for i, p in enumerate(paths):
        assert torch.equal(cache.read(i), expected(p))
    cache.close()
    again = open_image_cache(paths, SIZE, 'toy', root=str(tmp_path / 'data'))
    assert 'up to date' in capsys.readouterr().out       # once
    again.close()


# ---------------------------------------------------------------- data managers, engine
@pytest.fixture(scope='module')
def sysu_root(tmp_path_factory):
    return synthetic_sysu(tmp_path_factory, 12, 2, 8, name='sysu_cache')


def manager(root, cache=None, transforms=('random_flip', 'random_pad_crop', 'random_erase',
                                          'random_grayscale')):
    return CrossModalImageDataManager(
        root=root, sources='sysu_mm01', height=32, width=16, transforms=list(transforms),
        batch_size_train=8, num_instances=2, workers=0, seed=5, use_gpu=False,
        norm_mean=[0.5] * 3, norm_std=[0.5] * 3, data_cache=cache)


def test_cache_with_the_pil_pipeline_gives_the_plain_batches(sysu_root, tmp_path):
    plain = next(iter(manager(sysu_root).train_loader))
    dm = manager(sysu_root, {'enabled': True, 'gpu_augment': False, 'dir': str(tmp_path)})
    cached = next(iter(dm.train_loader))
    assert dm.batch_transform is None
    # the same items, the same seeded augmentation: bit-identical images
    assert cached['impath'] == plain['impath']
    assert torch.equal(cached['img'], plain['img'])


def test_cache_with_batch_augment_gives_uint8_and_a_device_transform(sysu_root, tmp_path):
    plain_dm = manager(sysu_root)
    plain = next(iter(plain_dm.train_loader))
    dm = manager(sysu_root, {'enabled': True, 'gpu_augment': True, 'dir': str(tmp_path)})
    batch = next(iter(dm.train_loader))
    assert batch['img'].dtype == torch.uint8 and batch['img'].shape == (8, 3, 32, 16)
    assert batch['impath'] == plain['impath'] and torch.equal(batch['pid'], plain['pid'])
    for key in ('camid', 'modality', 'dsetid'):
        assert torch.equal(batch[key], plain[key])
    out = dm.batch_transform(batch['img'], batch['aug_seed'])
    assert out.dtype == torch.float32 and out.shape == plain['img'].shape
    assert float(out.min()) >= -1 and float(out.max()) <= 1
    # train_set is still the dataset (prompt stage, validation and camera count read it)
    assert type(dm.train_set).__name__ == 'SYSUMM01'
    assert len(dm.train_set.train) == len(plain_dm.train_set.train)
    # the same seed and epoch give the same batch (per-item seeds), another epoch another
    again = next(iter(dm.train_loader))
    assert torch.equal(again['aug_seed'], batch['aug_seed'])
    dm.train_loader.sampler.set_epoch(1)
    assert not torch.equal(next(iter(dm.train_loader))['aug_seed'], batch['aug_seed'])


def test_random_patch_is_refused_with_the_batch_augment(sysu_root, tmp_path):
    with pytest.raises(ConfigError, match='random_patch.*gpu_augment False'):
        manager(sysu_root, {'enabled': True, 'dir': str(tmp_path)},
                transforms=['random_flip', 'random_patch'])


def test_video_clips_come_from_the_cache_with_one_draw_per_clip(tmp_path):
    root = str(tmp_path / 'vcm')
    make_hitsz_vcm(root, num_train=4, num_test=4, tracklets=(2, 2), lengths=(12, 13),
                   size=(32, 16))

    def video_manager(cache):
        return CrossModalVideoDataManager(
            root=root, sources='hitsz_vcm', height=32, width=16,
            transforms=['random_flip', 'random_pad_crop', 'random_erase'], batch_size_train=4,
            num_instances=1, workers=0, seed=1, use_gpu=False, seq_len=3, data_cache=cache)

    dm = video_manager({'enabled': True, 'dir': str(tmp_path / 'c')})
    batch = next(iter(dm.train_loader))
    plain = next(iter(video_manager(None).train_loader))
    # the clip's frames are chosen as the plain path chooses them (same item seeds)
    assert batch['impath'] == plain['impath']
    pil = next(iter(video_manager({'enabled': True, 'gpu_augment': False,
                                   'dir': str(tmp_path / 'c')}).train_loader))
    assert torch.equal(pil['img'], plain['img'])
    assert batch['img'].dtype == torch.uint8 and batch['img'].shape == (4, 3, 3, 32, 16)
    # the first frame of each clip is the cached (= resized) impath
    for clip, path in zip(batch['img'], batch['impath']):
        img = T.Resize((32, 16))(Image.open(path).convert('RGB'))
        assert torch.equal(clip[0], torch.from_numpy(np.array(img)).permute(2, 0, 1))
    out = dm.batch_transform(batch['img'], batch['aug_seed'])
    assert out.shape == (4, 3, 3, 32, 16) and out.dtype == torch.float32


def test_config_section_and_names(tmp_path):
    cfg = load_config(DEMO,
                      ['data_cache.enabled', 'True', 'data_cache.dir', str(tmp_path)])
    assert cfg.data_cache.enabled and cfg.data_cache.gpu_augment
    with pytest.raises(ConfigError, match="unknown config key 'data_cache.enable'.*enabled"):
        load_config(DEMO, ['data_cache.enable', 'True'])


def test_tiny_training_run_with_the_cache_and_batch_augment(cli, sysu_root, tmp_path,
                                                             one_thread):
    save_dir = str(tmp_path / 'log')
    rc = cli.main(['--config-file', DEMO,
                   '--root', sysu_root, 'data.save_dir', save_dir, 'data.synthetic', 'True',
                   'data.workers', '0', 'data.height', '32', 'data.width', '16',
                   'vit.stride_size', '8', 'train.batch_size', '16', 'train.max_epoch', '1',
                   'train.print_freq', '1', 'test.num_trials', '1',
                   'test.eval_before_train', 'False', 'data_cache.enabled', 'True',
                   'data.transforms', '[random_flip, random_pad_crop, random_erase]'])
    assert rc == 0
    log = open(glob.glob(os.path.join(save_dir, 'train.log-*'))[0]).read()
    assert 'Image cache' in log and 'epoch: [1/1]' in log
    assert os.path.isfile(os.path.join(sysu_root, '.vireid_cache', 'sysu_mm01_32x16.json'))
    assert not os.path.exists(os.path.join(sysu_root, 'SYSU-MM01', '.vireid_cache'))
    with open(os.path.join(save_dir, 'results.json')) as f:
        results = json.load(f)
    assert results and 0 <= results[-1]['rows'][0]['mAP'] <= 100


def test_loader_comparison_counts_what_it_times(sysu_root, tmp_path):
    from vireid_plugin.benchmark.loader import compare_train_loaders
    rows = compare_train_loaders(sysu_root, height=32, width=16, batch_size=8,
                                 num_instances=2, workers=0, batches=3, warmup=1,
                                 cache_dir=str(tmp_path))
    assert [r['path'] for r in rows] == ['pil', 'uint8 cache, loader only',
                                         'uint8 cache + batch augment',
                                         'uint8 cache + PIL augment in the workers']
    for r in rows:
        assert r['images'] == 3 * 8 and r['batches'] == 3
        assert r['images_per_s'] == pytest.approx(r['images'] / r['seconds'])
