"""Tests for vireid_plugin.metrics (ranking metrics and distances)."""
import importlib

import numpy as np
import pytest
import torch

from vireid_plugin.metrics import (compute_distance, evaluate_rank, evaluate_rank_reference,
                                   matched_queries)

ASC = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]  # a row ranking the gallery in order


def check(result, cmc, mAP, mINP):
    got_cmc, got_map, got_minp = result
    assert isinstance(got_cmc, np.ndarray) and got_cmc.dtype == np.float64
    assert isinstance(got_map, float) and isinstance(got_minp, float)
    np.testing.assert_allclose(got_cmc, cmc, rtol=0, atol=1e-12)
    assert got_map == pytest.approx(mAP, abs=1e-12)
    assert got_minp == pytest.approx(mINP, abs=1e-12)


# ---------------------------------------------------------------- hand-built
# Each hand-derived case holds for the vectorised metric and for the per-query
# reference loop alike.

@pytest.fixture(params=[evaluate_rank, evaluate_rank_reference], ids=['fast', 'reference'])
def metric(request):
    return request.param


SYSU_G_PIDS = [2, 2, 1, 3, 1, 4]
SYSU_G_CAMS = [1, 0, 0, 0, 0, 1]  # 0-based: camid 1 is camera 2


def test_sysu_removal_dedup_and_full_list_map(metric):
    # Both rows rank the gallery in order: pids [2, 2, 1, 3, 1, 4].
    # q0: pid 1, camid 2 (camera 3) -> drop every camid-1 item (idx 0 pid 2,
    #     idx 5 pid 4, neither is pid 1). Left: [2, 1, 3, 1]; hits at ranks
    #     2 and 4. De-dup [2, 1, 3] -> first match at 2: cmc [0,1,1,1,1,1].
    #     AP = (1/2 + 2/4)/2 = 1/2, INP = 2/4 = 1/2.
    #     (Without the removal AP would be 11/30, as for q1.)
    # q1: pid 1, camid 5 (camera 6) -> nothing removed. Hits at ranks 3, 5.
    #     De-dup [2, 1, 3, 4] -> first match at 2, so R2 = 1 although the
    #     plain list has no hit in the top 2; R1 = 0 either way.
    #     AP = (1/3 + 2/5)/2 = 11/30, INP = 2/5.
    # mean: cmc [0,1,1,1,1,1], mAP = (15/30 + 11/30)/2 = 13/30,
    #       mINP = (1/2 + 2/5)/2 = 9/20.
    res = metric(np.array([ASC, ASC]), [1, 1], SYSU_G_PIDS, [2, 5],
                        SYSU_G_CAMS, 'sysu', max_rank=6)
    check(res, [0, 1, 1, 1, 1, 1], 13 / 30, 9 / 20)


def test_sysu_invalid_query_is_skipped(metric):
    # Add q2: pid 4, camid 2. Its only pid-4 item (idx 5) is on camid 1 and
    # removed, so it has no true match and must be skipped, not counted as a
    # miss: the result equals the two-query case above.
    res = metric(np.array([ASC, ASC, ASC]), [1, 1, 4], SYSU_G_PIDS,
                        [2, 5, 2], SYSU_G_CAMS, 'sysu', max_rank=6)
    check(res, [0, 1, 1, 1, 1, 1], 13 / 30, 9 / 20)


def test_sysu_short_dedup_ranking_keeps_final_value(metric):
    # q pid 1, camid 2: left after removal [2, 1, 3, 1] -> de-dup [2, 1, 3]
    # (3 entries) but max_rank = 10; positions past the end stay at 1.
    # AP = 1/2, INP = 1/2 as for q0 above.
    res = metric(np.array([ASC]), [1], SYSU_G_PIDS, [2], SYSU_G_CAMS,
                        'sysu', max_rank=10)
    check(res, [0] + [1] * 9, 0.5, 0.5)


REGDB_DIST = [[0.5, 0.2, 0.2, 0.9, 0.1, 0.7],
              [0.3, 0.3, 0.3, 0.3, 0.3, 0.3]]
REGDB_G_PIDS = [3, 1, 2, 1, 3, 2]


