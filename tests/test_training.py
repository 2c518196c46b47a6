"""End-to-end runs of scripts/main.py on a small synthetic SYSU-MM01 (CPU, in-process).

One 2-epoch training run (module fixture) is shared: the tests read its
results.json, log and checkpoints, resume from it, and evaluate its checkpoint.
"""
import glob
import hashlib
import json
import os
import shutil

import pytest
import torch

from tests.helpers import DEMO, synthetic_sysu

MODES = ['all-search single-shot', 'all-search multi-shot', 'indoor-search single-shot',
         'indoor-search multi-shot']
IMAGES_PER_CAM = 3


def run_main(cli, argv):
    """main(argv) (it puts sys.stdout back itself, see test_cli.py)."""
    return cli.main([str(a) for a in argv])


def args(root, save_dir, *extra):
    # 64x32 images with stride 8: a 7x3 token grid for the tiny ViT
    return ['--config-file', DEMO, '--root', root, 'data.save_dir', save_dir,
            'data.synthetic', 'True', 'data.workers', '0', 'data.height', '64',
            'data.width', '32', 'vit.stride_size', '8', 'train.batch_size', '32',
            'train.lr', '0.005', 'train.warmup_epochs', '0.5', 'train.print_freq', '1',
            'test.num_trials', '3'] + list(extra)


def read_results(save_dir):
    with open(os.path.join(save_dir, 'results.json')) as f:
        return json.load(f)


def read_log(save_dir, prefix='train.log'):
    paths = sorted(glob.glob(os.path.join(save_dir, prefix + '-*')))
    assert paths, 'no {} in {}'.format(prefix, save_dir)
    with open(paths[-1]) as f:
        return f.read()


def sha(path):
    with open(path, 'rb') as f:
        return hashlib.sha256(f.read()).hexdigest()


pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def sysu_root(tmp_path_factory):
    return synthetic_sysu(tmp_path_factory, 48, 2, 16, IMAGES_PER_CAM)


@pytest.fixture(scope='module')
def trained(cli, sysu_root, tmp_path_factory):
    """2 epochs with the untrained model scored first; returns (save_dir, results)."""
    save_dir = str(tmp_path_factory.mktemp('train_log'))
    rc = run_main(cli, args(sysu_root, save_dir, 'train.max_epoch', '2',
                            'test.eval_before_train', 'True'))
    assert rc == 0
    return save_dir, read_results(save_dir)


def final_row(results):
    return results[-1]['rows'][0]


# ---------------------------------------------------------------- (1) training helps

def test_training_improves_map(trained):
    save_dir, results = trained
    assert len(results) == 2     # untrained, then the final test
    # epochs counted as the table and model.pth.tar-2 count them: 0 = untrained
    assert [r['epoch'] for r in results] == [0, 2]
    assert os.path.isfile(os.path.join(save_dir, 'model', 'model.pth.tar-2'))
    before, after = results[0]['rows'][0], results[1]['rows'][0]
    assert before['mode'] == after['mode'] == 'all-search single-shot'
    for row in (before, after):
        assert set(row) >= {'R1', 'R5', 'R10', 'R20', 'mAP', 'mINP'}
        assert 0 <= row['mINP'] <= row['mAP'] <= 100
        assert row['R1'] <= row['R5'] <= row['R10'] <= row['R20'] <= 100
    assert after['mAP'] > before['mAP']


def test_training_prints_the_table(trained):
    save_dir, _ = trained
    log = read_log(save_dir)
    header = [line for line in log.splitlines() if line.startswith('| mode')]
    assert len(header) == 2      # before and after training
    cols = [c.strip() for c in header[0].strip('|').split('|')]
    for col in ('R1', 'R5', 'R10', 'R20', 'mAP', 'mINP'):
        assert col in cols
    assert 'mAP before training' in log
    assert os.path.isfile(os.path.join(save_dir, 'model', 'model.pth.tar-2'))
    # a checkpoint every epoch (train.checkpoint_every 1), independent of evaluation
    assert os.path.isfile(os.path.join(save_dir, 'model', 'model.pth.tar-1'))


# ---------------------------------------------------------------- (2) resume

