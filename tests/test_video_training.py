"""End-to-end video training through the real CLI on a tiny synthetic HITSZ-VCM.

One short run of ``scripts/main.py`` (imported from its file path): the untrained
model is scored first (test.eval_before_train), trained a few epochs, scored
again with both directions (test.protocol_matrix). Trained mAP must beat the
untrained one, and the clips the model sees must be (B, seq_len, 3, H, W).
"""
import json
import sys

import pytest

from vireid_plugin.data.synthetic import make_hitsz_vcm
from vireid_plugin.models.video import TemporalAvgReID

from tests.helpers import config_file

SEQ_LEN, HEIGHT, WIDTH, BATCH = 4, 64, 32, 8


@pytest.fixture(scope='module')
def video_run(tmp_path_factory, monkeypatch_module, cli):
    tmp = tmp_path_factory.mktemp('video_run')
    root, save_dir = tmp / 'data', tmp / 'log'
    make_hitsz_vcm(str(root), num_train=8, num_test=6, tracklets=(2, 2), lengths=(6, 10),
                   min_len=6, num_cams=2, size=(HEIGHT, WIDTH))

    shapes = []
    forward = TemporalAvgReID.forward

    def spy(self, x, *args, **kwargs):
        if self.training:
            shapes.append(tuple(x.shape))
        return forward(self, x, *args, **kwargs)
    monkeypatch_module.setattr(TemporalAvgReID, 'forward', spy)

    stdout = sys.stdout   # run() swaps in torchreid's Logger
    try:
        rc = cli.main([
            '--config-file', config_file('demo_vcm.yaml'),
            '--root', str(root),
            'data.save_dir', str(save_dir), 'data.synthetic', 'True', 'data.workers', '0',
            'data.height', str(HEIGHT), 'data.width', str(WIDTH),
            'vit.stride_size', '16', 'vcm.min_seq_len', '6',
            'video.seq_len', str(SEQ_LEN), 'sampler.num_instances', '2',
            'train.batch_size', str(BATCH), 'train.max_epoch', '8', 'train.lr', '0.003',
            'train.print_freq', '100', 'train.amp', 'off', 'use_gpu', 'False',
            'test.batch_size', '16', 'test.eval_before_train', 'True',
            'test.protocol_matrix', 'True'])
    finally:
        sys.stdout = stdout
    with open(save_dir / 'results.json') as f:
        records = json.load(f)
    return rc, records, shapes


@pytest.fixture(scope='module')
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


def test_cli_exits_cleanly(video_run):
    rc, records, _ = video_run
    assert rc == 0
    assert [r['dataset'] for r in records] == ['hitsz_vcm', 'hitsz_vcm']


def test_both_directions_scored(video_run):
    _, records, _ = video_run
    for rec in records:
        assert [row['mode'] for row in rec['rows']] == ['infrared->visible', 'visible->infrared']
        for row in rec['rows']:
            assert 0 <= row['mAP'] <= 100 and 0 <= row['R1'] <= 100


def test_training_improves_map(video_run):
    _, records, _ = video_run
    before, after = records[0], records[-1]
    assert before['epoch'] < after['epoch']
    assert not before.get('trained', False) and after.get('trained', True)
    assert after['rows'][0]['mAP'] > before['rows'][0]['mAP']


def test_model_sees_clips(video_run):
    _, _, shapes = video_run
    assert shapes, 'the video model was never called in training'
    assert all(s == (BATCH, SEQ_LEN, 3, HEIGHT, WIDTH) for s in shapes), set(shapes)