def test_regdb_no_removal_and_stable_ties(metric):
    # All camids equal: 'vcm' would remove every true match; 'regdb' removes
    # nothing.
    # q0 (pid 1): stable order idx 4, 1, 2, 0, 5, 3 (idx 1 before idx 2 at the
    #     0.2 tie) -> pids [3, 1, 2, 3, 2, 1]; hits at ranks 2, 6.
    #     cmc [0,1,1,1], AP = (1/2 + 2/6)/2 = 5/12, INP = 2/6 = 1/3.
    #     (Swapping the tie would put the first hit at rank 3.)
    # q1 (pid 2): all tied -> gallery order [3, 1, 2, 1, 3, 2]; hits at 3, 6.
    #     cmc [0,0,1,1], AP = (1/3 + 2/6)/2 = 1/3, INP = 2/6 = 1/3.
    # mean: cmc [0, .5, 1, 1], mAP = (5/12 + 4/12)/2 = 3/8, mINP = 1/3.
    res = metric(np.array(REGDB_DIST), [1, 2], REGDB_G_PIDS, [0, 0],
                        [0] * 6, 'regdb', max_rank=4)
    check(res, [0, 0.5, 1, 1], 3 / 8, 1 / 3)
    with pytest.raises(ValueError, match='no valid query'):
        metric(np.array(REGDB_DIST), [1, 2], REGDB_G_PIDS, [0, 0],
                      [0] * 6, 'vcm', max_rank=4)


def test_vcm_same_pid_same_cam_removal_and_invalid_query(metric):
    g_pids = [1, 2, 1, 3, 2, 1]
    g_cams = [0, 1, 1, 0, 0, 0]
    desc = ASC[::-1]
    # q0 (pid 1, cam 0), row ASC: drop idx 0 and 5 (pid 1, cam 0); idx 2 is
    #     pid 1 on cam 1 and stays. Left pids [2, 1, 3, 2] -> hit at rank 2.
    #     cmc [0,1,1,1], AP = 1/2, INP = 1/2. (Without removal R1 would hit.)
    # q1 (pid 2, cam 0), row descending -> order idx 5,4,3,2,1,0; drop idx 4
    #     (pid 2, cam 0). Left pids [1, 3, 1, 2, 1] -> hit at rank 4.
    #     cmc [0,0,0,1], AP = 1/4, INP = 1/4.
    # q2 (pid 3, cam 0): its only match idx 3 is on cam 0 -> removed; skipped.
    # mean over q0, q1: cmc [0, .5, .5, 1], mAP = 3/8, mINP = 3/8.
    res = metric(np.array([ASC, desc, ASC]), [1, 2, 3], g_pids,
                        [0, 0, 0], g_cams, 'vcm', max_rank=4)
    check(res, [0, 0.5, 0.5, 1], 3 / 8, 3 / 8)


LLCM_G_PIDS = [2, 1, 2, 1, 3]
LLCM_G_CAMS = [0, 0, 1, 2, 0]


def test_llcm_same_camera_removal_with_deduplicated_cmc(metric):
    # q0 (pid 1, cam 0), row ASC[:5] ranks the gallery in order: drop idx 1
    #     (pid 1, cam 0). Left pids [2, 2, 1, 3]: the hit is at rank 3, so the
    #     plain CMC is [0,0,1,1]; de-duplicated [2, 1, 3] puts it at rank 2:
    #     [0,1,1,1]. AP = 1/3, INP = 1/3.
    # q1 (pid 2, cam 1), descending row -> order idx 4,3,2,1,0, pids
    #     [3, 1, 2, 1, 2]; drop idx 2 (pid 2, cam 1). Left [3, 1, 1, 2]: hit at
    #     rank 4 (plain [0,0,0,1]); de-duplicated [3, 1, 2]: rank 3, [0,0,1,1].
    #     AP = 1/4, INP = 1/4.
    # q2 (pid 3, cam 0): its only match idx 4 is on cam 0 -> removed; skipped.
    # llcm: cmc ([0,1,1,1] + [0,0,1,1]) / 2 = [0, .5, 1, 1]; mAP = mINP =
    #       (1/3 + 1/4) / 2 = 7/24.
    # vcm (same removal, plain CMC): [0, 0, .5, 1], same mAP and mINP.
    rows = np.array([ASC[:5], ASC[:5][::-1], ASC[:5]])
    args = (rows, [1, 2, 3], LLCM_G_PIDS, [0, 1, 0], LLCM_G_CAMS)
    check(metric(*args, 'llcm', max_rank=4), [0, 0.5, 1, 1], 7 / 24, 7 / 24)
    check(metric(*args, 'vcm', max_rank=4), [0, 0, 0.5, 1], 7 / 24, 7 / 24)


