"""The MIP authors' sampler (RandomIdentityModalitySampler): batch counts and identity
frequencies against counts derived by hand from their rules (wurqjackey/MIP
datasets/sampler.py, described in the sampler's module doc), the batch layout, seeds,
exact resumption and the rank split; the data manager and config wiring; their input
pipeline options."""
from collections import Counter

import pytest
import torch
import torchvision.transforms as T
from torch.utils.data import DataLoader

from vireid_plugin.config import ConfigError, load_config
from vireid_plugin.data.identity_modality_sampler import RandomIdentityModalitySampler
from vireid_plugin.data.sampler import CrossModalIdentitySampler
from vireid_plugin.registry import SAMPLERS

from tests.helpers import ToyItems

VIS, IR = 0, 1


def make_items(layout):
    """Items for {pid: (n_infrared, n_visible)}; item = (path, pid, camid, dsetid, modality)."""
    items = []
    for pid, (n_ir, n_vis) in layout.items():
        for m, n in ((IR, n_ir), (VIS, n_vis)):
            items += [('p{}_m{}_{}.jpg'.format(pid, m, j), pid, m, 0, m) for j in range(n)]
    return items


def batches(sampler, size):
    flat = list(iter(sampler))
    return [flat[i:i + size] for i in range(0, len(flat), size)]


def check_layout(batch, items, p, half):
    """P ids' h infrared items, then the same ids' h visible items, in the same id order;
    returns the batch's ids in order."""
    ir, vis = batch[:p * half], batch[p * half:]
    assert len(vis) == p * half
    assert {items[i][4] for i in ir} == {IR} and {items[i][4] for i in vis} == {VIS}
    ids_ir = [items[ir[j * half]][1] for j in range(p)]
    ids_vis = [items[vis[j * half]][1] for j in range(p)]
    assert ids_ir == ids_vis and len(set(ids_ir)) == p
    for j, pid in enumerate(ids_ir):
        chunk = ir[j * half:(j + 1) * half] + vis[j * half:(j + 1) * half]
        assert {items[i][1] for i in chunk} == {pid}
    return ids_ir


def appearances(sampler, items, size):
    return Counter(pid for b in batches(sampler, size)
                   for pid in set(items[i][1] for i in b))


# ---------------------------------------------------------------- counts by hand

def test_three_infrared_eleven_visible():
    """Identity 0 has 3 infrared + 11 visible images, identity 1 8 + 8; K = 8 (4 + 4),
    batch 16, so P = 2: both ids are in every batch while both have chunks."""
    layout = {0: (3, 11), 1: (8, 8)}
    items = make_items(layout)
    own = {(pid, m): {i for i, it in enumerate(items) if it[1] == pid and it[4] == m}
           for pid in layout for m in (IR, VIS)}
    # 'sysu' rule: id 0's infrared list is filled 3 -> 4 (the minimum h = 4), then to the
    # visible length 11; 11 // 4 = 2 chunks (3 images of each list dropped). Id 1: 8 // 4 = 2.
    # Every round takes both ids: 2 batches, each id twice.
    s = RandomIdentityModalitySampler(items, 16, 8, seed=0, padding='sysu')
    got = batches(s, 16)
    assert len(got) == 2 and len(s) == 32
    for b in got:
        check_layout(b, items, 2, 4)
    assert appearances(s, items, 16) == {0: 2, 1: 2}
    flat = [i for b in got for i in b]
    id0_ir = [i for i in flat if i in own[0, IR]]
    id0_vis = [i for i in flat if i in own[0, VIS]]
    assert len(id0_ir) == 8 and set(id0_ir) <= own[0, IR]     # 3 images, repeated
    assert len(id0_vis) == 8 and len(set(id0_vis)) == 8       # 8 of 11, none twice
    assert len(set(i for i in flat if i in own[1, IR])) == 8  # id 1: all, once
    # 'regdb' rule: both lists get 4 - 11 % 4 = 1 more (their code counts the visible
    # list for both): infrared 4, visible 12; infrared filled to 12: 3 chunks. Id 1:
    # 4 - 8 % 4 = 4 more each: 12 + 12, 3 chunks. 3 batches; all of id 0's 11 visible
    # images appear (12 slots = the 11 + 1 repeat).
    s = RandomIdentityModalitySampler(items, 16, 8, seed=0, padding='regdb')
    got = batches(s, 16)
    assert len(got) == 3 and appearances(s, items, 16) == {0: 3, 1: 3}
    flat = [i for b in got for i in b]
    assert {i for i in flat if i in own[0, VIS]} == own[0, VIS]
    assert {i for i in flat if i in own[1, IR]} == own[1, IR]


