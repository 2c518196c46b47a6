"""scripts/download_weights.py offline, and pretrained=True offline: one message, at once."""
import hashlib
import importlib.util
import json
import os
import socket
import time

import pytest

from vireid_plugin.models import download, hub
from vireid_plugin.models.weights import PretrainedWeightsError, download_timm_weights

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _script():
    spec = importlib.util.spec_from_file_location(
        'vireid_download_weights', os.path.join(REPO, 'scripts', 'download_weights.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def closed_port():
    """A local port nothing listens on: connecting is refused at once (a real socket)."""
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture
def offline(monkeypatch, closed_port):
    """Every source's host is the closed local port; the Hugging Face cache is empty."""
    monkeypatch.setattr(hub, 'host_port', lambda url: ('127.0.0.1', closed_port))
    monkeypatch.setattr(hub, 'cached_hub_file', lambda repo, files: None)
    monkeypatch.delenv('HF_HUB_OFFLINE', raising=False)


def test_offline_download_says_what_to_fetch_by_hand_within_5s(offline, tmp_path, capsys):
    start = time.time()
    rc = _script().main(['--cache-dir', str(tmp_path)])
    elapsed = time.time() - start
    err = capsys.readouterr().err
    assert rc == 1 and elapsed < 5
    assert err.startswith('error: offline: cannot reach 127.0.0.1:')
    for source in download.SOURCES:   # every file: where from, where to
        assert source.url in err and os.path.join(str(tmp_path), source.target) in err
    assert 'drive.google.com/drive/folders/' + download.MIP_DRIVE_FOLDER in err


def test_pretrained_true_offline_fails_at_once_naming_the_download_script(offline):
    start = time.time()
    with pytest.raises(PretrainedWeightsError, match='download_weights.py') as info:
        download_timm_weights('vit_small_patch16_224')
    assert time.time() - start < 5
    assert 'model.pretrained_path' in str(info.value)


def test_hf_hub_offline_variable_needs_no_network(monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    assert hub.hub_offline_reason() == 'HF_HUB_OFFLINE is set'


def test_present_files_are_verified_and_unknown_hashes_recorded(tmp_path, monkeypatch, capsys):
    """No network needed when every file is there; a published hash must match, a file
    without one gets its SHA-256 recorded, and a later change to it is refused."""
    data = b'weights'
    good = hashlib.sha256(data).hexdigest()
    sources = (
        download.WeightSource('a', 'file with a published hash', 'url', 'https://x/a.pt',
                              'a.pt', 'model.pretrained_path {path}', sha256=good),
        download.WeightSource('b', 'folder without hashes', 'gdrive_folder', 'ID', 'b',
                              'model.load_weights {path}'))
    monkeypatch.setattr(download, 'SOURCES', sources)
    monkeypatch.setattr(download, 'offline_hosts', lambda *a, **k: pytest.fail('network'))
    (tmp_path / 'a.pt').write_bytes(data)
    (tmp_path / 'b').mkdir()
    (tmp_path / 'b' / 'sysu.pth').write_bytes(b'checkpoint')
    lines = download.download_all(str(tmp_path), log=print)
    out = capsys.readouterr().out
    assert lines == {'a': ['model.pretrained_path ' + str(tmp_path / 'a.pt')],
                     'b': ['model.load_weights ' + str(tmp_path / 'b' / 'sysu.pth')]}
    assert 'matches the published SHA-256' in out and 'no published hash' in out
    manifest = json.loads((tmp_path / 'manifest.json').read_text())
    assert manifest[os.path.join('b', 'sysu.pth')] == hashlib.sha256(b'checkpoint').hexdigest()
    (tmp_path / 'b' / 'sysu.pth').write_bytes(b'changed')
    with pytest.raises(download.DownloadError, match='recorded at its download'):
        download.download_all(str(tmp_path), log=print)
    (tmp_path / 'a.pt').write_bytes(b'other')
    with pytest.raises(download.DownloadError, match='does not match the published'):
        download.download_all(str(tmp_path), keys=['a'], log=print)


def test_a_file_in_the_hub_cache_loads_without_the_network(monkeypatch, closed_port, tmp_path):
    import timm
    import torch
    from safetensors.torch import save_file
    reference = timm.create_model('vit_tiny_patch16_224', pretrained=False, num_classes=0)
    torch.nn.init.constant_(reference.cls_token, 0.25)
    path = str(tmp_path / 'model.safetensors')
    save_file(reference.state_dict(), path)
    asked = []
    monkeypatch.setattr(hub, 'cached_hub_file', lambda repo, files: asked.append(repo) or path)
    monkeypatch.setattr(hub, 'host_port', lambda url: ('127.0.0.1', closed_port))
    state = download_timm_weights('vit_tiny_patch16_224')
    assert asked == ['timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k']
    assert torch.equal(state['cls_token'], reference.cls_token.detach())