# Two visible queries (pids 1, 2 on cams 0, 1) x three infrared gallery items
# (pids 1, 2, 1 on cams 0, 0, 1).
LLCM_T_DIST = [[0.1, 0.5, 0.6],
               [0.4, 0.7, 0.3]]


def test_llcm_transposed_scores_the_gallery_items_as_probes(metric):
    # 'llcm' on the matrix as given:
    #   q0 (pid 1, cam 0): order g0, g1, g2; g0 (pid 1, cam 0) removed; left
    #       pids [2, 1]: hit at rank 2 (de-dup too). AP = INP = 1/2.
    #   q1 (pid 2, cam 1): order g2, g0, g1, pids [1, 1, 2], nothing removed:
    #       hit at rank 3; de-dup [1, 2] -> rank 2. AP = INP = 1/3.
    #   cmc [0, 1, 1], mAP = mINP = (1/2 + 1/3) / 2 = 5/12.
    # 'llcm_transposed' (LLCM test.py's "VIS to IR"): the columns are probes.
    #   g0 (pid 1, cam 0): order q0, q1; q0 (pid 1, cam 0) removed; left [2]:
    #       no match, skipped.
    #   g1 (pid 2, cam 0): order q0 (0.5), q1 (0.7); pids [1, 2]: rank 2,
    #       AP = INP = 1/2.
    #   g2 (pid 1, cam 1): order q1 (0.3), q0 (0.6); pids [2, 1]: rank 2,
    #       AP = INP = 1/2.
    #   cmc [0, 1], mAP = mINP = 1/2.
    args = (np.array(LLCM_T_DIST), [1, 2], [1, 2, 1], [0, 1], [0, 0, 1])
    check(metric(*args, 'llcm', max_rank=3), [0, 1, 1], 5 / 12, 5 / 12)
    check(metric(*args, 'llcm_transposed', max_rank=2), [0, 1], 0.5, 0.5)
    assert matched_queries('llcm', [1, 2], [0, 1], [1, 2, 1], [0, 0, 1]).tolist() == [
        True, True]
    assert matched_queries('llcm_transposed', [1, 2], [0, 1], [1, 2, 1],
                           [0, 0, 1]).tolist() == [False, True, True]


def test_matched_queries_follows_each_removal_rule():
    # the vcm case above: q2's only match is removed; sysu removes no pid-3 item
    # for a camid-0 query; regdb removes nothing
    g_pids, g_cams = [1, 2, 1, 3, 2, 1], [0, 1, 1, 0, 0, 0]
    for protocol, expected in (('vcm', [True, True, False]), ('sysu', [True, True, True]),
                               ('regdb', [True, True, True])):
        assert matched_queries(protocol, [1, 2, 3], [0, 0, 0], g_pids,
                               g_cams).tolist() == expected


def test_bad_protocol_and_max_rank():
    args = (np.array([ASC]), [1], SYSU_G_PIDS, [0], SYSU_G_CAMS)
    with pytest.raises(ValueError, match="'sysu', 'regdb', 'vcm'"):
        evaluate_rank(*args, 'market')
    with pytest.raises(ValueError, match='max_rank'):
        evaluate_rank(*args, 'regdb', max_rank=0)


# ------------------------------------ against the per-query reference loop

def random_case(rng, nq, ng, num_pids=8, num_cams=6, levels=6):
    """Integer distances (plenty of ties) and few pids (repeats); one valid query."""
    dist = rng.integers(0, levels, size=(nq, ng)).astype(np.float64)
    q_pids, g_pids = rng.integers(0, num_pids, nq), rng.integers(0, num_pids, ng)
    q_cams, g_cams = rng.integers(0, num_cams, nq), rng.integers(0, num_cams, ng)
    # Guarantee a valid query and a valid probe among the gallery items (for the
    # transposed protocol) in every protocol.
    g_pids[0], g_cams[0], q_pids[0], q_cams[0] = 1, 0, 1, 3
    if ng > 1:
        g_pids[1], g_cams[1] = 1, 2
    return dist, q_pids, g_pids, q_cams, g_cams