def test_regdb_ten_plus_ten():
    # 8 ids x (10 + 10), P = 8. 'regdb': 4 - 10 % 4 = 2 more each -> 12 + 12 -> 3 chunks:
    # exactly 3 batches, every id in each, every image used. 'sysu': 10 // 4 = 2 chunks.
    items = make_items({pid: (10, 10) for pid in range(8)})
    s = RandomIdentityModalitySampler(items, 64, 8, seed=1, padding='regdb')
    got = batches(s, 64)
    assert len(got) == 3 and s.num_batches == 3
    assert appearances(s, items, 64) == {pid: 3 for pid in range(8)}
    assert set(i for b in got for i in b) == set(range(len(items)))
    assert len(batches(RandomIdentityModalitySampler(items, 64, 8, seed=1, padding='sysu'),
                       64)) == 2


def test_regdb_sized_list_gives_their_epoch():
    # 206 ids x (10 + 10): 3 chunks each ('regdb'), C = 618. At most floor(618 / 8) = 77
    # batches; the epoch ends when fewer than 8 ids have chunks left, so at most
    # 7 x 3 = 21 chunks stay unused: at least ceil((618 - 21) / 8) = 75 batches (the
    # issue's run: 76-77). The plugin's sampler: ceil(2060 / (8 x 4)) = 65.
    items = make_items({pid: (10, 10) for pid in range(206)})
    counts = set()
    for seed in range(3):
        s = RandomIdentityModalitySampler(items, 64, 8, seed=seed, padding='regdb')
        got = batches(s, 64)
        assert len(got) == s.num_batches and 75 <= len(got) <= 77
        counts.add(len(got))
        for b in got[:5]:
            check_layout(b, items, 8, 4)
        seen = appearances(s, items, 64)
        short = [pid for pid in range(206) if seen[pid] < 3]
        # every id 3 times but the last < 8 with chunks left; those hold 618 - 8 x batches
        assert max(seen.values()) == 3 and len(short) < 8
        assert sum(3 - seen[pid] for pid in short) == 618 - 8 * len(got)
    assert counts <= {75, 76, 77}
    assert CrossModalIdentitySampler(items, 64, 4, seed=0).num_batches == 65


# a SYSU-like skew: (infrared, visible) images per id and how many ids have it; the
# layout of the synthetic SYSU-MM01 training set (train + val ids, 3 images per camera)
SKEW = [((6, 9), 28), ((3, 9), 28), ((6, 12), 24), ((3, 12), 23), ((6, 6), 20),
        ((3, 6), 14), ((3, 3), 4), ((6, 3), 3)]


def test_sysu_like_skew_frequency_follows_image_count():
    layout, pid = {}, 0
    for counts, n in SKEW:
        for _ in range(n):
            layout[pid] = counts
            pid += 1
    items = make_items(layout)
    # chunks c = floor(max(n_ir, n_vis, 4) / 4): (6, 9), (3, 9) -> 2; (6, 12), (3, 12) -> 3;
    # (6, 6), (3, 6), (3, 3), (6, 3) -> 1. C = 56 + 56 + 72 + 69 + 20 + 14 + 4 + 3 = 294:
    # at most floor(294 / 8) = 36 batches, at least ceil((294 - 7 x 3) / 8) = 35 (the issue's
    # synthetic SYSU-MM01 figure: 36). The plugin's: visible 1293 images, ceil(1293 / 32) = 41.
    chunks = {ids: 3 if max(ids) == 12 else 2 if max(ids) == 9 else 1 for ids, _ in SKEW}
    total = sum(chunks[ids] * n for ids, n in SKEW)
    assert total == 294
    s = RandomIdentityModalitySampler(items, 64, 8, seed=3)
    got = batches(s, 64)
    assert 35 <= len(got) <= 36 and len(s) == 64 * len(got)
    seen = appearances(s, items, 64)
    expected = {p: chunks[layout[p]] for p in layout}
    short = [p for p in layout if seen[p] < expected[p]]
    assert all(seen[p] <= expected[p] for p in layout) and len(short) < 8
    assert sum(expected[p] - seen[p] for p in short) == total - 8 * len(got)
    # identities with 12 visible images come 3 times as often as those with 6 or fewer
    many = [seen[p] for p in layout if max(layout[p]) == 12]
    few = [seen[p] for p in layout if max(layout[p]) <= 6]
    assert sum(many) / len(many) > 2.5 * sum(few) / len(few)
    assert CrossModalIdentitySampler(items, 64, 4, seed=0).num_batches == 41


