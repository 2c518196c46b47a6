"""scripts/benchmark.py --quick: every section runs and reports what the docs rely on."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp('bench') / 'result.json'
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, 'scripts', 'benchmark.py'), '--quick', '--device',
         'cpu', '--threads', '1', '--variants', 'fp32-eager', 'bf16-eager', '--json', str(out)],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout, json.loads(out.read_text())


def test_quick_json_has_every_section(quick_run):
    stdout, result = quick_run
    # the JSON printed last equals the file written
    assert json.loads(stdout.strip().splitlines()[-1]) == result
    header = result['header']
    assert header['device_type'] == 'cpu' and header['quick'] is True
    assert header['threads'] == 1 and '--quick' in header['command']
    bf16, fp32 = result['matmul']
    assert (bf16['dtype'], fp32['dtype']) == ('bfloat16', 'float32')
    assert bf16['flops'] > 0 and fp32['flops'] > 0

    train = result['train']
    assert [r['variant'] for r in train] == ['fp32-eager', 'bf16-eager']
    for row in train:
        assert row['model'] == 'vit_tiny_reid' and row['config'] == 'demo.yaml'
        assert row['input'] == [8, 3, 128, 64] and row['unit'] == 'images/s'
        assert row['items_per_s'] == pytest.approx(8 / row['sec_per_step'], rel=0.01)
        # MFU = counted FLOPs per step / step time / measured bf16 peak
        assert row['mfu'] == pytest.approx(
            row['train_gflop_per_step'] * 1e9 / row['sec_per_step'] / bf16['flops'], rel=0.05)
        assert row['mfu_fp32_peak'] == pytest.approx(row['mfu'] * bf16['flops'] / fp32['flops'],
                                                     rel=0.01)
        assert row['peak_memory_gib'] > 0
    # Counted once for both variants. By hand: vit_tiny_reid (width 96, depth 4, mlp 384)
    # at 128x64, patch 16 -> 32 patches + cls = 33 tokens. Per block and token
    # (3 + 1 + 8) x 96^2 = 110,592 MACs, attention 2 x 33 x 96 = 6,336 -> 3.86M MACs per
    # block and image; 4 blocks + patch embedding 32 x 768 x 96 = 2.36M -> 17.8M MACs =
    # 35.6 MFLOP forward per image; x 8 images x 3 (backward twice the forward) = 0.85
    # GFLOP, minus the patch embedding's unneeded input gradient (0.04).
    assert train[0]['train_gflop_per_step'] == train[1]['train_gflop_per_step']
    assert 0.75 <= train[0]['train_gflop_per_step'] <= 0.85

    (loader,) = result['loader']
    # demo.yaml's loader: data.workers 0 (one core to the model on a 2-core CPU)
    assert loader['datasets'] == ['sysu_mm01'] and loader['workers'] == 0
    assert loader['batch'][0] == 8 and loader['items_per_s'] > 0

    # host syncs per training step, counted on the CPU: the engine's finite-loss check only
    (syncs,) = result['syncs']
    assert (syncs['model'], syncs['per_step']) == ('vit_tiny_reid', 1)
    assert 'host syncs per training step' in stdout


def test_quick_eval_identity_and_every_protocol_case(quick_run):
    stdout, result = quick_run
    ev = result['eval']
    assert ev['identical'] is True
    modes = {(r['dataset'], r['mode']) for r in ev['rows']}
    assert modes == {('sysu_mm01', m) for m in (
        'all-search single-shot', 'all-search multi-shot', 'indoor-search single-shot',
        'indoor-search multi-shot')} | {('regdb', 'visible->thermal'),
                                          ('regdb', 'thermal->visible'),
                                          ('hitsz_vcm', 'infrared->visible'),
                                          ('hitsz_vcm', 'visible->infrared')}
    by_mode = {r['mode']: r for r in ev['rows'] if r['dataset'] == 'sysu_mm01'}
    # the real SYSU-MM01 gallery sizes, kept in --quick
    assert [by_mode[m]['gallery'] for m in ('all-search single-shot', 'all-search multi-shot',
                                            'indoor-search single-shot',
                                            'indoor-search multi-shot')] == [301, 3010, 112, 1120]
    for row in ev['rows']:
        assert row['max_abs_diff'] < 1e-6 and row['reference_s'] > 0 and row['fast_s'] > 0
    for total in ev['totals']:
        part = [r for r in ev['rows'] if r['dataset'] == total['dataset']]
        assert total['reference_s'] == pytest.approx(sum(r['reference_s'] for r in part),
                                                     abs=0.01)
    for title in ('training step', 'training data loader', 'evaluation totals',
                  'identical (every |diff| < 1e-6): True', 'dense matmul peak'):
        assert title in stdout


def test_recipe_specs_come_from_the_configs():
    import vireid_plugin  # noqa: F401
    from vireid_plugin.benchmark import recipe_specs
    full = dict(recipe_specs(os.path.join(ROOT, 'configs')))
    # one recipe per full-size model a config names; the base recipe, not a derived one
    assert os.path.basename(full['mip_vit_base_patch16']) == 'mip_sysu.yaml'
    assert os.path.basename(full['vit_base_reid']) == 'vit_sysu.yaml'
    assert os.path.basename(full['lsmrl_clip_vit_b16']) == 'lsmrl_vcm.yaml'
    assert not any('tiny' in name for name in full)
    quick = dict(recipe_specs(os.path.join(ROOT, 'configs'), quick=True))
    assert os.path.basename(quick['vit_tiny_reid']) == 'demo.yaml'
    assert all('tiny' in name for name in quick)


def test_train_section_times_the_engines_own_step(monkeypatch):
    """Every step bench_train runs is CrossModalEngine.forward_backward, on an engine the
    runner built from the recipe: 1 counted for the FLOPs, then per variant the first step,
    warmup - 1 more and the timed ones."""
    import torch
    from vireid_plugin.benchmark import bench_train
    from vireid_plugin.engine import CrossModalEngine
    calls = []
    real = CrossModalEngine.forward_backward

    def counting(self, data):
        calls.append((self.model.training, tuple(data['img'].shape)))
        return real(self, data)

    monkeypatch.setattr(CrossModalEngine, 'forward_backward', counting)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = bench_train(os.path.join(ROOT, 'configs', 'demo.yaml'), torch.device('cpu'),
                           ['fp32-eager'], steps=2, warmup=2, batch_size=8)
    finally:
        torch.set_num_threads(threads)
    assert len(calls) == 1 + 1 + 1 + 2
    assert all(training and shape == (8, 3, 128, 64) for training, shape in calls)
    (row,) = rows
    assert row['input'] == [8, 3, 128, 64] and row['sec_per_step'] > 0


def test_loader_throughput_counts_what_it_times():
    """A list stands in for a DataLoader: two clip batches (B=3, T=2) per epoch."""
    import torch
    from vireid_plugin.benchmark import loader_throughput
    epoch = [{'img': torch.zeros(3, 2, 3, 4, 2)}, {'img': torch.zeros(3, 2, 3, 4, 2)}]
    cycled = loader_throughput(epoch, batches=5, warmup=1)
    assert (cycled['batches'], cycled['items'], cycled['images']) == (5, 15, 30)
    assert cycled['images_per_s'] == pytest.approx(30 / cycled['seconds'])
    assert cycled['batch_shape'] == [3, 2, 3, 4, 2]
    # one epoch: the warm-up batch, then the one left
    once = loader_throughput(epoch, batches=5, warmup=1, cycle=False)
    assert (once['batches'], once['items'], once['images']) == (1, 3, 6)
