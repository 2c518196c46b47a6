"""A corrupt JPEG in a generated training set: data.on_bad_image stop (the default) names
it; skip replaces the item by another of its identity and modality, deterministically,
logs it, counts it per epoch, and stops when too many are bad; the uint8 cache too."""
import glob
import json
import os

import pytest
import torch

from vireid_plugin.config import ConfigError, load_config
from vireid_plugin.config.kwargs import imagedata_kwargs
from vireid_plugin.data import CrossModalImageDataManager
from vireid_plugin.data.bad_images import TooManyBadImages
from vireid_plugin.data.io import ImageReadError
from vireid_plugin.data.synthetic import make_sysu_mm01

from tests.helpers import DEMO, corrupt, free_port, gloo_rank

BATCH = 8


def manager(root, on_bad='skip', workers=0, cache=None, **kw):
    return CrossModalImageDataManager(
        root=root, sources='sysu_mm01', height=32, width=16,
        transforms=['random_flip', 'random_pad_crop', 'random_erase'],
        batch_size_train=BATCH, num_instances=2, workers=workers, seed=5, use_gpu=False,
        norm_mean=[0.5] * 3, norm_std=[0.5] * 3, data_cache=cache, on_bad_image=on_bad, **kw)


def first_epoch_with(dm, index):
    """(epoch, batch number) where the sampler first draws ``index``."""
    sampler = dm.train_loader.sampler
    for epoch in range(50):
        sampler.set_epoch(epoch)
        keys = list(iter(sampler))
        for pos, (i, _) in enumerate(keys):
            if i == index:
                return epoch, pos // BATCH
    raise AssertionError('item {} never drawn'.format(index))


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    """A synthetic SYSU-MM01 with one corrupt training JPEG; (root, its item index, item)."""
    root = str(tmp_path_factory.mktemp('bad_sysu'))
    make_sysu_mm01(root, num_train=6, num_val=2, num_test=4, images_per_cam=2, size=(32, 16))
    data = manager(root, on_bad='stop').train_set.train
    # an infrared item whose identity has at least 3 infrared items (2 replacements)
    groups = {}
    for i, it in enumerate(data):
        groups.setdefault((it[1], it[4]), []).append(i)
    index = next(i for (pid, m), idx in sorted(groups.items()) if m == 1 and len(idx) >= 3
                 for i in idx[:1])
    corrupt(data[index][0])
    return root, index, data[index], groups[(data[index][1], 1)]


def epoch_batches(dm, epoch, start_batch=0):
    sampler = dm.train_loader.sampler
    sampler.set_epoch(epoch)
    if start_batch:
        sampler.set_start(start_batch * BATCH)
    return list(dm.train_loader)


def test_stop_names_the_corrupt_file(tree):
    root, index, item, _ = tree
    dm = manager(root, on_bad='stop')
    epoch, _ = first_epoch_with(dm, index)
    with pytest.raises(ImageReadError, match='cannot read image .*{}'.format(
            os.path.basename(item[0]))):
        epoch_batches(dm, epoch)


def test_skip_replaces_it_by_the_same_identity_and_modality(tree):
    root, index, item, group = tree
    lines = []
    dm = manager(root, max_bad_fraction=0.5)     # 1 of a tiny set's 76 items is over 1%
    dm.train_loader.bad_log.log = lines.append
    epoch, at = first_epoch_with(dm, index)
    batches = epoch_batches(dm, epoch)
    assert len(batches) == len(dm.train_loader)              # the epoch went through
    skipped = [(b, i) for b in batches for i, s in enumerate(b['bad_items']) if s]
    assert len(skipped) >= 1
    for batch, i in skipped:
        (bad_index, bad_path, message), = json.loads(batch['bad_items'][i])
        assert (bad_index, bad_path) == (index, item[0]) and item[0] in message
        # same identity and modality; another file of that group, read for real
        assert int(batch['pid'][i]) == item[1] and int(batch['modality'][i]) == 1
        assert batch['impath'][i] != item[0]
        assert batch['impath'][i] in {dm.train_set.train[g][0] for g in group}
        assert torch.isfinite(batch['img'][i]).all()
    assert skipped[0][0] is batches[at]
    # every skip logged with its path; the epoch's count at its end
    skip_lines = [m for m in lines if m.startswith('=> Skipped')]
    assert len(skip_lines) == len(skipped) and all(item[0] in m for m in skip_lines)
    assert 'this epoch: {} item(s) replaced'.format(len(skipped)) in lines[-1]
    assert '1 unreadable item(s) found so far, of {}'.format(len(dm.train_set.train)) in \
        lines[-1]