# ---------------------------------------------------------------- seeds, resume, ranks

ITEMS = make_items({pid: (3 + pid % 5, 4 + 2 * (pid % 4)) for pid in range(12)})


def test_order_depends_on_seed_and_epoch_and_len_is_known_first():
    a = RandomIdentityModalitySampler(ITEMS, 16, 4, seed=5)
    b = RandomIdentityModalitySampler(ITEMS, 16, 4, seed=5)
    first = list(a)
    assert first == list(b) and len(a) == len(first)
    for epoch in range(1, 4):
        a.set_epoch(epoch)
        n = len(a)                  # before the pass
        order = list(a)
        assert len(order) == n and order != first
    assert list(RandomIdentityModalitySampler(ITEMS, 16, 4, seed=6)) != first
    # without a seed: torch's global generator; len and the pass agree
    s = RandomIdentityModalitySampler(ITEMS, 16, 4)
    torch.manual_seed(0)
    n = len(s)
    one = list(s)
    assert len(one) == n and list(s) != one
    torch.manual_seed(0)
    assert list(s) == one


def test_set_start_resumes_the_epoch_with_its_item_seeds():
    s = RandomIdentityModalitySampler(ITEMS, 16, 4, seed=2, item_seeds=True)
    s.set_epoch(3)
    full = list(s)
    assert all(isinstance(x, tuple) and len(x) == 2 for x in full)
    s.set_epoch(3)
    s.set_start(2 * 16)
    assert list(s) == full[2 * 16:]
    assert list(s) == full          # the start applies to one pass only


@pytest.mark.parametrize('ranks', [2, 4])
def test_ranks_take_their_ids_infrared_then_visible(ranks):
    items = make_items({pid: (4 + pid % 3, 5 + pid % 4) for pid in range(20)})
    one = RandomIdentityModalitySampler(items, 64, 8, seed=4, item_seeds=True)
    parts = [RandomIdentityModalitySampler(items, 64, 8, seed=4, item_seeds=True,
                                           num_replicas=ranks, rank=r) for r in range(ranks)]
    n = 64 // ranks
    half = n // 2          # this rank's ids x 4 items of one modality
    for epoch in (0, 1):
        for s in [one] + parts:
            s.set_epoch(epoch)
        full = batches(one, 64)
        local = [batches(s, n) for s in parts]
        assert all(len(s) == len(full) * n for s in parts)
        for j, b in enumerate(full):
            ids = [set() for _ in range(ranks)]
            for r in range(ranks):
                # rank r: the infrared chunks of the r-th block of ids, then their visible
                lo = r * half
                assert local[r][j] == b[lo:lo + half] + b[32 + lo:32 + lo + half]
                mine = [items[i][4] for i, _ in local[r][j]]
                assert mine == [IR] * half + [VIS] * half
                ids[r] = {items[i][1] for i, _ in local[r][j]}
            assert sum(len(x) for x in ids) == len(set().union(*ids)) == 8
    parts[-1].set_start(2 * n)
    assert list(parts[-1]) == [x for b in local[-1][2:] for x in b]


