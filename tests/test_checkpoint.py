import numpy as np
import pytest
import torch

from vireid_plugin.engine import (CheckpointError, load_checkpoint, load_weights, resume,
                                  save_checkpoint)
from vireid_plugin.optim import WarmupCosineLR


def small_model():
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))


def test_save_with_numpy_scalars_and_no_scheduler_loads_weights_only(tmp_path):
    model = small_model()
    path = str(tmp_path / 'm' / 'model.pth.tar-3')
    # torchreid stores rank1 as a numpy float32 and crashes on scheduler=None
    save_checkpoint({'state_dict': model.state_dict(), 'epoch': 3,
                     'rank1': np.float32(0.25), 'scheduler': None}, path)
    ckpt = torch.load(path, weights_only=True)  # the torch >= 2.6 default
    assert ckpt['epoch'] == 3 and ckpt['rank1'] == pytest.approx(0.25)
    assert isinstance(ckpt['rank1'], float)


def test_resume_restores_model_optimizer_scheduler(tmp_path):
    torch.manual_seed(0)
    model = small_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = WarmupCosineLR(opt, total_iters=10, warmup_iters=2)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(5, 4)).sum().backward()
        opt.step()
        sched.step()
    path = str(tmp_path / 'ckpt.pth')
    save_checkpoint({'state_dict': model.state_dict(), 'epoch': 2,
                     'optimizer': opt.state_dict(), 'scheduler': sched.state_dict()}, path)

    model2 = small_model()
    opt2 = torch.optim.SGD(model2.parameters(), lr=0.1, momentum=0.9)
    sched2 = WarmupCosineLR(opt2, total_iters=10, warmup_iters=2)
    assert resume(path, model2, opt2, sched2) == 2
    for a, b in zip(model.state_dict().values(), model2.state_dict().values()):
        assert torch.equal(a, b)
    assert opt2.param_groups[0]['lr'] == pytest.approx(opt.param_groups[0]['lr'])
    assert sched2.last_epoch == 3
    mom = opt.state_dict()['state'][0]['momentum_buffer']
    assert torch.equal(opt2.state_dict()['state'][0]['momentum_buffer'], mom)


def test_overwrite_is_atomic_when_save_fails(tmp_path):
    path = str(tmp_path / 'ckpt.pth')
    save_checkpoint({'epoch': 1}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError('boom')

    with pytest.raises(RuntimeError):
        save_checkpoint({'epoch': 2, 'bad': Unpicklable()}, path)
    assert load_checkpoint(path)['epoch'] == 1  # the good file is still there
    assert [p.name for p in tmp_path.iterdir()] == ['ckpt.pth']  # no temp file left


def test_loading_errors_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match='not found: .*missing.pth'):
        load_checkpoint(str(tmp_path / 'missing.pth'))
    junk = tmp_path / 'junk.pth'
    junk.write_bytes(b'not a torch file')
    with pytest.raises(CheckpointError, match='junk.pth'):
        load_checkpoint(str(junk))
    other = tmp_path / 'other.pth'
    torch.save({'state_dict': {'x.weight': torch.zeros(2)}, 'epoch': 1}, str(other))
    with pytest.raises(CheckpointError, match='other.pth.*does not fit'):
        load_weights(small_model(), str(other))
    notrain = tmp_path / 'weights_only.pth'
    torch.save(small_model().state_dict(), str(notrain))
    with pytest.raises(CheckpointError, match='not a training checkpoint'):
        resume(str(notrain), small_model())


def test_load_weights_strict_by_default_lists_mismatched_shapes(tmp_path):
    src = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 7))  # 7 classes
    dst = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 5))  # 5 classes
    path = str(tmp_path / 'w.pth')
    torch.save({'state_dict': {'module.' + k: v for k, v in src.state_dict().items()}}, path)
    with pytest.raises(CheckpointError) as err:
        load_weights(dst, path)
    msg = str(err.value)
    assert 'w.pth' in msg and '1.weight (file (7, 3), model (5, 3))' in msg
    assert '1.bias (file (7,), model (5,))' in msg and 'load_weights_strict' in msg
    assert not torch.equal(dst[0].weight, src[0].weight)   # nothing was loaded


def test_load_weights_relaxed_skips_shape_mismatch_and_strips_module_prefix(tmp_path):
    src = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 7))
    dst = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Linear(3, 5))
    path = str(tmp_path / 'w.pth')
    torch.save({'state_dict': {'module.' + k: v for k, v in src.state_dict().items()}}, path)
    report = load_weights(dst, path, strict=False)
    assert report.loaded == ['0.bias', '0.weight']
    assert [m[0] for m in report.mismatched] == ['1.weight', '1.bias']
    assert 'skipped, shape differs: 1.weight (file (7, 3), model (5, 3))' in report.summary()
    assert torch.equal(dst[0].weight, src[0].weight)


def test_warmup_cosine_values():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    s = WarmupCosineLR(opt, total_iters=12, warmup_iters=2, warmup_factor=0.1, min_lr_factor=0.0)
    lrs = []
    for _ in range(13):
        lrs.append(opt.param_groups[0]['lr'])
        opt.step()
        s.step()
    # warmup: 0.1, then 0.1 + 0.9 * 1/2; cosine over 10 iterations from 1 to 0
    assert lrs[0] == pytest.approx(0.1) and lrs[1] == pytest.approx(0.55)
    assert lrs[2] == pytest.approx(1.0)
    assert lrs[7] == pytest.approx(0.5)          # halfway: (1 + cos(pi/2)) / 2
    assert lrs[12] == pytest.approx(0.0, abs=1e-12)


def test_checkpoint_written_by_torchreid_loads(tmp_path):
    """torchreid's save_checkpoint stores rank1 as a numpy scalar (its #592 on torch >= 2.6)."""
    model = small_model()
    path = str(tmp_path / 'model.pth.tar-60')
    torch.save({'state_dict': model.state_dict(), 'epoch': 60, 'rank1': np.float32(0.75),
                'optimizer': None}, path)   # what torchreid writes, minus its optimizer
    ckpt = load_checkpoint(path)
    assert ckpt['rank1'] == pytest.approx(0.75)
    other = small_model()
    assert resume(path, other) == 60
    assert torch.equal(other[0].weight, model[0].weight)


class Payload:
    """Any class: unpickling it could run code, so weights_only loading must refuse it."""


def test_arbitrary_pickles_are_still_refused(tmp_path):
    path = str(tmp_path / 'evil.pth')
    torch.save({'state_dict': {}, 'payload': Payload()}, path)
    with pytest.raises(CheckpointError, match='evil.pth'):
        load_checkpoint(path)


def test_a_mapped_read_gives_the_same_tensors_in_both_file_formats(tmp_path):
    """load_checkpoint(mmap=True), the look preflight takes at a checkpoint: the same keys,
    shapes and values as a full read, for torch's zip format (mapped) and its legacy format
    (which cannot be mapped, and is read)."""
    state = {'w': torch.arange(12.).view(3, 4), 'b': torch.ones(2, dtype=torch.float64)}
    for name, kwargs in (('zip.pth', {}), ('legacy.pth',
                                           {'_use_new_zipfile_serialization': False})):
        path = tmp_path / name
        torch.save({'state_dict': state, 'epoch': 3}, str(path), **kwargs)
        full, mapped = load_checkpoint(str(path)), load_checkpoint(str(path), mmap=True)
        assert mapped['epoch'] == full['epoch'] == 3
        for key, value in state.items():
            assert torch.equal(mapped['state_dict'][key], value)
            assert mapped['state_dict'][key].dtype == value.dtype
