"""Comparable by default (issue 29): each model and protocol ranks as its reference code
does, a config key overrides, and every record says which distance and feature it scored.

Expected rankings come from an independent implementation (numpy similarities fed to the
per-query reference loop of metrics/reference.py), never from the plugin's own output.
"""
import json
import types

import numpy as np
import pytest
import torch

from vireid_plugin.config.loading import ConfigError, load_config
from vireid_plugin.data.datasets.buptcampus.dataset import BUPTCampus
from vireid_plugin.data.datasets.hitsz_vcm.dataset import HITSZVCM
from vireid_plugin.data.datasets.llcm.dataset import LLCM
from vireid_plugin.data.datasets.regdb.dataset import RegDB
from vireid_plugin.data.datasets.sysu_mm01.dataset import SYSUMM01
from vireid_plugin.data.eval_split import EvalMode
from vireid_plugin.data.synthetic import make_sysu_mm01
from vireid_plugin.engine.evaluation import score_modes
from vireid_plugin.metrics import compute_distance, evaluate_rank_reference, resolve_ranking
from vireid_plugin.metrics.selection import find_row, selection_score
from vireid_plugin.models.lsmrl.model import LSMRL
from vireid_plugin.models.mip.model import MIPReID
from vireid_plugin.models.video import TemporalAvgReID
from vireid_plugin.models.vit_reid import ViTReID

from tests.helpers import DEMO


# ---------------------------------------------------------------- distances by hand

def test_dot_and_cosine_distances_by_hand():
    q = torch.tensor([[1., 2.]])
    g = torch.tensor([[3., 0.], [0., 1.], [2., 4.]])
    # dot: -(q.g) = -(3, 2, 10); the raw product ranks the long g3 first
    assert compute_distance(q, g, 'dot').tolist() == [[-3., -2., -10.]]
    # cosine: 1 - q.g / (|q||g|): |q| = sqrt5; (3/(3 sqrt5), 2/sqrt5, 10/(sqrt5 sqrt20))
    s5 = 5 ** 0.5
    want = [1 - 1 / s5, 1 - 2 / s5, 0.0]
    assert compute_distance(q, g, 'cosine')[0].tolist() == pytest.approx(want, abs=1e-6)
    with pytest.raises(ValueError, match="'manhattan'"):
        compute_distance(q, g, 'manhattan')


# ---------------------------------------------------------------- who declares what

def test_models_declare_their_references_ranking():
    assert ViTReID.TEST_DISTANCE == 'cosine' and 'TransReID' in ViTReID.TEST_DISTANCE_SOURCE
    assert TemporalAvgReID.TEST_DISTANCE == 'cosine' and 'MITML' in \
        TemporalAvgReID.TEST_DISTANCE_SOURCE
    assert LSMRL.TEST_DISTANCE == 'cosine'
    # MIP normalises its features itself and its code ranks by Euclidean distance
    assert MIPReID.TEST_DISTANCE == 'euclidean'


def test_protocols_declare_their_reference_codes_ranking():
    for cls in (SYSUMM01, RegDB, HITSZVCM, BUPTCampus):
        assert cls.TEST_DISTANCE == 'cosine', cls
    assert not hasattr(LLCM, 'TEST_DISTANCE')   # DEEN's normalisation is not confirmed


def test_resolution_order_key_then_model_then_protocol_then_euclidean():
    model, dataset = ViTReID, types.SimpleNamespace()
    assert resolve_ranking('dot', model, dataset).metric == 'dot'
    assert resolve_ranking('dot', model).source == 'test.dist_metric dot'
    assert resolve_ranking('auto', model, dataset).metric == 'cosine'
    assert resolve_ranking('auto', MIPReID, HITSZVCM).metric == 'euclidean'   # model first
    plain = torch.nn.Linear(2, 2)             # e.g. a torchreid model: the protocol's
    assert resolve_ranking('auto', plain, HITSZVCM) == (
        'cosine', HITSZVCM.TEST_DISTANCE_SOURCE)
    assert resolve_ranking('auto', plain, LLCM).metric == 'euclidean'
    wrapped = types.SimpleNamespace(module=MIPReID)   # DDP: the model inside
    assert resolve_ranking(None, wrapped).metric == 'euclidean'
    assert resolve_ranking('auto', types.SimpleNamespace(module=ViTReID)).metric == 'cosine'
    with pytest.raises(ValueError, match='test.dist_metric'):
        resolve_ranking('cosin', model)


