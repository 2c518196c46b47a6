import math
from collections import Counter

import pytest
import torch
from torch.utils.data import DataLoader

from vireid_plugin.data.sampler import CrossModalIdentitySampler

from tests.helpers import ToyItems


def _items():
    """pids 0..5 with both modalities (varied counts), pid 6 visible only, pid 7 IR only."""
    counts = {0: (6, 3), 1: (4, 4), 2: (2, 5), 3: (8, 1), 4: (5, 5), 5: (3, 6),
              6: (4, 0), 7: (0, 3)}
    items = []
    for pid, (nv, ni) in counts.items():
        for m, n in ((0, nv), (1, ni)):
            for j in range(n):
                items.append(('p{}_m{}_{}.jpg'.format(pid, m, j), pid, m, 0, m))
    return items


ITEMS = _items()


def _chunks(indices, size):
    return [indices[i:i + size] for i in range(0, len(indices), size)]


def test_batch_structure_and_excluded_ids():
    k, bs = 2, 12  # P = 3
    s = CrossModalIdentitySampler(ITEMS, bs, k, seed=0)
    assert s.num_excluded_ids == 2
    idx = list(s)
    assert len(idx) == len(s) and len(idx) % bs == 0
    for batch in _chunks(idx, bs):
        pids = [ITEMS[i][1] for i in batch]
        assert len(set(pids)) == 3
        assert not {6, 7} & set(pids)
        for pos in range(0, bs, 2 * k):  # documented order: K visible then K infrared
            block = batch[pos:pos + 2 * k]
            assert len({ITEMS[i][1] for i in block}) == 1
            assert [ITEMS[i][4] for i in block] == [0] * k + [1] * k


def test_without_replacement_when_enough_items():
    k = 3
    s = CrossModalIdentitySampler(ITEMS, 2 * k * 2, k, seed=1)
    idx = list(s)
    for batch in _chunks(idx, 12):
        for pos in range(0, 12, k):
            block = batch[pos:pos + k]
            pid, m = ITEMS[block[0]][1], ITEMS[block[0]][4]
            n_avail = sum(1 for it in ITEMS if it[1] == pid and it[4] == m)
            if n_avail >= k:
                assert len(set(block)) == k
            else:  # pid 3 has one infrared item: repeated
                assert len(set(block)) == n_avail


def test_epoch_length():
    k, bs = 2, 8  # P = 2
    s = CrossModalIdentitySampler(ITEMS, bs, k)
    n_vis = 6 + 4 + 2 + 8 + 5 + 3  # usable ids only
    n_ir = 3 + 4 + 5 + 1 + 5 + 6
    assert s.num_batches == math.ceil(max(n_vis, n_ir) / (2 * k)) == 7
    assert len(s) == 7 * bs
    # tiny dataset still gives one batch
    few = [('a', 0, 0, 0, 0), ('b', 0, 1, 0, 1), ('c', 1, 0, 0, 0), ('d', 1, 1, 0, 1)]
    assert len(CrossModalIdentitySampler(few, 16, 4)) == 16


def test_determinism_and_epochs():
    a = CrossModalIdentitySampler(ITEMS, 12, 2, seed=5)
    b = CrossModalIdentitySampler(ITEMS, 12, 2, seed=5)
    a.set_epoch(0)
    b.set_epoch(0)
    assert list(a) == list(b)
    first = list(a)   # told epoch 0: it stays epoch 0
    assert list(a) == first
    a.set_epoch(1)
    assert list(a) != first
    b.set_epoch(1)
    assert list(a) == list(b)
    assert list(CrossModalIdentitySampler(ITEMS, 12, 2, seed=6)) != first


def test_no_seed_follows_torch_manual_seed():
    s = CrossModalIdentitySampler(ITEMS, 12, 2)
    torch.manual_seed(0)
    first, second = list(s), list(s)
    assert first != second  # next epoch differs
    torch.manual_seed(0)
    assert list(s) == first


def test_ids_appear_evenly():
    s = CrossModalIdentitySampler(ITEMS, 12, 2, seed=0)  # P = 3 of 6 ids
    idx = list(s)
    counts = Counter(ITEMS[batch[0 + j]][1] for batch in _chunks(idx, 12) for j in (0, 4, 8))
    # 8 batches * 3 ids, shuffled-queue draws: 4 each, give or take one refill
    assert set(counts) == set(range(6)) and max(counts.values()) - min(counts.values()) <= 2


@pytest.mark.parametrize('bs,k', [(10, 2), (0, 2), (6, 4), (-8, 2)])
def test_bad_batch_size_message(bs, k):
    with pytest.raises(ValueError) as exc:
        CrossModalIdentitySampler(ITEMS, bs, k)
    assert str(bs) in str(exc.value) and str(2 * k) in str(exc.value)


def test_too_many_ids_message():
    with pytest.raises(ValueError) as exc:
        CrossModalIdentitySampler(ITEMS, 2 * 2 * 7, 2)  # P = 7 > 6 usable ids
    msg = str(exc.value)
    assert 'P=7' in msg and 'only 6' in msg and '2 excluded' in msg


def test_video_tracklet_items():
    items = [(('f1.jpg', 'f2.jpg'), pid, m, 0, m) for pid in range(3) for m in (0, 1, 1)]
    s = CrossModalIdentitySampler(items, 4, 1, seed=0)
    batch = list(s)[:4]
    assert [items[i][4] for i in batch] == [0, 1, 0, 1]


def test_plugs_into_dataloader():
    bs, k = 12, 2
    s = CrossModalIdentitySampler(ITEMS, bs, k, seed=0)
    loader = DataLoader(ToyItems(ITEMS), batch_size=bs, sampler=s, drop_last=True)
    batches = list(loader)
    assert len(batches) == s.num_batches == len(loader)
    for b in batches:
        assert b['pid'].shape == (bs,)
        pairs = Counter(zip(b['pid'].tolist(), b['modality'].tolist()))
        assert len({p for p, _ in pairs}) == 3 and set(pairs.values()) == {k}
