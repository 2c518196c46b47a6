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
    assert json.loads((tmp_path / 'results.json').read_text()) == [{'epoch': 2}]
    kept = [p for p in tmp_path.iterdir() if '.corrupt-' in p.name]
    assert len(kept) == 1 and kept[0].read_text() == '{broken'