# ---------------------------------------------------------------- mAP vs an independent ranking

def _pool(rng, num_ids=12, per=4):
    """(path, pid, camid, dsetid, modality) items: ``per`` per id and modality, cameras
    drawn from 0..3; one query per id and modality, the rest gallery."""
    pool = []
    for pid in range(num_ids):
        for mod in (0, 1):
            for k in range(per):
                pool.append(('p{}_{}_{}'.format(pid, mod, k), pid, int(rng.integers(4)), 0,
                             mod))
    return pool


def _independent(feats, pool, query, gallery, protocol, metric):
    """mAP (percent) of the reference per-query loop on numpy similarities."""
    f = feats.numpy().astype(np.float64)
    if metric == 'cosine':
        f = f / np.linalg.norm(f, axis=1, keepdims=True)
    sim = f[query] @ f[gallery].T          # cosine: of normalised; dot: raw
    pids = np.array([it[1] for it in pool])
    cams = np.array([it[2] for it in pool])
    _, mAP, _ = evaluate_rank_reference(-sim, pids[query], pids[gallery], cams[query],
                                        cams[gallery], protocol)
    return 100 * mAP


@pytest.mark.parametrize('protocol', ['sysu', 'regdb', 'vcm', 'llcm'])
@pytest.mark.parametrize('metric', ['cosine', 'dot'])
def test_map_equals_an_independent_cosine_or_dot_ranking(protocol, metric):
    rng = np.random.default_rng(7)
    pool = _pool(rng)
    # features with identity structure and unequal norms (dot and cosine then differ)
    centres = rng.normal(size=(12, 16))
    feats = torch.tensor(np.stack([centres[it[1]] + rng.normal(size=16) * 1.5
                                   for it in pool]) * rng.uniform(0.2, 3, size=(len(pool), 1)),
                         dtype=torch.float32)
    query = np.array([i for i, it in enumerate(pool) if it[4] == 1 and it[0].endswith('_0')])
    gallery = np.array([i for i, it in enumerate(pool) if it[4] == 0])
    mode = EvalMode(name='infrared->visible', metric=protocol, query=query,
                    galleries=(gallery,))
    (row,) = score_modes(feats, pool, [mode], metric)
    want = _independent(feats, pool, query, gallery, protocol, metric)
    assert row['mAP'] == pytest.approx(want, abs=1e-4)
    other = _independent(feats, pool, query, gallery, protocol,
                         'dot' if metric == 'cosine' else 'cosine')
    assert abs(other - want) > 1e-3   # the two rankings differ on these features


# ---------------------------------------------------------------- selection

RESULTS = {'bupt': [{'mode': 'visible->infrared [auxnet]', 'R1': 50.0, 'mAP': 30.0},
                    {'mode': 'infrared->visible [auxnet]', 'R1': 40.0, 'mAP': 44.0}]}


def test_selection_score_by_metric_and_named_mode():
    assert selection_score(RESULTS) == 40.0                       # (50 + 30) / 2, first row
    assert selection_score(RESULTS, 'R1') == 50.0                 # VLD: R1 of the first
    assert selection_score(RESULTS, 'mAP', 'infrared->visible') == 44.0   # tag optional
    assert selection_score(RESULTS, 'mAP', 'infrared->visible [auxnet]') == 44.0
    assert selection_score({}) is None
    with pytest.raises(ValueError, match="'visible->infrared \\[auxnet\\]'"):
        find_row(RESULTS, 'rgb->ir')


