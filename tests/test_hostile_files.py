"""Hostile files read and written: checkpoints that are not checkpoints, pickles that
would run code, file names that would run code when a message is pasted, TorchScript
archives (OpenAI's CLIP), and the permission bits of what the atomic writer writes."""
import os
import pickle
import re
import stat
import subprocess
import sys
import warnings
import zipfile

import pytest
import torch

from vireid_plugin.checkpoint_io import CheckpointError, atomic_write, load_checkpoint
from vireid_plugin.errors import UserError

TORCH_ADVICE = 'will likely succeed'   # torch's own text recommending weights_only=False


def small_model():
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))


class Payload:
    """Any class: unpickling it could run code."""


def _entry_points():
    """Every way a user hands the plugin a checkpoint file, as (name, call(path))."""
    from vireid_plugin.engine.checkpoint import resume
    from vireid_plugin.models import build_model, load_weights
    from vireid_plugin.visualize.run import load_run_model
    from vireid_plugin.models.weights import read_checkpoint
    from vireid_plugin.models.lsmrl.clip_towers import TINY_CONFIG, create_clip, \
        load_clip_weights
    return [
        ('--resume', lambda p: resume(p, small_model())),
        ('model.load_weights', lambda p: load_weights(small_model(), p)),
        ('model.pretrained_path', read_checkpoint),
        ('LSMRL CLIP file', lambda p: load_clip_weights(
            create_clip(TINY_CONFIG, (128, 64)), p, TINY_CONFIG)),
        ('MIP released checkpoint', lambda p: load_weights(build_model(
            'mip_vit_tiny', 4, pretrained=False, img_size=(64, 32), stride_size=16,
            num_tokens=2, num_instance_tokens=3), p)),
        ('scripts/visualize.py --checkpoint', lambda p: load_run_model(None, p)),
    ]


BAD_FILES = {
    'random.pth': lambda: bytes((i * 97 + 13) % 256 for i in range(4096)),   # not \x80/PK
    'zeros.pth': lambda: bytes(4096),          # torch reads it as a legacy .tar file
    'text.pth': lambda: b'101 this is a text file\n',   # torch's message was "101"
    'empty.pth': lambda: b'',
    'torn.pth': lambda: b'\x80\x02' + bytes(range(256)) * 4,   # a pickle header, then junk
}


