"""Frame choice of the HITSZ-VCM authors: c = ceil(n/S), indices padded with the
last frame to c*S, S chunks of c; test takes each chunk's first, train one
random index inside each chunk. Expected lists below are worked out by hand."""
import numpy as np
import pytest

from vireid_plugin.data.frames import sample_frame_indices


@pytest.mark.parametrize('n,s,expected', [
    (2, 4, [0, 1, 1, 1]),             # n < S: c=1, padded with the last frame
    (4, 4, [0, 1, 2, 3]),             # n = S: every frame once
    (12, 4, [0, 3, 6, 9]),            # divisible: c=3
    (10, 4, [0, 3, 6, 9]),            # not divisible: c=3, last chunk 9,9,9
    (13, 4, [0, 4, 8, 12]),           # c=4, last chunk 12,12,12,12
    (7, 6, [0, 2, 4, 6, 6, 6]),       # c=2: chunks 01 23 45 66 66 66
    (24, 6, [0, 4, 8, 12, 16, 20]),   # the VCM trajectory length in the paper
    (1, 3, [0, 0, 0]),
])
def test_test_clip_is_first_index_of_each_chunk(n, s, expected):
    idx = sample_frame_indices(n, s)
    assert idx.tolist() == expected
    assert sample_frame_indices(n, s, train=False).tolist() == expected   # deterministic


@pytest.mark.parametrize('n,s,chunks', [
    (10, 4, [{0, 1, 2}, {3, 4, 5}, {6, 7, 8}, {9}]),
    (7, 3, [{0, 1, 2}, {3, 4, 5}, {6}]),
    (3, 5, [{0}, {1}, {2}, {2}, {2}]),
])
def test_train_draws_one_index_inside_each_chunk(n, s, chunks):
    rng = np.random.RandomState(0)
    seen = [set() for _ in range(s)]
    for _ in range(200):
        idx = sample_frame_indices(n, s, train=True, rng=rng)
        assert len(idx) == s
        for k, i in enumerate(idx.tolist()):
            seen[k].add(i)
    # every draw stays in its chunk, and 200 draws reach each member of it
    assert seen == chunks


def test_train_without_rng_uses_numpy_global_state():
    np.random.seed(3)
    a = sample_frame_indices(20, 4, train=True)
    np.random.seed(3)
    assert sample_frame_indices(20, 4, train=True).tolist() == a.tolist()
    assert all(5 * k <= i < 5 * k + 5 for k, i in enumerate(a.tolist()))


@pytest.mark.parametrize('n,s', [(0, 4), (5, 0)])
def test_rejects_empty(n, s):
    with pytest.raises(ValueError):
        sample_frame_indices(n, s)


# ------------------------------------------------ BUPTCampus authors' 'uniform' rule

@pytest.mark.parametrize('n,s,expected', [
    (10, 10, list(range(10))),                      # every frame
    (25, 10, [0, 2, 5, 7, 10, 12, 15, 17, 20, 22]),  # k * 2.5 rounded down
    (7, 4, [0, 1, 3, 5]),                            # 0, 1.75, 3.5, 5.25
    (3, 10, [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]),         # k * 0.3: n < S repeats frames
])
def test_uniform_test_clip_is_linspace_rounded_down(n, s, expected):
    assert sample_frame_indices(n, s, rule='uniform').tolist() == expected


def test_uniform_train_draws_sorted_distinct_frames_unless_too_few():
    rng = np.random.RandomState(0)
    seen = set()
    for _ in range(100):
        idx = sample_frame_indices(12, 4, train=True, rng=rng, rule='uniform').tolist()
        assert idx == sorted(idx) and len(set(idx)) == 4 and 0 <= idx[0] and idx[-1] < 12
        seen.update(idx)
    assert seen == set(range(12))   # not tied to chunks: any frame can be drawn anywhere
    short = sample_frame_indices(3, 5, train=True, rng=rng, rule='uniform').tolist()
    assert short == sorted(short) and set(short) <= {0, 1, 2}


def test_unknown_rule():
    with pytest.raises(ValueError, match='uniform'):
        sample_frame_indices(5, 2, rule='dense')