def assert_same(got, want, atol=1e-12):
    np.testing.assert_allclose(got[0], want[0], rtol=0, atol=atol)
    assert got[1] == pytest.approx(want[1], abs=atol)
    assert got[2] == pytest.approx(want[2], abs=atol)


@pytest.mark.parametrize('protocol', ['sysu', 'regdb', 'vcm', 'llcm', 'llcm_transposed'])
@pytest.mark.parametrize('chunk_size,buckets', [(None, 1024), (7, 3), (5, 0)])
def test_random_against_reference(protocol, chunk_size, buckets):
    # buckets 1024: each distance level its own bucket; 3: several levels share one;
    # 0: no histogram, every candidate compared
    rng = np.random.default_rng(0)
    for _ in range(6):
        # galleries from 2 items (shorter than max_rank) to 60
        case = random_case(rng, rng.integers(5, 40), rng.integers(2, 60))
        want = evaluate_rank_reference(*case, protocol, max_rank=20)
        kw = dict(max_rank=20, chunk_size=chunk_size, buckets=buckets)
        assert_same(evaluate_rank(*case, protocol, **kw), want)
        # the same values as float32 tensors
        f32 = (torch.from_numpy(case[0]).float(),) + case[1:]
        assert_same(evaluate_rank(*f32, protocol, **kw), want)


@pytest.mark.parametrize('protocol', ['sysu', 'vcm', 'llcm'])
def test_infinite_and_constant_distances(protocol):
    # +-inf (no finite histogram range) and a constant matrix (one bucket): ties by index
    rng = np.random.default_rng(7)
    dist, *labels = random_case(rng, 20, 30)
    dist[dist == 5] = np.inf
    dist[dist == 0] = -np.inf
    for d in (dist, np.full_like(dist, 2.5)):
        want = evaluate_rank_reference(d, *labels, protocol, max_rank=10)
        assert_same(evaluate_rank(d, *labels, protocol, max_rank=10), want)


@pytest.mark.parametrize('protocol', ['sysu', 'regdb', 'vcm', 'llcm', 'llcm_transposed'])
def test_float64_ties_float32_cannot_hold(protocol):
    # k / 3 is not a float32 value: float64 distances, ties included.
    rng = np.random.default_rng(5)
    for _ in range(4):
        dist, *labels = random_case(rng, rng.integers(5, 30), rng.integers(2, 50))
        case = (dist / 3,) + tuple(labels)
        assert np.float32(case[0]).astype(np.float64).tolist() != case[0].tolist()
        want = evaluate_rank_reference(*case, protocol, max_rank=10)
        assert_same(evaluate_rank(*case, protocol, max_rank=10, chunk_size=4, buckets=4), want)