def test_resume_continues_at_epoch_3(cli, sysu_root, trained, tmp_path, monkeypatch):
    src, results = trained
    save_dir = tmp_path / 'resumed'
    shutil.copytree(src, save_dir)
    ckpt2 = save_dir / 'model' / 'model.pth.tar-2'
    digest = sha(ckpt2)
    saved = torch.load(str(ckpt2), map_location='cpu', weights_only=True)
    assert saved['epoch'] == 2

    seen = {}
    engine_cls = cli.CrossModalEngine
    real_resume = engine_cls.resume

    def spy(self, path, save_dir, rebuild_schedule=False, **kwargs):
        epoch = real_resume(self, path, save_dir, rebuild_schedule, **kwargs)
        seen['state'] = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        seen['epoch'] = epoch
        return epoch
    monkeypatch.setattr(engine_cls, 'resume', spy)
    for old in glob.glob(str(save_dir / 'train.log-*')):
        os.remove(old)

    # 3 epochs instead of 2 changes the LR schedule: refused, naming the key...
    rc = run_main(cli, args(sysu_root, save_dir, 'train.max_epoch', '3',
                            'test.eval_before_train', 'True', 'model.resume', ckpt2))
    assert rc == 1 and not seen
    assert not (save_dir / 'model' / 'model.pth.tar-3').exists()
    # ...and rebuilt when asked
    rc = run_main(cli, args(sysu_root, save_dir, 'train.max_epoch', '3',
                            'test.eval_before_train', 'True', 'model.resume', ckpt2,
                            'train.resume_rebuild_schedule', 'True'))
    assert rc == 0
    assert seen['epoch'] == 2
    # the model holds exactly the checkpoint's tensors after resuming
    assert set(seen['state']) == set(saved['state_dict'])
    for k, v in saved['state_dict'].items():
        assert torch.equal(seen['state'][k], v), k

    ckpt3 = save_dir / 'model' / 'model.pth.tar-3'
    assert ckpt3.is_file()
    assert torch.load(str(ckpt3), map_location='cpu', weights_only=True)['epoch'] == 3
    assert sha(ckpt2) == digest            # epoch-2 checkpoint not rewritten
    log = read_log(str(save_dir))
    assert 'epoch: [3/3]' in log
    assert 'epoch: [1/3]' not in log and 'epoch: [2/3]' not in log
    assert 'schedule rebuilt: train.max_epoch: checkpoint 2, config 3' in log
    # a resumed model is not untrained: eval_before_train does not score it again
    assert 'Evaluating the model before training' not in log
    after = read_results(str(save_dir))
    assert len(after) == len(results) + 1 and after[-1]['epoch'] == 3   # model.pth.tar-3


# ---------------------------------------------------------------- (3) test-only

def test_evaluate_only_reproduces_final_map(cli, sysu_root, trained, tmp_path):
    src, results = trained
    save_dir = tmp_path / 'eval'
    rc = run_main(cli, args(sysu_root, save_dir, 'test.evaluate', 'True',
                            'model.load_weights', os.path.join(src, 'model', 'model.pth.tar-2')))
    assert rc == 0
    records = read_results(str(save_dir))
    assert len(records) == 1
    row, ref = records[0]['rows'][0], final_row(results)
    assert row['mode'] == ref['mode']
    for key in ('R1', 'R5', 'R10', 'R20', 'mAP', 'mINP'):
        assert row[key] == ref[key], key
    assert not (save_dir / 'model').exists()   # nothing trained, nothing saved
    assert read_log(str(save_dir), 'test.log')


# ---------------------------------------------------------------- (4) protocol matrix

def _count_gallery_files(root, cams):
    folder = os.path.join(root, 'SYSU-MM01')
    with open(os.path.join(folder, 'exp', 'test_id.txt')) as f:
        test_ids = [int(t) for t in f.read().strip().split(',')]
    folders = [os.path.join(folder, 'cam{}'.format(c), '{:04d}'.format(pid))
               for pid in test_ids for c in cams]
    folders = [d for d in folders if os.path.isdir(d) and os.listdir(d)]
    return len(folders), sum(len(os.listdir(d)) for d in folders)


def test_protocol_matrix(cli, sysu_root, trained, tmp_path):
    src, results = trained
    save_dir = tmp_path / 'matrix'
    rc = run_main(cli, args(sysu_root, save_dir, 'test.evaluate', 'True',
                            'test.protocol_matrix', 'True',
                            'model.load_weights', os.path.join(src, 'model', 'model.pth.tar-2')))
    assert rc == 0
    records = read_results(str(save_dir))
    assert len(records) == 1
    rows = {r['mode']: r for r in records[0]['rows']}
    assert sorted(rows) == sorted(MODES)
    # the registered mode is the same evaluation as without the matrix
    assert rows['all-search single-shot']['mAP'] == final_row(results)['mAP']
    # gallery sizes from the tree: single-shot = one image per (test id, RGB camera)
    # folder; multi-shot draws min(10, n) per folder, i.e. all of our 3 per folder
    for search, cams in (('all', (1, 2, 4, 5)), ('indoor', (1, 2))):
        n_folders, n_files = _count_gallery_files(sysu_root, cams)
        assert n_files == IMAGES_PER_CAM * n_folders
        assert rows[search + '-search single-shot']['gallery'] == n_folders
        assert rows[search + '-search multi-shot']['gallery'] == n_files
    # the query set (every IR test image) is shared by the four modes
    assert len({r['queries'] for r in rows.values()}) == 1
    log = read_log(str(save_dir), 'test.log')
    for mode in MODES:
        assert mode in log


# ---------------------------------------------------------------- torchreid's visrank / rerank

def test_visrank_and_rerank_reach_the_cross_modal_evaluation(cli, sysu_root, trained, tmp_path):
    src, results = trained
    save_dir = tmp_path / 'vis'
    rc = run_main(cli, args(sysu_root, save_dir, 'test.evaluate', 'True', 'test.visrank', 'True',
                            'test.rerank', 'True', 'test.visrank_topk', '3',
                            'model.load_weights', os.path.join(src, 'model', 'model.pth.tar-2')))
    assert rc == 0
    row = read_results(str(save_dir))[0]['rows'][0]
    # torchreid's visualiser writes one ranked-list image per query of the first trial
    images = os.listdir(save_dir / 'visrank_sysu_mm01')
    assert len(images) == row['queries'] and all(n.endswith('.jpg') for n in images)
    # k-reciprocal re-ranking was applied: the same model scores differently
    plain = final_row(results)
    assert any(row[k] != plain[k] for k in ('R1', 'R5', 'mAP', 'mINP'))
