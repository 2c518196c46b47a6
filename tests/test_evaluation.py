import json
import math

import numpy as np
import pytest
import torch

from vireid_plugin.data.eval_split import EvalMode
from vireid_plugin.engine.evaluation import (append_results, extract_pool_features,
                                             format_table, score_modes)


class PoolDataset(torch.utils.data.Dataset):
    """Items whose 'img' is the feature itself, so the feature function can be identity."""

    def __init__(self, pool, feats):
        self.test_pool = pool
        self.data = []
        self.feats = feats

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        path, pid, camid, dsetid, modality = self.data[i]
        return {'img': self.feats[path], 'pid': pid, 'camid': camid, 'modality': modality}


def test_pool_is_extracted_once_in_order_with_modality_and_camid():
    pool = [(i, i % 3, i % 2, 0, i % 2) for i in range(10)]
    feats = torch.arange(20, dtype=torch.float32).view(10, 2)
    calls = []

    def feature_fn(imgs, modality, camid):
        calls.append((modality.tolist(), camid.tolist()))
        return imgs.to(torch.bfloat16)  # features come back as float32 whatever the dtype

    out = extract_pool_features(feature_fn, PoolDataset(pool, feats), batch_size=4, workers=0,
                                device='cpu', autocast=torch.no_grad)
    assert len(calls) == math.ceil(10 / 4)
    assert out.dtype == torch.float32 and torch.equal(out, feats)
    assert calls[0] == ([0, 1, 0, 1], [0, 1, 0, 1])


def test_trials_are_averaged_and_modes_index_the_same_features():
    # one infrared query of pid 1 at the origin; visible candidates: pid 1 far (x=3),
    # pid 2 near (x=1), pid 1 near (x=0.5).
    pool = [('q', 1, 2, 0, 1), ('g_far', 1, 0, 0, 0), ('g_near_wrong', 2, 0, 0, 0),
            ('g_near', 1, 0, 0, 0)]
    feats = torch.tensor([[0.0], [3.0], [1.0], [0.5]])
    # trial 0 gallery {far pid1, near pid2}: the true match ranks 2nd -> R1 0, AP 1/2
    # trial 1 gallery {near pid1, near pid2}: rank 1 -> R1 1, AP 1
    modes = [EvalMode('m', 'regdb', np.array([0]), (np.array([1, 2]), np.array([3, 2])))]
    (row,) = score_modes(feats, pool, modes, ranks=(1, 2))
    assert row['R1'] == pytest.approx(50.0) and row['R2'] == pytest.approx(100.0)
    assert row['mAP'] == pytest.approx(75.0)
    assert row['trials'] == 2 and row['queries'] == 1 and row['gallery'] == 2
    # the reverse direction reuses the same features: visible query g_near vs infrared q
    back = EvalMode('back', 'regdb', np.array([3]), (np.array([0]),))
    (row_b,) = score_modes(feats, pool, [back], ranks=(1,))
    assert row_b['R1'] == pytest.approx(100.0)
    assert 'm' in format_table('toy', [row]) and 'mINP' in format_table('toy', [row])


def test_results_file_keeps_earlier_records_and_never_destroys_a_bad_file(tmp_path):
    append_results(str(tmp_path), {'epoch': 0})
    append_results(str(tmp_path), {'epoch': 1})
    assert [r['epoch'] for r in json.loads((tmp_path / 'results.json').read_text())] == [0, 1]
    (tmp_path / 'results.json').write_text('{broken')
    append_results(str(tmp_path), {'epoch': 2})
    assert json.loads((tmp_path / 'results.json').read_text()) == [{'epoch': 2,
                                                                     'epoch_base': 1}]
    kept = [p for p in tmp_path.iterdir() if '.corrupt-' in p.name]
    assert len(kept) == 1 and kept[0].read_text() == '{broken'


