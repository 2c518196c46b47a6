"""Evaluation features are extracted in fp32 whatever the training precision (issue 17.3);
``test.autocast True`` opts into the training autocast; every result records which."""
import json
import os

import pytest
import torch

from vireid_plugin.engine import CrossModalEngine

from tests.helpers import DEMO, synthetic_sysu


pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    return synthetic_sysu(tmp_path_factory, 6, 2, 4, size=(32, 16))


def run(cli, root, save, monkeypatch, *extra):
    seen = {'train': set(), 'eval': set(), 'dtype': set()}
    real_extract, real_step = CrossModalEngine.extract_features, CrossModalEngine.forward_backward

    def extract(self, input, modality=None, camid=None):
        seen['eval'].add(torch.is_autocast_enabled('cpu'))
        out = real_extract(self, input, modality, camid)
        seen['dtype'].add(out.dtype)
        return out

    def step(self, data):
        # the model's forward, inside the step, runs under the training autocast
        model = self.model
        handle = model.register_forward_hook(
            lambda *_: seen['train'].add(torch.is_autocast_enabled('cpu')))
        try:
            return real_step(self, data)
        finally:
            handle.remove()
    monkeypatch.setattr(CrossModalEngine, 'extract_features', extract)
    monkeypatch.setattr(CrossModalEngine, 'forward_backward', step)
    argv = ['--config-file', DEMO, '--root', root, 'data.save_dir', str(save),
            'data.synthetic', 'True', 'data.workers', '0', 'data.height', '32',
            'data.width', '16', 'vit.stride_size', '8', 'train.batch_size', '8',
            'sampler.num_instances', '2', 'train.max_epoch', '1', 'train.print_freq', '100',
            'test.num_trials', '1', 'test.eval_before_train', 'True', 'train.amp', 'bf16'] + \
        list(extra)
    assert cli.main(argv) == 0
    with open(os.path.join(str(save), 'results.json')) as f:
        records = json.load(f)
    return seen, records


def test_features_are_fp32_under_bf16_training(cli, root, tmp_path, monkeypatch):
    seen, records = run(cli, root, tmp_path / 'fp32', monkeypatch)
    assert seen['train'] == {True}           # training did run under bf16 autocast
    assert seen['eval'] == {False} and seen['dtype'] == {torch.float32}
    assert [r['feature_precision'] for r in records] == ['fp32', 'fp32']


def test_test_autocast_opts_into_the_training_precision(cli, root, tmp_path, monkeypatch):
    seen, records = run(cli, root, tmp_path / 'bf16', monkeypatch, 'test.autocast', 'True')
    assert seen['eval'] == {True}
    assert [r['feature_precision'] for r in records] == ['bf16', 'bf16']