@pytest.mark.parametrize('name', sorted(BAD_FILES))
def test_a_file_that_is_no_checkpoint_gets_one_line_naming_it(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(BAD_FILES[name]())
    for entry, call in _entry_points():
        with pytest.raises(UserError) as err:
            call(str(path))
        msg = str(err.value)
        assert '\n' not in msg and str(path) in msg, (entry, msg)
        assert 'expected a checkpoint written by torch.save' in msg, (entry, msg)
        # not called a pickle that could run code, and no advice to run it
        assert 'could run code' not in msg and 'weights_only=False' not in msg, (entry, msg)
        assert TORCH_ADVICE not in msg and 'legacy' not in msg.split('(')[0], (entry, msg)


def test_the_messages_say_what_the_file_is(tmp_path):
    for name, needle in (('zeros.pth', "starts with b'\\x00"), ('text.pth', "b'101 this"),
                         ('empty.pth', 'is empty (0 bytes)')):
        (tmp_path / name).write_bytes(BAD_FILES[name]())
        with pytest.raises(CheckpointError, match=re.escape(needle)):
            load_checkpoint(str(tmp_path / name))


HOSTILE_NAME = "evil'; touch PWNED; echo $(touch PWNED2) \".pth"


def test_unsafe_pickle_refusal_quotes_the_path_and_offers_the_safe_remedy_first(tmp_path):
    path = tmp_path / HOSTILE_NAME
    torch.save({'state_dict': {}, 'payload': Payload()}, str(path))
    for entry, call in _entry_points():
        with pytest.raises(UserError) as err:
            call(str(path))
        msg = str(err.value)
        assert '\n' not in msg and TORCH_ADVICE not in msg, (entry, msg)
        assert 'Payload' in msg and 'could run code' in msg, (entry, msg)
        safe = msg.index('get_unsafe_globals_in_checkpoint')
        assert safe < msg.index('add_safe_globals') < msg.index('weights_only=False'), msg
    # the command it prints is safe to paste: the shell runs nothing from the file name
    command = re.search(r'list them with (python -c .*?) and load with', msg).group(1)
    work = tmp_path / 'shell'
    work.mkdir()
    out = subprocess.run(['bash', '-c', command.replace('python', sys.executable, 1)],
                         cwd=str(work), capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert 'Payload' in out.stdout   # it lists the one unsafe name, running nothing
    assert os.listdir(str(work)) == []   # no PWNED, no PWNED2


def test_a_path_with_a_newline_is_shown_escaped(tmp_path):
    path = tmp_path / 'two\nlines.pth'
    path.write_bytes(b'junk')
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(str(path))
    assert '\n' not in str(err.value) and "two\\nlines.pth'" in str(err.value)


def test_torch_errors_from_libraries_lose_the_advice_to_load_unsafely():
    """timm and open_clip call torch.load themselves: their errors reach the user through
    torch_error_detail, which keeps what failed and drops torch's weights_only=False text."""
    from vireid_plugin.checkpoint_io import torch_error_detail
    import pickle as _pickle
    for text, kept in (
            ('Weights only load failed. In PyTorch 2.6, we changed the default value of the '
             '`weights_only` argument in `torch.load` from `False` to `True`. Re-running '
             '`torch.load` with `weights_only` set to `False` will likely succeed, but it can '
             'result in arbitrary code execution.\n\n\nTrying to load unsupported GLOBAL '
             'posix.system whose module posix is blocked.\n\nCheck the documentation of '
             'torch.load', 'Trying to load unsupported GLOBAL posix.system'),
            ('Weights only load failed. ... will likely succeed ...\nPlease file an issue '
             'with the following so that we can make `weights_only=True` compatible with your '
             'use case: WeightsUnpickler error: \n\nUnsupported operand 50\n\nCheck the '
             'documentation', 'Unsupported operand 50')):
        detail = torch_error_detail(_pickle.UnpicklingError(text))
        assert kept in detail and 'weights_only' not in detail and TORCH_ADVICE not in detail
        assert '\n' not in detail


# ---------------------------------------------------------------- TorchScript archives

def _tiny_scripted_clip(path):
    """A traced open_clip CLIP of the LSMRL tiny config: the key names of OpenAI's
    ViT-B-16.pt (plus its non-parameter input_resolution), saved as a TorchScript archive."""
    from vireid_plugin.models.lsmrl.clip_towers import TINY_CONFIG, create_clip
    torch.manual_seed(3)
    model = create_clip(TINY_CONFIG, (128, 64), quick_gelu=True).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_()   # values no fresh model has
    model.register_buffer('input_resolution', torch.tensor(128))
    model.output_dict = False
    with warnings.catch_warnings():   # tracing's and torch.jit's deprecation notes
        warnings.simplefilter('ignore')
        traced = torch.jit.trace(model, (torch.randn(1, 3, 128, 64),
                                         torch.randint(0, 100, (1, 77))), check_trace=False)
    traced.save(str(path))
    del model._buffers['input_resolution']
    return model


def test_the_openai_torchscript_clip_loads_without_running_it(tmp_path, monkeypatch):
    from vireid_plugin.models.lsmrl.clip_towers import TINY_CONFIG, create_clip, \
        load_clip_weights
    path = tmp_path / 'ViT-B-16.pt'
    reference = _tiny_scripted_clip(path)
    assert zipfile.is_zipfile(str(path)) and any(
        n.endswith('/constants.pkl') for n in zipfile.ZipFile(str(path)).namelist())

    def refuse(*args, **kwargs):
        raise AssertionError('the archive must not be run (torch.jit.load / torch.load)')
    monkeypatch.setattr(torch.jit, 'load', refuse)
    monkeypatch.setattr(torch, 'load', refuse)
    model = create_clip(TINY_CONFIG, (128, 64), quick_gelu=True)
    load_clip_weights(model, str(path), TINY_CONFIG)
    got, want = model.state_dict(), reference.state_dict()
    assert set(got) == set(want)
    for key in want:
        assert torch.equal(got[key], want[key]), key


def test_a_torchscript_archive_naming_python_code_is_refused(tmp_path):
    marker = tmp_path / 'RAN'

    class Evil:
        def __reduce__(self):
            return os.system, ('touch {}'.format(marker),)
    path = tmp_path / 'evil.pt'
    with zipfile.ZipFile(str(path), 'w') as z:
        z.writestr('evil/data.pkl', pickle.dumps(Evil(), protocol=2))
        z.writestr('evil/constants.pkl', pickle.dumps((), protocol=2))
        z.writestr('evil/version', '3\n')
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(str(path))
    assert not marker.exists()
    msg = str(err.value)
    assert 'TorchScript archive {}'.format(path) in msg and 'system' in msg and '\n' not in msg


def test_a_torchscript_tensor_past_its_storage_is_refused(tmp_path):
    src = tmp_path / 'ok.pt'
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.jit.script(torch.nn.Linear(2, 3)).save(str(src))
    bad = tmp_path / 'short.pt'
    with zipfile.ZipFile(str(src)) as a, zipfile.ZipFile(str(bad), 'w') as b:
        for info in a.infolist():
            data = a.read(info)
            b.writestr(info, data[:4] if '/data/' in info.filename else data)
    with pytest.raises(CheckpointError, match='short.pt.*bytes'):
        load_checkpoint(str(bad))


# ---------------------------------------------------------------- modes of written files

@pytest.fixture
def umask():
    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


@pytest.mark.parametrize('mask,expected', [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600),
                                           (0o000, 0o666)])
def test_a_new_file_gets_0666_less_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    path = str(tmp_path / 'results.json')
    atomic_write(path, lambda f: f.write('[]'), mode='w')
    assert stat.S_IMODE(os.stat(path).st_mode) == expected


@pytest.mark.parametrize('existing', [0o640, 0o600, 0o664, 0o444])
def test_a_replaced_file_keeps_its_mode(tmp_path, umask, existing):
    umask(0o022)
    path = str(tmp_path / 'model.pth.tar-1')
    with open(path, 'w') as f:
        f.write('old')
    os.chmod(path, existing)
    atomic_write(path, lambda f: f.write(b'new'))
    assert stat.S_IMODE(os.stat(path).st_mode) == existing
    with open(path, 'rb') as f:
        assert f.read() == b'new'


def test_a_checkpoint_in_the_pre_1_6_format_still_loads(tmp_path):
    path = str(tmp_path / 'old.pth')
    torch.save({'state_dict': {'w': torch.arange(3.0)}}, path,
               _use_new_zipfile_serialization=False)
    assert torch.equal(load_checkpoint(path)['state_dict']['w'], torch.arange(3.0))


def test_a_safetensors_file_under_another_name_loads(tmp_path):
    from safetensors.torch import save_file
    path = str(tmp_path / 'weights.pth')
    save_file({'w': torch.ones(2)}, path)
    assert torch.equal(load_checkpoint(path)['w'], torch.ones(2))