def test_extraction_and_scoring_print_plain_progress_lines_when_not_a_tty(capsys):
    pool = [(i, i % 3, i % 2, 0, i % 2) for i in range(10)]
    feats = torch.arange(20, dtype=torch.float32).view(10, 2)
    out = extract_pool_features(lambda x, m, c: x, PoolDataset(pool, feats), batch_size=2,
                                workers=0, device='cpu', autocast=torch.no_grad)
    modes = [EvalMode('m', 'regdb', np.array([1, 3]), (np.array([0, 2]), np.array([2, 4])))]
    score_modes(out, pool, modes, ranks=(1,))
    err = capsys.readouterr().err   # pytest's capture is not a TTY
    assert '\r' not in err and '\x1b' not in err      # no bar redraws, no escape codes
    lines = err.strip().splitlines()
    assert any(line.startswith('extracting features of 10 items: 5/5 done') for line in lines)
    assert any(line.startswith('scoring 2 trial(s): 2/2 done') for line in lines)


def test_tensorboard_tags_name_every_mode_and_metric():
    from vireid_plugin.engine.evaluation import scalar_tags
    rows = [{'mode': 'infrared->visible [corrected]', 'R1': 10.0, 'mAP': 5.0, 'mINP': 1.0},
            {'mode': 'all-search single-shot', 'R1': 20.0, 'mAP': 7.0, 'mINP': 2.0}]
    tags = dict(scalar_tags('llcm', rows))
    assert tags == {'Test/llcm/infrared_to_visible_corrected/R1': 10.0,
                    'Test/llcm/infrared_to_visible_corrected/mAP': 5.0,
                    'Test/llcm/infrared_to_visible_corrected/mINP': 1.0,
                    'Test/llcm/all-search_single-shot/R1': 20.0,
                    'Test/llcm/all-search_single-shot/mAP': 7.0,
                    'Test/llcm/all-search_single-shot/mINP': 2.0}


def test_saved_features_round_trip_and_shared_pools_are_stored_once(tmp_path):
    from vireid_plugin.engine.saved_features import load_features, save_features
    pool = [('a.jpg', 3, 0, 0, 0), (('f1.jpg', 'f2.jpg'), 4, 2, 0, 1), ('c.jpg', 3, 5, 0, 1)]
    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    m1 = EvalMode('ir->vis', 'sysu', np.array([1, 2]), (np.array([0]), np.array([0, 1])))
    m2 = EvalMode('vis->ir', 'regdb', np.array([0]), (np.array([1, 2]),))
    m3 = EvalMode('again', 'regdb', m2.query, m2.galleries)   # modes share index arrays
    path = save_features(str(tmp_path / 'f.safetensors'),
                         {'a': (feats, pool, [m1], {'seq_len': 2}), 'b': (feats, pool, [m2, m3])},
                         stage='untrained', epoch=3)
    saved = load_features(path)
    assert saved.stage == 'untrained' and saved.epoch == 3 and set(saved.targets) == {'a', 'b'}
    a, b = saved.targets['a'], saved.targets['b']
    assert a.features is b.features and torch.equal(a.features, feats)   # one stored copy
    assert a.items() == [('a.jpg', 3, 0, 0, 0), (('f1.jpg', 'f2.jpg'), 4, 2, 0, 1),
                         ('c.jpg', 3, 5, 0, 1)]
    assert a.reader == {'seq_len': 2}
    (mode,) = a.modes
    assert mode.name == 'ir->vis' and mode.metric == 'sysu' and mode.query.tolist() == [1, 2]
    assert [g.tolist() for g in mode.galleries] == [[0], [0, 1]]
    assert b.modes[0].galleries[0].tolist() == [1, 2]
    (tmp_path / 'bad.safetensors').write_bytes(b'not a file')
    with pytest.raises(ValueError, match='bad.safetensors'):
        load_features(str(tmp_path / 'bad.safetensors'))


def test_regdb_directions_share_a_pool_key_and_other_clip_lengths_do_not(tmp_path):
    import copy
    from vireid_plugin.data.synthetic import make_regdb
    from vireid_plugin.engine.evaluation import pool_key
    from vireid_plugin.registry import IMAGE_DATASETS
    make_regdb(str(tmp_path), num_ids=8, images_per_id=2, size=(32, 16))
    v2t = IMAGE_DATASETS.get('regdb')(root=str(tmp_path))
    t2v = IMAGE_DATASETS.get('regdb_t2v')(root=str(tmp_path))
    assert v2t.eval_modes()[0].name != t2v.eval_modes()[0].name   # two directions
    assert pool_key(v2t) == pool_key(t2v)                          # one pool to extract
    longer = copy.copy(t2v)
    longer.seq_len = 8
    assert pool_key(longer) != pool_key(v2t)
