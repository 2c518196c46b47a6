"""scripts/gpu_check.py on a machine without a GPU: one line says so, the checks a CPU can
run (host syncs per step, LSMRL's text bank after fused AdamW) pass, the rest is SKIP
with its reason, and the summary counts them. (On a GPU the same script runs every
check; no GPU was available where it was written, see docs/fast-path.md.)"""
import io

import pytest
import torch

from vireid_plugin.benchmark.gpu_check import MODELS, run_checks

pytestmark = pytest.mark.usefixtures('one_thread')


def test_gpu_check_on_a_cpu_machine(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: False)
    out = io.StringIO()
    report = run_checks(out=out)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith('No CUDA device here: the GPU checks need one')
    status = {line.split(':')[0].split(' ', 1)[1]: line.split(' ', 1)[0] for line in lines[1:-1]}
    for name, _ in MODELS:
        assert status['syncs ' + name] == 'PASS'
        assert status['step ' + name] == 'SKIP'
    assert status['text_bank lsmrl (fused AdamW)'] == 'PASS'
    assert status['amp auto'] == status['ddp 2 GPUs'] == status['tf32 evaluation'] == 'SKIP'
    assert status['draws cuda = cpu'] == 'SKIP'
    assert report.counts == {'PASS': 4, 'FAIL': 0, 'SKIP': 8}
    assert lines[-1] == '4 passed, 0 failed, 8 skipped'

