"""What LSMRL's prompt stage reads: every training tracklet once, as the evaluation reads a
clip (CLIP-ReID's stage 1 encodes with its test transform), under the run's
data.on_bad_image: a corrupt frame is skipped and reported, or stops with one message
naming the file, in a synthetic HITSZ-VCM tree."""
import glob
import os
import sys

import numpy as np
import torch
from PIL import Image

from vireid_plugin.data import CrossModalVideoDataManager
from vireid_plugin.data.frames import sample_frame_indices
from vireid_plugin.data.synthetic import make_hitsz_vcm
from vireid_plugin.engine.prompt_stage import prompt_stage_items

from tests.helpers import config_file, corrupt

SEQ = 3


def tree(root):
    make_hitsz_vcm(root, num_train=6, num_test=4, tracklets=(2, 2), lengths=(12, 13), min_len=12,
                   num_cams=2, size=(64, 32))
    return root


def manager(root, on_bad='stop'):
    return CrossModalVideoDataManager(
        root=root, sources='hitsz_vcm', targets='hitsz_vcm', height=64, width=32,
        transforms=['random_flip', 'random_erase', 'random_grayscale'], batch_size_train=8,
        num_instances=2, workers=0, seed=1, use_gpu=False, seq_len=SEQ,
        on_bad_image=on_bad, max_bad_fraction=0.5)


def test_prompt_stage_reads_each_tracklet_as_the_evaluation_does(tmp_path):
    dm = manager(tree(str(tmp_path)))
    dataset, bad_log = prompt_stage_items(dm)
    assert bad_log is None and len(dataset) == len(dm.train_set.train)
    for index in (0, 5):
        paths = dm.train_set.train[index][0]
        # by hand: the test-time chunk rule's frames through the test transform
        idx = sample_frame_indices(len(paths), SEQ, train=False)
        expected = torch.stack([dm.transform_te(Image.open(paths[int(i)]).convert('RGB'))
                                for i in idx])
        first, second = dataset[index]['img'], dataset[index]['img']
        assert torch.equal(first, expected) and torch.equal(second, expected)
    # the training set itself still draws (the joint stage's augmentation is untouched)
    assert dm.train_set.mode == 'train' and dm.train_set.transform is dm.transform_tr


def corrupt_first_frame(dm):
    paths = dm.train_set.train[0][0]
    corrupt(paths[0])     # the test-time clip always takes a tracklet's first frame
    return paths[0]


def test_skip_replaces_and_counts_in_the_prompt_stage(tmp_path):
    dm = manager(tree(str(tmp_path)), on_bad='skip')
    bad = corrupt_first_frame(dm)
    lines = []
    dataset, bad_log = prompt_stage_items(dm, log=lines.append)
    loader = torch.utils.data.DataLoader(dataset, batch_size=4)
    pids = []
    for batch in loader:
        bad_log.note(batch)
        pids += batch['pid'].tolist()
    assert pids == [it[1] for it in dm.train_set.train]   # replaced by its own identity
    assert list(bad_log.bad) == [0] and bad_log.bad[0][0] == bad
    assert len(lines) == 1 and bad in lines[0]


def run_cli(cli, root, save_dir, on_bad):
    stdout = sys.stdout
    try:
        return cli.main([
            '--config-file', config_file('demo_lsmrl.yaml'), '--root', root,
            'data.save_dir', save_dir, 'data.synthetic', 'True', 'data.workers', '0',
            'data.height', '64', 'data.width', '32', 'video.seq_len', str(SEQ),
            'train.batch_size', '8', 'train.max_epoch', '1',
            'lsmrl.stage1_epochs', '1', 'lsmrl.stage1_batch_size', '8', 'use_gpu', 'False',
            'data_cache.enabled', 'False', 'test.eval_before_train', 'False',
            'test.num_trials', '1', 'data.on_bad_image', on_bad,
            'data.max_bad_fraction', '0.5'])
    finally:
        sys.stdout = stdout


def test_a_corrupt_frame_under_skip_and_stop_through_the_cli(tmp_path, cli, capsys, one_thread):
    root = tree(str(tmp_path / 'data'))
    bad = corrupt_first_frame(manager(root))
    # stop: one message naming the file, from the prompt stage (before any training)
    save_dir = str(tmp_path / 'stop')
    assert run_cli(cli, root, save_dir, 'stop') != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and bad in err[0], err
    log = open(glob.glob(os.path.join(save_dir, 'train.log-*'))[0]).read()
    assert 'Prompt stage done' not in log and 'epoch: [1/1]' not in log
    # skip: the run finishes; the prompt stage logs and counts the replaced item
    save_dir = str(tmp_path / 'skip')
    assert run_cli(cli, root, save_dir, 'skip') == 0
    log = open(glob.glob(os.path.join(save_dir, 'train.log-*'))[0]).read()
    stage = log[:log.index('Prompt stage done')]
    assert [line for line in stage.splitlines()
            if 'Skipped an unreadable training image' in line and bad in line]
    assert 'Prompt stage: 1 unreadable training item(s) replaced' in stage
    assert np.isfinite(float(log.split('loss ')[-1].split()[0].rstrip(')')))
