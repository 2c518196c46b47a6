"""torchreid's engine hooks stay the engine's methods: a subclass that overrides
``forward_backward`` or ``extract_features`` is what ``run()`` and ``test()`` call."""
import json
import os

import numpy as np
import pytest
import torch

from vireid_plugin.data.eval_split import EvalMode
from vireid_plugin.engine import CrossModalEngine
from vireid_plugin.engine.evaluation import RESULTS_FILE

from test_engine import make_engine

# a cross-modal target of four items (path, pid, camid, dsetid, modality): two infrared
# queries (camid 2), one visible match each (camid 0); 'img' is the 3-d point below
POOL = [('q1', 1, 2, 0, 1), ('q2', 2, 2, 0, 1), ('g1', 1, 0, 0, 0), ('g2', 2, 0, 0, 0)]
POINTS = {'q1': [0.0, 0.0, 0.0], 'q2': [4.0, 0.0, 0.0],
          'g1': [3.0, 0.0, 0.0], 'g2': [1.0, 0.0, 0.0]}   # each query is nearer the other id
MODE = EvalMode('ir->vis', 'regdb', np.array([0, 1]), (np.array([2, 3]),))


class Target(torch.utils.data.Dataset):
    def __init__(self):
        self.test_pool, self.data, self.transform = POOL, [], None

    def eval_modes(self, matrix=False):
        return [MODE]

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        path, pid, camid, _, modality = self.data[i]
        return {'img': torch.tensor(POINTS[path]), 'pid': pid, 'camid': camid,
                'modality': modality}


class SwappedFeatures(CrossModalEngine):
    """Counts its training steps; its features swap the two gallery points, so each
    query's nearest visible item becomes its own id."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.steps, self.extracted = 0, []

    def forward_backward(self, data):
        self.steps += 1
        return super().forward_backward(data)

    def extract_features(self, input, modality=None, camid=None):
        self.extracted.extend(modality.tolist())
        x = input[:, 0]
        visible = (modality == 0).float()
        swapped = visible * (4.0 - x) + (1 - visible) * x   # 3 <-> 1 on the visible side
        return torch.stack([swapped, torch.zeros_like(x)], 1)


def make_subclassed(tmp_path):
    engine, model, sampler, _ = make_engine()
    loader = torch.utils.data.DataLoader(Target(), batch_size=4)
    engine.datamanager.test_loader = {'toy': {'query': loader, 'gallery': loader}}
    sub = SwappedFeatures(engine.datamanager, model, engine.optimizer, engine.criterion,
                          scheduler=engine.scheduler, use_gpu=False)
    return sub, model, sampler


def test_run_trains_through_the_overridden_step_and_scores_the_overridden_features(tmp_path):
    engine, model, sampler = make_subclassed(tmp_path)
    engine.run(save_dir=str(tmp_path), max_epoch=1, print_freq=100)
    assert engine.steps == sampler.num_batches          # every step went through the override
    # the final test read the pool through the override only, in pool order
    assert engine.extracted == [1, 1, 0, 0]
    assert len(model.seen) == sampler.num_batches       # the model ran for training only
    # swapped features: q1 (0) -> g1 (1) nearest, q2 (4) -> g2 (3) nearest: R1 = mAP = 100;
    # the raw points would rank the wrong id first for both (R1 0, mAP 50)
    (row,) = engine.last_results['toy']
    assert row['R1'] == pytest.approx(100.0) and row['mAP'] == pytest.approx(100.0)
    with open(os.path.join(str(tmp_path), RESULTS_FILE)) as f:
        (record,) = json.load(f)
    assert record['dataset'] == 'toy' and record['rows'][0]['R1'] == pytest.approx(100.0)


def test_test_alone_uses_the_overridden_features(tmp_path):
    engine, model, _ = make_subclassed(tmp_path)
    rank1 = engine.test()
    assert engine.extracted == [1, 1, 0, 0] and model.seen == []   # the model was not called
    assert rank1 == pytest.approx(1.0)
