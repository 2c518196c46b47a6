"""The first run on a GPU: one short script that confirms on hardware what the CPU tests
emulate (issue 28). ``python scripts/gpu_check.py`` prints one ``PASS``/``FAIL``/``SKIP``
line per check and a summary; exit status 1 when any check fails.

Checks (tiny models of the demo configs, random batches laid out as the cross-modal
sampler lays them out; a few minutes on one GPU):

- ``amp``: ``train.amp auto`` is bf16 exactly when the GPU computes bf16 natively
  (compute capability >= 8.0), else fp16 with a GradScaler;
- ``step``: one training step per model (ViT, MIP, LSMRL) in bf16 and in fp16, eager and
  compiled (``torch.compile``), through the engine's own ``forward_backward`` with the
  optimizer a GPU run builds (fused): finite loss, weights moved;
- ``syncs``: host syncs per training step on the device (the counting dispatch mode):
  one, the engine's finite-loss check;
- ``text_bank``: LSMRL evaluated twice with fused AdamW steps between: the second
  evaluation equals a fresh encoding of the prompts;
- ``resume``: a CPU-written (foreach) AdamW checkpoint resumed with fused AdamW on the
  GPU: ``step`` on the device, the next step runs;
- ``tf32``: fp32 evaluation features against float64 (TF32 off inside extraction), and
  what ``test.tf32 True`` changes;
- ``draws``: the cache path's per-item augmentation draws (splitmix64 in wrapping int64
  products) are the same numbers on the GPU as on the CPU, where a test checks them
  against the definition in Python integers;
- ``ddp``: with 2 or more GPUs, 2 NCCL processes train MIP 3 steps with
  ``find_unused_parameters`` auto (False): equal weights on both ranks, different CUDA
  random streams (seed + rank).

Without a GPU it says so in one line, runs the parts a CPU can (``syncs`` and
``text_bank`` on the CPU, the fused CPU kernels) and marks the rest SKIP.
"""
import argparse
import copy
import os
import socket
import sys
import time

import torch

__all__ = ['main', 'run_checks']

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = (('vit_tiny_reid', 'demo.yaml'), ('mip_vit_tiny', 'demo_mip.yaml'),
          ('lsmrl_clip_tiny', 'demo_lsmrl.yaml'))
SMALL = ['train.batch_size', '8', 'sampler.num_instances', '2']


class Report:
    def __init__(self, out=sys.stdout):
        self.out, self.counts = out, {'PASS': 0, 'FAIL': 0, 'SKIP': 0}

    def line(self, status, name, detail):
        self.counts[status] += 1
        print('{} {}: {}'.format(status, name, detail), file=self.out, flush=True)

    def check(self, name, fn):
        """Run ``fn() -> (ok, detail)``; an exception is a FAIL naming it."""
        try:
            ok, detail = fn()
        except Exception as exc:   # a check that crashes is a failed check
            ok, detail = False, '{}: {}'.format(type(exc).__name__, str(exc).splitlines()[0]
                                                if str(exc) else '')
        self.line('PASS' if ok else 'FAIL', name, detail)


def _config(name, extra=()):
    from ..config import load_config
    path = os.path.join(REPO, 'configs', dict((m, c) for m, c in MODELS)[name])
    return load_config(path, SMALL + ['model.pretrained', 'False'] + list(extra))


def _engine(cfg, device):
    """(engine, batch) of ``cfg`` on ``device`` with the optimizer a GPU run builds."""
    from ..runner import build_criterion, build_engine, build_reid_model, build_solver
    from .train_step import NUM_CAMERAS, NUM_CLASSES, RandomBatch
    torch.manual_seed(0)
    model = build_reid_model(cfg, NUM_CLASSES, NUM_CAMERAS).to(device)
    criterion = build_criterion(cfg, model, NUM_CLASSES).to(device)
    source = RandomBatch(cfg, device)
    optimizer, scheduler = build_solver(cfg, [model, criterion], 1, torch.device('cuda'))
    engine = build_engine(cfg, source, model, criterion, optimizer, scheduler,
                          use_gpu=device.type == 'cuda')
    engine.set_model_mode('train')
    if hasattr(engine.criterion, 'set_epoch'):
        engine.criterion.set_epoch(cfg.train.max_epoch - 1)   # every term on (MSEL)
    return engine, source.batch


def check_amp(device):
    from ..engine.precision import Precision
    cap = torch.cuda.get_device_capability(device)
    p = Precision('auto', device)
    want = 'bf16' if cap >= (8, 0) else 'fp16'
    return p.mode == want and (p.scaler is not None) == (want == 'fp16'), \
        'compute capability {}.{} -> {} ({} GradScaler)'.format(
            cap[0], cap[1], p.mode, 'with' if p.scaler is not None else 'no')