def test_skip_is_deterministic_across_workers_and_resume(tree):
    root, index, _, _ = tree
    quiet = dict(max_bad_fraction=0.5)
    one = manager(root, **quiet)
    one.train_loader.bad_log.log = lambda m: None
    epoch, at = first_epoch_with(one, index)
    full = epoch_batches(one, epoch)
    two = manager(root, workers=2, **quiet)         # counted in workers, seen in the main
    seen = []
    two.train_loader.bad_log.log = seen.append
    in_workers = epoch_batches(two, epoch)
    resumed = manager(root, **quiet)                 # a run resumed at the bad batch
    resumed.train_loader.bad_log.log = lambda m: None
    tail = epoch_batches(resumed, epoch, start_batch=at)
    assert len(tail) == len(full) - at
    for a, b in list(zip(full, in_workers)) + list(zip(full[at:], tail)):
        assert a['impath'] == b['impath'] and a['bad_items'] == b['bad_items']
        assert torch.equal(a['img'], b['img'])
    assert any(m.startswith('=> Skipped') for m in seen)


def test_too_many_bad_items_stop_with_one_message(tree):
    root, index, item, _ = tree
    dm = manager(root, max_bad_fraction=0.0)
    dm.train_loader.bad_log.log = lambda m: None
    epoch, _ = first_epoch_with(dm, index)
    with pytest.raises(TooManyBadImages, match=r'1 of \d+ training items .* more than '
                                               r'data.max_bad_fraction = 0: .*' +
                                               os.path.basename(item[0])):
        epoch_batches(dm, epoch)


def test_an_identity_without_a_readable_replacement_is_named(tmp_path):
    root = str(tmp_path)
    make_sysu_mm01(root, num_train=4, num_val=2, num_test=4, images_per_cam=2, size=(32, 16))
    dm = manager(root, max_bad_fraction=1.0)
    data = dm.train_set.train
    pid = data[0][1]
    group = [i for i, it in enumerate(data) if it[1] == pid and it[4] == data[0][4]]
    for i in group:
        corrupt(data[i][0])
    with pytest.raises(ImageReadError, match='no {} item of identity {} can replace it'.format(
            'visible' if data[0][4] == 0 else 'infrared', pid)):
        dm.train_loader.dataset[(group[0], 123)]


def test_a_tracklet_with_a_bad_frame_is_replaced_by_one_of_its_identity(tmp_path):
    from vireid_plugin.data import CrossModalVideoDataManager
    from vireid_plugin.data.synthetic import make_hitsz_vcm
    root = str(tmp_path)
    make_hitsz_vcm(root, num_train=4, num_test=4, tracklets=(2, 2), lengths=(12, 13),
                   size=(32, 16))
    dm = CrossModalVideoDataManager(
        root=root, sources='hitsz_vcm', height=32, width=16, transforms=['random_flip'],
        batch_size_train=4, num_instances=1, workers=0, seed=1, use_gpu=False, seq_len=3,
        on_bad_image='skip', max_bad_fraction=0.5)
    data = dm.train_set.train
    index = 0
    for frame in data[index][0]:
        corrupt(frame)          # every frame: whichever the clip draws is unreadable
    item = dm.train_loader.dataset[(index, 42)]
    (bad_index, bad_path, _), = json.loads(item['bad_items'])
    assert bad_index == index and bad_path in data[index][0]
    assert (item['pid'], item['modality']) == (data[index][1], data[index][4])
    assert item['impath'] not in data[index][0] and item['img'].shape[:2] == (3, 3)
    again = dm.train_loader.dataset[(index, 42)]
    assert again['impath'] == item['impath'] and torch.equal(again['img'], item['img'])


def test_the_uint8_cache_records_bad_files_and_replaces_them_alike(tmp_path):
    root = str(tmp_path / 'data')
    make_sysu_mm01(root, num_train=6, num_val=2, num_test=4, images_per_cam=2, size=(32, 16))
    cache = {'enabled': True, 'gpu_augment': False, 'dir': str(tmp_path / 'c')}
    dm = manager(root, on_bad='stop', cache=cache)       # an intact tree: built
    dm.train_loader.dataset.dataset.cache.close()
    manifest = os.path.join(str(tmp_path / 'c'), 'sysu_mm01_32x16.json')
    good = open(manifest, 'rb').read()
    arrays = sorted(glob.glob(str(tmp_path / 'c' / '*.npy')))
    data = dm.train_set.train
    index = next(i for i, it in enumerate(data) if it[4] == 1 and
                 sum(o[1] == it[1] and o[4] == 1 for o in data) >= 3)
    corrupt(data[index][0])
    # stop: the rebuild fails naming the file; the cache already written is untouched
    with pytest.raises(ImageReadError, match=os.path.basename(data[index][0])):
        manager(root, on_bad='stop', cache=cache)
    assert open(manifest, 'rb').read() == good
    assert sorted(glob.glob(str(tmp_path / 'c' / '*.npy'))) == arrays
    # skip: a new version with the bad row recorded; the batches equal the plain skip path
    cached = manager(root, cache=cache, max_bad_fraction=0.5)
    with open(manifest) as f:
        assert [b[0] for b in json.load(f)['bad']] == [os.path.abspath(data[index][0])]
    plain = manager(root, max_bad_fraction=0.5)
    for dm_ in (cached, plain):
        dm_.train_loader.bad_log.log = lambda m: None
    epoch, at = first_epoch_with(plain, index)
    a, b = epoch_batches(cached, epoch)[at], epoch_batches(plain, epoch)[at]
    assert any(a['bad_items']) and a['bad_items'] == b['bad_items']
    assert a['impath'] == b['impath'] and torch.equal(a['img'], b['img'])
    # a cache holding bad rows, opened by a stop run: one message at once
    with pytest.raises(ImageReadError, match='records 1 unreadable training image'):
        manager(root, on_bad='stop', cache=cache)