@pytest.mark.parametrize('protocol', ['sysu', 'regdb', 'vcm', 'llcm'])
def test_queries_without_match_and_continuous_distances(protocol):
    # Half the queries have an identity the gallery lacks; continuous distances,
    # many matches per query (multi-shot-like), negative values and -0.0 included.
    rng = np.random.default_rng(6)
    nq, ng = 40, 300
    q_pids = np.concatenate([rng.integers(0, 10, nq // 2), rng.integers(100, 110, nq // 2)])
    g_pids, q_cams, g_cams = rng.integers(0, 10, ng), rng.integers(0, 6, nq), rng.integers(0, 6, ng)
    dist = rng.normal(size=(nq, ng)).astype(np.float32)
    dist[:, :5] = -0.0
    dist[:, 5:10] = 0.0
    want = evaluate_rank_reference(dist, q_pids, g_pids, q_cams, g_cams, protocol)
    assert_same(evaluate_rank(dist, q_pids, g_pids, q_cams, g_cams, protocol, chunk_size=9),
                want)
    # the reference's own check: the valid half alone gives the same numbers
    half = evaluate_rank_reference(dist[:nq // 2], q_pids[:nq // 2], g_pids, q_cams[:nq // 2],
                                   g_cams, protocol)
    assert_same(half, want)


# --------------------------------------------------- torchreid as a reference

def _eval_market1501():
    for root in ('torchreid.reid', 'torchreid'):
        try:
            return importlib.import_module(root + '.metrics.rank').eval_market1501
        except ImportError:
            continue
    pytest.skip('torchreid not installed')


@pytest.mark.parametrize('protocol', ['vcm', 'regdb'])
def test_agrees_with_torchreid(protocol, metric):
    eval_market1501 = _eval_market1501()
    rng = np.random.default_rng(1)
    nq, ng = 30, 80
    dist = rng.random((nq, ng))  # continuous: no ties, any argsort agrees
    q_pids, g_pids = rng.integers(0, 10, nq), rng.integers(0, 10, ng)
    q_cams, g_cams = rng.integers(0, 3, nq), rng.integers(0, 3, ng)
    if protocol == 'regdb':
        # Distinct camids so torchreid removes nothing, as regdb should.
        tr_q_cams, tr_g_cams = np.zeros(nq, int), np.ones(ng, int)
    else:
        tr_q_cams, tr_g_cams = q_cams, g_cams
    tr_cmc, tr_map = eval_market1501(dist, q_pids, g_pids, tr_q_cams,
                                     tr_g_cams, 20)
    cmc, mAP, _ = metric(dist, q_pids, g_pids, q_cams, g_cams, protocol, max_rank=20)
    np.testing.assert_allclose(cmc, tr_cmc, atol=1e-6)
    assert mAP == pytest.approx(float(tr_map), abs=1e-9)


# ------------------------------------------------------------ input handling

def _random_case(seed=2, nq=12, ng=25):
    rng = np.random.default_rng(seed)
    return (rng.random((nq, ng)).astype(np.float32), rng.integers(0, 4, nq),
            rng.integers(0, 4, ng), rng.integers(0, 4, nq),
            rng.integers(0, 4, ng))


@pytest.mark.parametrize('protocol', ['sysu', 'regdb', 'vcm'])
def test_torch_and_numpy_inputs_agree(protocol):
    case = _random_case()
    want = evaluate_rank(*case, protocol, max_rank=10)
    got = evaluate_rank(*(torch.from_numpy(x) for x in case), protocol,
                        max_rank=10)
    np.testing.assert_array_equal(got[0], want[0])
    assert (got[1], got[2]) == (want[1], want[2])
    assert 0 < want[1] <= 1 and 0 < want[2] <= 1


@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
def test_cuda_distmat_matches_cpu():
    case = _random_case(seed=3, nq=50, ng=70)
    want = evaluate_rank(*case, 'sysu')
    got = evaluate_rank(torch.from_numpy(case[0]).cuda(), *case[1:], 'sysu')
    np.testing.assert_allclose(got[0], want[0])
    assert got[1] == pytest.approx(want[1]) and got[2] == pytest.approx(want[2])


# ----------------------------------------------------------------- distances

def test_compute_distance():
    rng = np.random.default_rng(4)
    q, g = rng.normal(size=(5, 8)), rng.normal(size=(7, 8))
    # Independent definitions, computed in float64 numpy.
    eucl = np.sqrt(((q[:, None, :] - g[None, :, :]) ** 2).sum(-1))
    cos = 1 - (q @ g.T) / np.outer(np.linalg.norm(q, axis=1),
                                   np.linalg.norm(g, axis=1))
    d = compute_distance(torch.from_numpy(q), torch.from_numpy(g))
    assert d.dtype == torch.float32 and d.shape == (5, 7)
    np.testing.assert_allclose(d.numpy(), eucl, rtol=1e-5, atol=1e-5)
    d = compute_distance(torch.from_numpy(q), torch.from_numpy(g), 'cosine')
    np.testing.assert_allclose(d.numpy(), cos, rtol=1e-5, atol=1e-5)
    # A feature against itself: ~0 (fp32 rounding under the sqrt gives ~1e-3),
    # never NaN from a negative squared distance.
    same = compute_distance(torch.from_numpy(q), torch.from_numpy(q))
    assert torch.isfinite(same).all() and same.diagonal().abs().max() < 1e-2
    with pytest.raises(ValueError, match='euclidean'):
        compute_distance(torch.from_numpy(q), torch.from_numpy(g), 'l1')