def check_step(name, device, amp, compiled):
    cfg = _config(name, ['train.amp', amp, 'train.compile', str(compiled)])
    engine, batch = _engine(cfg, device)
    before = [p.detach().clone() for p in engine.model.parameters() if p.requires_grad]
    start = time.time()
    summary = None
    for _ in range(2):
        summary = engine.forward_backward(batch)
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    after = [p for p in engine.model.parameters() if p.requires_grad]
    moved = sum(not torch.equal(a, b.detach()) for a, b in zip(before, after))
    loss = float(summary['loss']) if summary else float('nan')
    ok = summary is not None and torch.isfinite(torch.tensor(loss)) and moved > 0
    return ok, 'loss {:.4f}, {}/{} parameter tensors moved, {:.1f} s for 2 steps'.format(
        loss, moved, len(after), time.time() - start)


def check_syncs(name, device):
    from .host_syncs import count_step_syncs
    engine, batch = _engine(_config(name, ['train.amp', 'off']), device)
    per_step, sites = count_step_syncs(engine, batch)
    return per_step == 1, '{:g} per step ({})'.format(per_step, '; '.join(
        '{:g} x {} at {}'.format(n, op, where) for (op, where), n in sites.items()))


def check_text_bank(device):
    from ..models import build_model
    torch.manual_seed(0)
    model = build_model('lsmrl_clip_tiny', 4, pretrained=False).to(device)
    opt = torch.optim.AdamW(model.prompt_parameters(), lr=1e-2, fused=True)
    x = torch.randn(4, 2, 3, 128, 64, device=device)
    model.eval()
    with torch.no_grad():
        model(x)
    model.train()
    for _ in range(3):
        opt.zero_grad()
        model.prompt_text_features(torch.arange(4, device=device)).pow(2).sum().backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        second = model(x)
        model._text_cache = None
        fresh = model(x)
    diff = float((second - fresh).abs().max())
    return diff == 0.0, '2nd evaluation vs fresh text bank: max |diff| {:.1e}'.format(diff)


def check_resume(device):
    from ..engine.checkpoint import restore_training_state
    torch.manual_seed(0)
    cpu_model = torch.nn.Linear(8, 4)
    cpu_opt = torch.optim.AdamW(cpu_model.parameters(), lr=0.1, foreach=True)
    for _ in range(2):
        cpu_opt.zero_grad()
        cpu_model(torch.randn(4, 8)).pow(2).sum().backward()
        cpu_opt.step()
    ckpt = copy.deepcopy({'state_dict': cpu_model.state_dict(), 'epoch': 1,
                          'optimizer': cpu_opt.state_dict()})
    model = torch.nn.Linear(8, 4).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1, fused=True)
    restore_training_state(ckpt, 'cpu-written', model, opt)
    steps = {str(opt.state[p]['step'].device) for p in model.parameters()}
    opt.zero_grad()
    model(torch.randn(4, 8, device=device)).pow(2).sum().backward()
    opt.step()
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    ok = steps == {str(next(model.parameters()).device)} and \
        bool(torch.isfinite(model.weight).all())
    return ok, "state['step'] on {}; a fused step ran".format(', '.join(sorted(steps)))


def check_tf32(device):
    from ..engine.precision import Precision
    from ..models import build_model
    torch.manual_seed(0)
    model = build_model('vit_tiny_reid', 4, pretrained=False).to(device).eval()
    x = torch.randn(16, 3, 128, 64, device=device)
    saved = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = True   # as the runner sets it for training
    try:
        with torch.no_grad():
            exact = copy.deepcopy(model).double()(x.double())
            with Precision('off', device, tf32=False).autocast():
                fp32 = model(x).double()
            with Precision('off', device, tf32=True).autocast():
                tf32 = model(x).double()
    finally:
        torch.backends.cuda.matmul.allow_tf32 = saved
    rel = lambda a: float((a - exact).norm() / exact.norm())   # noqa: E731
    return rel(fp32) < 1e-5, 'relative feature error vs float64: fp32 {:.1e}, tf32 {:.1e}'.format(
        rel(fp32), rel(tf32))


def check_draws(device):
    from ..data.batch_augment import ItemDraws
    seeds = torch.randint(2 ** 62, (4096,), generator=torch.Generator().manual_seed(0))
    seeds[:3] = torch.tensor([0, 1, 2 ** 62 - 1])
    on_cpu, on_device = ItemDraws(seeds), ItemDraws(seeds.to(device))
    same = all(torch.equal(on_cpu.rand(4096, 7), on_device.rand(4096, 7).cpu())
               for _ in range(3))
    return same, '3 requests of 4096 x 7 draws: identical on {} and the CPU: {}'.format(
        device, same)