def test_bad_arguments_are_one_message():
    with pytest.raises(ValueError, match='even int'):
        RandomIdentityModalitySampler(ITEMS, 16, 3)
    with pytest.raises(ValueError, match=r'multiple of num_instances = 8.*batch_size=20'):
        RandomIdentityModalitySampler(ITEMS, 20, 8)
    with pytest.raises(ValueError, match="padding must be one of"):
        RandomIdentityModalitySampler(ITEMS, 16, 4, padding='regdbb')
    with pytest.raises(ValueError, match='P to be a multiple of 3'):
        RandomIdentityModalitySampler(ITEMS, 64, 8, seed=0, num_replicas=3, rank=0)
    with pytest.raises(ValueError, match=r'P=13 .* only 12'):
        RandomIdentityModalitySampler(ITEMS, 13 * 4, 4)
    # ids with one modality only are left out (their code fails on them)
    s = RandomIdentityModalitySampler(ITEMS + [('v', 99, 0, 0, VIS)], 16, 4, seed=0)
    assert s.num_excluded_ids == 1 and 99 not in {ITEMS[i][1] for i in s}


def test_registered_and_counted_right_by_a_dataloader():
    assert SAMPLERS.get('RandomIdentityModalitySampler') is RandomIdentityModalitySampler
    assert 'CrossModalIdentitySampler' in SAMPLERS
    s = RandomIdentityModalitySampler(ITEMS, 16, 4, seed=0)
    for epoch in (0, 1):
        s.set_epoch(epoch)
        loader = DataLoader(ToyItems(ITEMS), batch_size=16, sampler=s, drop_last=True)
        expected = len(loader)
        got = list(loader)
        assert len(got) == expected == s.num_batches
        for b in got:
            assert b['modality'].tolist() == [IR] * 8 + [VIS] * 8


# ---------------------------------------------------------------- data manager, config

@pytest.fixture(scope='module')
def roots(tmp_path_factory):
    from vireid_plugin.data.synthetic import make_regdb, make_sysu_mm01
    root = str(tmp_path_factory.mktemp('mip_sampler'))
    make_sysu_mm01(root, num_train=6, num_val=2, num_test=4, images_per_cam=2, size=(32, 16))
    make_regdb(root, num_ids=16, images_per_id=3, num_trials=1, size=(32, 16))
    return root


def manager(root, source, **kw):
    from vireid_plugin.data import CrossModalImageDataManager
    return CrossModalImageDataManager(
        root=root, sources=source, targets=source, height=32, width=16,
        transforms=['random_flip', 'random_erase', 'random_grayscale'],
        batch_size_train=8, num_instances=4, workers=0, seed=5, use_gpu=False,
        norm_mean=[0.5] * 3, norm_std=[0.5] * 3,
        **dict(dict(train_sampler='RandomIdentityModalitySampler'), **kw))


def test_data_manager_uses_the_sampler_and_their_padding_by_dataset(roots):
    sysu = manager(roots, 'sysu_mm01')
    regdb = manager(roots, 'regdb')
    forced = manager(roots, 'regdb', modality_padding='sysu')
    for dm, padding in ((sysu, 'sysu'), (regdb, 'regdb'), (forced, 'sysu')):
        sampler = dm.train_loader.sampler
        assert isinstance(sampler, RandomIdentityModalitySampler) and sampler.padding == padding
        assert len(dm.train_loader) == sampler.num_batches
    # RegDB: 8 training ids x (3 + 3) images, K = 4 (h = 2), P = 2. 'regdb' rule:
    # 2 - 3 % 2 = 1 more each -> 4 + 4 -> 2 chunks; 16 chunks / P -> at most 8 batches, at
    # least ceil((16 - 1 x 2) / 2) = 7. The 'sysu' rule: 3 // 2 = 1 chunk -> 4 batches
    assert 7 <= regdb.train_loader.sampler.num_batches <= 8
    assert forced.train_loader.sampler.num_batches == 4
    batch = next(iter(regdb.train_loader))
    assert batch['modality'].tolist() == [IR] * 4 + [VIS] * 4
    # under torchrun each rank's loader takes its share (P = 2 ids: one per rank)
    ranked = manager(roots, 'regdb', num_replicas=2, rank=1)
    sampler = ranked.train_loader.sampler
    assert (sampler.num_replicas, sampler.rank, ranked.train_loader.batch_size) == (2, 1, 4)
    assert next(iter(ranked.train_loader))['modality'].tolist() == [IR] * 2 + [VIS] * 2
    with pytest.raises(ConfigError, match='RandomIdentityModalitySampler'):
        manager(roots, 'regdb', num_replicas=2, rank=1, train_sampler='RandomSampler')