def test_config_keys(tmp_path):
    cfg = load_config()
    assert (cfg.data.on_bad_image, cfg.data.max_bad_fraction) == ('stop', 0.01)
    kw = imagedata_kwargs(load_config(opts=['data.on_bad_image', 'skip',
                                            'data.max_bad_fraction', '0.05']))
    assert (kw['on_bad_image'], kw['max_bad_fraction']) == ('skip', 0.05)
    with pytest.raises(ConfigError, match="data.on_bad_image.*'stop', 'skip'"):
        load_config(opts=['data.on_bad_image', 'ignore'])
    with pytest.raises(ConfigError, match='data.max_bad_fraction must be in'):
        load_config(opts=['data.max_bad_fraction', '1.5'])


def test_a_training_run_skips_logs_and_counts(cli, tmp_path, one_thread):
    root = str(tmp_path / 'data')
    make_sysu_mm01(root, num_train=6, num_val=2, num_test=4, images_per_cam=2, size=(32, 16))
    save_dir = str(tmp_path / 'log')
    args = ['--config-file', DEMO, '--root', root,
            'data.save_dir', save_dir, 'data.synthetic', 'True', 'data.workers', '0',
            'data.height', '32', 'data.width', '16', 'vit.stride_size', '8',
            'train.batch_size', '8', 'sampler.num_instances', '2', 'train.max_epoch', '1',
            'train.print_freq', '1', 'test.num_trials', '1', 'test.eval_before_train', 'False',
            'data.on_bad_image', 'skip', 'data.max_bad_fraction', '0.5']
    cfg = load_config(args[1], args[4:], root=root)
    dm = CrossModalImageDataManager(**imagedata_kwargs(cfg))
    sampler = dm.train_loader.sampler
    sampler.set_epoch(0)
    first = next(iter(sampler))[0]                      # drawn in the run's first batch
    bad_path = dm.train_set.train[first][0]
    corrupt(bad_path)
    assert cli.main(args) == 0
    log = open(glob.glob(os.path.join(save_dir, 'train.log-*'))[0]).read()
    skips = [line for line in log.splitlines() if 'Skipped an unreadable training image' in line]
    assert skips and all(bad_path in line for line in skips)
    assert 'this epoch: {} item(s) replaced'.format(len(skips)) in log
    assert '1 unreadable item(s) found so far' in log
    assert log.index('this epoch') < log.index('Final test')


def _rank_log(rank, port, out):
    gloo_rank(rank, port)
    from vireid_plugin import distributed
    from vireid_plugin.data.bad_images import BadImageLog
    distributed.init_distributed(use_gpu=False)
    try:
        lines = []
        log = BadImageLog(100, 0.5, log=lines.append)
        record = [[10 + rank, 'f{}.jpg'.format(rank), 'cannot read image f{}.jpg'.format(rank)]]
        log.note({'bad_items': [json.dumps(record), ''], 'impath': ['r.jpg', 'x.jpg']})
        result = log.end_epoch()
        with open(os.path.join(out, 'rank{}.json'.format(rank)), 'w') as f:
            json.dump({'result': list(result), 'lines': lines}, f)
    finally:
        distributed.shutdown()


def test_the_epoch_count_is_summed_over_the_ranks(tmp_path):
    import torch.multiprocessing as mp
    mp.start_processes(_rank_log, args=(free_port(), str(tmp_path)), nprocs=2, join=True,
                       start_method='spawn')
    for rank in range(2):
        with open(str(tmp_path / 'rank{}.json'.format(rank))) as f:
            got = json.load(f)
        other = 1 - rank
        assert got['result'] == [2, 2]      # both ranks' replacements, both files
        assert any('f{}.jpg'.format(rank) in m and m.startswith('=> Skipped')
                   for m in got['lines'])
        assert any(m.startswith('=> Rank {} skipped'.format(other)) and
                   'f{}.jpg'.format(other) in m for m in got['lines'])
        assert 'this epoch: 2 item(s) replaced' in got['lines'][-1]