def _ddp_worker(rank, world, port, queue):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    from .. import distributed
    from ..data.seeded import seed_cuda
    try:
        info = distributed.init_distributed(use_gpu=True)
        seed_cuda(0, info.rank, info.device)
        cfg = _config('mip_vit_tiny', ['train.amp', 'bf16'])
        engine, batch = _engine(cfg, info.device)
        for _ in range(3):
            engine.forward_backward(batch)
        weights = torch.cat([p.detach().flatten() for p in engine.model.parameters()])
        digest = float(weights.double().sum())
        mask = torch.rand(1000, device=info.device).cpu()
        queue.put((rank, engine.train_model.find_unused_parameters, digest, mask))
    except Exception as exc:
        queue.put((rank, 'error', repr(exc), None))
    finally:
        distributed.shutdown()


def check_ddp():
    import torch.multiprocessing as mp
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]
    ctx = mp.get_context('spawn')
    queue = ctx.SimpleQueue()
    mp.start_processes(_ddp_worker, args=(2, port, queue), nprocs=2, join=True,
                       start_method='spawn')
    rows = sorted(queue.get() for _ in range(2))
    errors = [r for r in rows if r[1] == 'error']
    if errors:
        return False, '; '.join('rank {}: {}'.format(r[0], r[2]) for r in errors)
    (_, unused0, w0, m0), (_, unused1, w1, m1) = rows
    ok = unused0 is False and unused1 is False and w0 == w1 and not torch.equal(m0, m1)
    return ok, ('find_unused_parameters {}; weights equal on both ranks: {}; CUDA random '
                'streams differ: {}').format(unused0, w0 == w1, not torch.equal(m0, m1))


def run_checks(device=None, out=sys.stdout):
    """Every check on ``device`` (default: cuda when available); returns the Report."""
    report = Report(out)
    on_gpu = torch.cuda.is_available() and (device is None or torch.device(device).type ==
                                            'cuda')
    device = torch.device(device) if device is not None else torch.device(
        'cuda' if on_gpu else 'cpu')
    if device.type == 'cuda' and device.index is None:
        device = torch.device('cuda', torch.cuda.current_device())
    if on_gpu:
        torch.cuda.set_device(device)
        print('device: {} (compute capability {}.{}), torch {}'.format(
            torch.cuda.get_device_name(device), *torch.cuda.get_device_capability(device),
            torch.__version__), file=out, flush=True)
    else:
        print('No CUDA device here: the GPU checks need one (run this on a machine with a '
              'GPU). Running the parts a CPU can (host-sync counting, the LSMRL text bank '
              'with fused CPU AdamW); the others are SKIP.', file=out, flush=True)
    if on_gpu:
        report.check('amp auto', lambda: check_amp(device))
    else:
        report.line('SKIP', 'amp auto', 'needs a GPU (compute capability)')
    for name, _ in MODELS:
        if not on_gpu:
            report.line('SKIP', 'step {}'.format(name), 'bf16 / fp16 / compiled need a GPU')
            continue
        for amp in ('bf16', 'fp16'):
            for compiled in (False, True):
                report.check('step {} {} {}'.format(name, amp, 'compiled' if compiled
                                                    else 'eager'),
                             lambda: check_step(name, device, amp, compiled))
    for name, _ in MODELS:
        report.check('syncs {}'.format(name), lambda: check_syncs(name, device))
    report.check('text_bank lsmrl (fused AdamW)', lambda: check_text_bank(device))
    if on_gpu:
        report.check('resume cpu->fused', lambda: check_resume(device))
        report.check('tf32 evaluation', lambda: check_tf32(device))
        report.check('draws cuda = cpu', lambda: check_draws(device))
    else:
        report.line('SKIP', 'resume cpu->fused', 'needs a GPU')
        report.line('SKIP', 'tf32 evaluation', 'needs a GPU with TF32 (Ampere or newer)')
        report.line('SKIP', 'draws cuda = cpu', 'needs a GPU')
    if on_gpu and torch.cuda.device_count() >= 2:
        report.check('ddp 2 GPUs', check_ddp)
    else:
        report.line('SKIP', 'ddp 2 GPUs', 'needs 2 GPUs ({} here)'.format(
            torch.cuda.device_count() if torch.cuda.is_available() else 0))
    c = report.counts
    print('{} passed, {} failed, {} skipped'.format(c['PASS'], c['FAIL'], c['SKIP']),
          file=out, flush=True)
    return report


def main(argv=None):
    p = argparse.ArgumentParser(description='Confirm the GPU paths on hardware (issue 28): '
                                'PASS/FAIL/SKIP lines, exit status 1 on a failure.')
    p.add_argument('--device', default=None, help='e.g. cuda:0 (default: cuda if present)')
    args = p.parse_args(argv)
    report = run_checks(args.device)
    return 1 if report.counts['FAIL'] else 0