def test_their_pipeline_options_change_only_what_they_name(roots):
    from timm.data.random_erasing import RandomErasing
    plain = manager(roots, 'sysu_mm01').transform_tr.transforms
    theirs = manager(roots, 'sysu_mm01', resize_interpolation='bicubic', erase_fill='random',
                     grayscale_after_erase=True).transform_tr.transforms
    kinds = [type(t).__name__ for t in theirs]
    assert kinds == ['Resize', 'RandomHorizontalFlip', 'ToTensor', 'Normalize', 'RandomErasing',
                     'RandomGrayscale']
    assert theirs[0].interpolation == T.InterpolationMode.BICUBIC
    assert plain[0].interpolation == T.InterpolationMode.BILINEAR
    assert isinstance(theirs[4], RandomErasing) and theirs[4].per_pixel
    assert [type(t).__name__ for t in plain].index('RandomGrayscale') < \
        [type(t).__name__ for t in plain].index('ToTensor')
    # random-pixel erasing and grayscale on the normalised tensor, as theirs
    torch.manual_seed(0)
    erase = theirs[4]
    erase.probability = 1.0
    x = torch.full((3, 32, 16), 0.25)
    out = erase(x.clone())
    changed = (out != 0.25).any(0)
    assert changed.any() and out[:, changed].std() > 0.5     # N(0, 1) pixels, not a constant
    to_gray = theirs[5]
    to_gray.p = 1.0
    gray = to_gray(torch.stack([torch.full((4, 4), v) for v in (1., -1., 0.)]))
    expected = 0.2989 * 1 + 0.587 * -1 + 0.114 * 0         # torchvision's tensor weights
    torch.testing.assert_close(gray, torch.full((3, 4, 4), expected), rtol=1e-3, atol=1e-3)


def test_released_configs_are_the_authors_run_and_keys_are_checked():
    import os
    configs = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           'configs')
    for name, lr, sources in (('mip_sysu_released', 0.01, ['sysu_mm01']),
                              ('mip_regdb_released', 0.008, ['regdb']),
                              ('mip_sysu_released_iael', 0.01, ['sysu_mm01'])):
        cfg = load_config(os.path.join(configs, name + '.yaml'))
        assert cfg.sampler.train_sampler == 'RandomIdentityModalitySampler'
        assert cfg.sampler.num_instances == 8 and cfg.train.batch_size == 64
        assert (cfg.data.resize_interpolation, cfg.data.erase_fill,
                cfg.data.grayscale_after_erase) == ('bicubic', 'random', True)
        assert cfg.mip.released_compat and cfg.train.amp == 'fp16'
        assert cfg.train.lr == lr and list(cfg.data.sources) == sources
    assert cfg.loss.iael.form == 'released' and 'iael' in cfg.loss.terms
    # the plugin's own recipe keeps its pipeline and sampler
    own = load_config(os.path.join(configs, 'mip_sysu.yaml'))
    assert own.sampler.train_sampler == 'CrossModalIdentitySampler'
    assert (own.data.resize_interpolation, own.data.erase_fill,
            own.data.grayscale_after_erase) == ('bilinear', 'mean', False)
    with pytest.raises(ConfigError, match='num_instances 3 must be even'):
        load_config('', ['sampler.train_sampler', 'RandomIdentityModalitySampler',
                         'sampler.num_instances', '3'])
    with pytest.raises(ConfigError, match="data.erase_fill random changes random_erase"):
        load_config('', ['data.erase_fill', 'random'])
    with pytest.raises(ConfigError, match="'data.resize_interpolation' must be one of"):
        load_config('', ['data.resize_interpolation', 'cubic'])
    with pytest.raises(ConfigError, match='data_cache.enabled False'):
        load_config('', ['data.resize_interpolation', 'bicubic', 'data_cache.enabled', 'True'])