def test_config_keys_and_their_checks():
    cfg = load_config('', [])
    assert cfg.test.dist_metric == 'auto' and cfg.test.select_metric == 'r1_map'
    assert cfg.bupt.protocol == 'auxnet'
    with pytest.raises(ConfigError, match="'test.dist_metric' must be one of"):
        load_config('', ['test.dist_metric', 'inner'])
    with pytest.raises(ConfigError, match="'test.select_metric' must be one of"):
        load_config('', ['test.select_metric', 'mINP'])
    with pytest.raises(ConfigError, match='test.rerank needs a distance'):
        load_config('', ['test.dist_metric', 'dot', 'test.rerank', 'True'])


# ---------------------------------------------------------------- a run says what it scored

def test_a_run_records_distance_feature_and_selection(tmp_path, cli, capfd, one_thread):
    root = str(tmp_path / 'data')
    make_sysu_mm01(root, num_train=6, num_val=2, num_test=4, images_per_cam=2, size=(32, 16))
    save = tmp_path / 'log'
    argv = ['--config-file', DEMO, '--root', root, 'data.synthetic', 'True',
            'data.save_dir', str(save), 'data.workers', '0', 'data.height', '32',
            'data.width', '16', 'vit.stride_size', '8', 'train.batch_size', '8',
            'sampler.num_instances', '2', 'train.max_epoch', '2', 'train.print_freq', '100',
            'test.num_trials', '1', 'test.eval_freq', '1', 'test.select_on', 'test',
            'test.select_metric', 'mAP', 'test.select_mode', 'all-search single-shot']
    assert cli.main(argv) == 0
    out = capfd.readouterr().out
    assert 'distance cosine, feature bn' in out     # vit_tiny_reid follows TransReID
    records = json.loads((save / 'results.json').read_text())
    scored = [r for r in records if r['stage'] != 'untrained']
    assert scored and all(r['distance'] == 'cosine' and r['feature'] == 'bn' and
                          'TransReID' in r['distance_source'] for r in scored)
    selected = [r for r in records if r['stage'] == 'selected']
    assert selected and selected[-1]['selection_metric'] == 'mAP'
    # the selected epoch has the best mAP of the named row among the epochs scored
    per_epoch = {r['epoch']: find_row({'x': r['rows']}, 'all-search single-shot')['mAP']
                 for r in scored if r['stage'] == 'evaluation'}
    assert find_row({'x': selected[-1]['rows']}, 'all-search single-shot')['mAP'] == \
        max(per_epoch.values())
    # the key overrides; an unknown row is refused before training
    assert cli.main(argv + ['test.dist_metric', 'euclidean', 'data.save_dir',
                            str(tmp_path / 'e'), 'train.max_epoch', '1',
                            'test.eval_before_train', 'False']) == 0
    rec = json.loads((tmp_path / 'e' / 'results.json').read_text())[-1]
    assert rec['distance'] == 'euclidean' and rec['distance_source'] == \
        'test.dist_metric euclidean'
    capfd.readouterr()
    assert cli.main(argv + ['test.select_mode', 'rgb->ir', 'data.save_dir',
                            str(tmp_path / 'f')]) == 2
    err = capfd.readouterr().err
    assert "'rgb->ir'" in err and 'all-search single-shot' in err
    assert not (tmp_path / 'f' / 'model').exists()


def test_figures_rank_by_the_recorded_distance(tmp_path):
    from vireid_plugin.engine.evaluation import recorded_distance
    assert recorded_distance(str(tmp_path), 'sysu_mm01') is None          # no file
    (tmp_path / 'results.json').write_text(json.dumps([
        {'dataset': 'sysu_mm01', 'stage': 'untrained', 'rows': []},        # an older record
        {'dataset': 'sysu_mm01', 'distance': 'cosine', 'rows': []},
        {'dataset': 'regdb', 'distance': 'dot', 'rows': []},
        {'dataset': 'sysu_mm01', 'distance': 'euclidean', 'rows': []}]))
    assert recorded_distance(str(tmp_path), 'sysu_mm01') == 'euclidean'   # the last one
    assert recorded_distance(str(tmp_path), 'regdb') == 'dot'
    assert recorded_distance(str(tmp_path), 'llcm') is None
