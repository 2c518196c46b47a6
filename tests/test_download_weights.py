"""scripts/download_weights.py offline, and pretrained=True offline: one message, at once.

The hub check goes through huggingface_hub's own HTTP client, so these tests make the
network unreachable the way a user's machine is: a closed local port as the hub
(``HF_ENDPOINT``) and as the proxy (``HTTPS_PROXY`` / ``HTTP_PROXY``)."""
import hashlib
import http.server
import importlib.util
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from vireid_plugin.models import download, hub
from vireid_plugin.models.weights import PretrainedWeightsError, download_timm_weights

from tests.helpers import REPO

PROXY_VARS = ('HTTPS_PROXY', 'HTTP_PROXY', 'ALL_PROXY', 'NO_PROXY')
# a fresh interpreter runs the script and reports which heavy modules it imported
RUN_SCRIPT = """
import json, runpy, sys
sys.argv = ['download_weights.py', '--cache-dir', {cache!r}]
try:
    runpy.run_path({script!r}, run_name='__main__')
    rc = 0
except SystemExit as exc:
    rc = exc.code
heavy = [m for m in ('torchreid', 'torch', 'timm', 'open_clip', 'cv2', 'scipy')
         if m in sys.modules]
print(json.dumps({{'rc': rc, 'heavy': heavy}}))
"""


def _script():
    spec = importlib.util.spec_from_file_location(
        'vireid_download_weights', os.path.join(REPO, 'scripts', 'download_weights.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def close_hub_session():
    """huggingface_hub's shared client reads the proxy settings when it is created."""
    from huggingface_hub import utils
    (getattr(utils, 'close_session', None) or utils.reset_sessions)()


@pytest.fixture
def network_env(monkeypatch):
    """Set proxy/hub variables for one test (both spellings cleared first), with a fresh
    huggingface_hub client before and after."""
    for var in PROXY_VARS + ('HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE', 'HF_ENDPOINT'):
        monkeypatch.delenv(var, raising=False)
        monkeypatch.delenv(var.lower(), raising=False)
    close_hub_session()
    yield monkeypatch.setenv
    close_hub_session()


@pytest.fixture
def closed_port():
    """A local port nothing listens on: connecting is refused at once (a real socket)."""
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port


def offline_env(closed_port):
    closed = 'http://127.0.0.1:{}'.format(closed_port)
    return {'HF_ENDPOINT': closed, 'HTTPS_PROXY': closed, 'HTTP_PROXY': closed}


@pytest.fixture
def offline(network_env, monkeypatch, closed_port):
    """The hub and every other host only through a proxy that refuses; the Hugging Face
    cache is empty."""
    for var, value in offline_env(closed_port).items():
        network_env(var, value)
    monkeypatch.setattr(hub, 'cached_hub_file', lambda repo, files: None)
    return closed_port


def test_offline_download_says_what_to_fetch_by_hand(offline, tmp_path, capsys):
    rc = _script().main(['--cache-dir', str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 1
    assert err.startswith('error: offline: cannot reach ')
    # each host, named with the proxy it was asked through
    proxy = 'through the proxy http://127.0.0.1:{} set in the environment'.format(offline)
    for host in ('http://127.0.0.1:{}'.format(offline),   # HF_ENDPOINT
                 'https://openaipublic.azureedge.net', 'https://drive.google.com'):
        assert 'cannot reach {} ({})'.format(host, proxy) in err
    for source in download.SOURCES:   # every file: where from, where to
        assert source.url in err and os.path.join(str(tmp_path), source.target) in err
    assert 'drive.google.com/drive/folders/' + download.MIP_DRIVE_FOLDER in err


def test_download_script_offline_imports_neither_torchreid_nor_torch(closed_port, tmp_path):
    """What the script imports, read from sys.modules of a fresh interpreter that ran it."""
    code = RUN_SCRIPT.format(cache=str(tmp_path),
                             script=os.path.join(REPO, 'scripts', 'download_weights.py'))
    env = {k: v for k, v in os.environ.items()
           if k.upper() not in PROXY_VARS + ('HF_HUB_OFFLINE', 'HF_ENDPOINT')}
    env.update(offline_env(closed_port), PYTHONPATH=REPO)
    out = subprocess.run([sys.executable, '-c', code], cwd=str(tmp_path), env=env,
                         capture_output=True, text=True, timeout=120)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {'rc': 1, 'heavy': []}, out.stderr
    assert out.stderr.startswith('error: offline: cannot reach ')


def test_pretrained_true_offline_fails_at_once_naming_the_download_script(offline):
    with pytest.raises(PretrainedWeightsError, match='download_weights.py') as info:
        download_timm_weights('vit_small_patch16_224')
    message = str(info.value)
    assert 'model.pretrained_path' in message
    assert 'cannot reach http://127.0.0.1:{}'.format(offline) in message


def test_hf_hub_offline_variable_needs_no_network(monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    assert hub.hub_offline_reason() == 'HF_HUB_OFFLINE is set'


class _Proxy(http.server.BaseHTTPRequestHandler):
    """An HTTP proxy that answers every request itself, with ``status``."""
    status = 200
    seen = []

    def do_HEAD(self):
        self.seen.append(self.path)
        self.send_response(self.status)
        self.send_header('Content-Length', '0')
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def proxy():
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), _Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Proxy.seen, _Proxy.status = [], 200
    yield server
    server.shutdown()
    server.server_close()


def test_a_hub_reached_only_through_a_proxy_is_reachable(network_env, proxy):
    """The hub's host does not resolve from here (.invalid); the proxy reaches it. A
    direct TCP connection would call it unreachable; huggingface_hub's client asks the
    proxy, as its downloads do."""
    network_env('HF_ENDPOINT', 'http://hub.invalid')
    network_env('HTTP_PROXY', 'http://127.0.0.1:{}'.format(proxy.server_port))
    assert hub.hub_offline_reason() is None
    assert _Proxy.seen == ['http://hub.invalid/']   # the proxy was asked for the hub
    _Proxy.status = 407
    close_hub_session()
    reason = hub.hub_offline_reason()
    assert reason.startswith('cannot reach http://hub.invalid (through the proxy ')
    assert reason.endswith('it answered HTTP 407 (proxy authentication required)')


def test_a_hung_lookup_is_given_up_after_the_timeout(monkeypatch):
    """The request runs in a daemon thread; the caller waits timeout + 1 s at most."""
    monkeypatch.setattr(hub, '_head', lambda url, timeout: time.sleep(60))
    start = time.monotonic()
    reason = hub.unreachable('https://huggingface.co/x/y', timeout=0.2)
    assert time.monotonic() - start < 30   # far below the 60 s the lookup hangs
    assert reason == 'cannot reach https://huggingface.co: no answer within 0.2 s'


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
    assert manifest[os.path.join('b', 'sysu.pth')] == {
        'sha256': hashlib.sha256(b'checkpoint').hexdigest(), 'check': 'recorded'}
    assert manifest['a.pt'] == {'sha256': good, 'check': 'published'}
    (tmp_path / 'b' / 'sysu.pth').write_bytes(b'changed')
    with pytest.raises(download.DownloadError, match='recorded at its download'):
        download.download_all(str(tmp_path), log=print)
    (tmp_path / 'a.pt').write_bytes(b'other')
    with pytest.raises(download.DownloadError, match='does not match the published'):
        download.download_all(str(tmp_path), keys=['a'], log=print)


def test_a_file_in_the_hub_cache_loads_without_the_network(offline, monkeypatch, tmp_path):
    import timm
    import torch
    from safetensors.torch import save_file
    reference = timm.create_model('vit_tiny_patch16_224', pretrained=False, num_classes=0)
    torch.nn.init.constant_(reference.cls_token, 0.25)
    path = str(tmp_path / 'model.safetensors')
    save_file(reference.state_dict(), path)
    asked = []
    monkeypatch.setattr(hub, 'cached_hub_file', lambda repo, files: asked.append(repo) or path)
    state = download_timm_weights('vit_tiny_patch16_224')
    assert asked == ['timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k']
    assert torch.equal(state['cls_token'], reference.cls_token.detach())


# ---------------------------------------------------------------- hub files fail closed

HUB_DATA = b'hub weights'
HUB_SHA = hashlib.sha256(HUB_DATA).hexdigest()


@pytest.fixture
def hub_source(monkeypatch, tmp_path):
    """One hub source, fetched by a fake download; the hub's hash lookup is what each test
    sets with ``answer(sha, why)`` (no network anywhere)."""
    source = download.WeightSource('w', 'hub weights', 'hf', 'org/repo', 'w.safetensors',
                                   'model.pretrained_path {path}', filename='model.safetensors')
    monkeypatch.setattr(download, 'SOURCES', (source,))
    monkeypatch.setattr(download, 'offline_hosts', lambda *a, **k: {})
    fetched = []

    def fetch(src, dest):
        fetched.append(dest)
        with open(dest, 'wb') as f:
            f.write(HUB_DATA)
    monkeypatch.setattr(download, '_fetch', fetch)
    asked = []

    def answer(sha, why=None):
        def lookup(repo, filename):
            asked.append((repo, filename))
            return sha, why
        monkeypatch.setattr(hub, 'hub_file_sha256', lookup)
    answer(None, 'the hub lookup failed (ConnectError: refused)')
    return {'dir': str(tmp_path / 'cache'), 'answer': answer, 'asked': asked,
            'fetched': fetched, 'file': str(tmp_path / 'cache' / 'w.safetensors')}


def _manifest(cache):
    with open(os.path.join(cache, 'manifest.json')) as f:
        return json.load(f)


def test_a_hub_file_whose_hash_cannot_be_asked_is_refused(hub_source):
    cache = hub_source['dir']
    for _ in range(2):   # the second run finds the file present: still refused
        with pytest.raises(download.DownloadError) as err:
            download.download_all(cache, log=lambda *a: None)
        msg = str(err.value)
        assert msg.startswith('cannot verify ' + hub_source['file'])
        assert 'ConnectError: refused' in msg and '--allow-unverified' in msg
        assert 'w.safetensors' not in _manifest(cache)
    assert len(hub_source['fetched']) == 1 and len(hub_source['asked']) == 2


def test_allow_unverified_accepts_and_says_so_on_every_run(hub_source):
    cache, out = hub_source['dir'], []
    lines = download.download_all(cache, log=out.append, allow_unverified=True)
    assert lines == {'w': ['model.pretrained_path ' + hub_source['file']]}
    assert 'UNVERIFIED' in out[-1] and 'accepted because of --allow-unverified' in out[-1]
    assert _manifest(cache)['w.safetensors'] == {'sha256': HUB_SHA, 'check': 'unverified'}
    # later runs without the option: accepted as pinned, and still called unverified
    out.clear()
    download.download_all(cache, log=out.append)
    assert 'UNVERIFIED' in out[-1] and 'accepted earlier' in out[-1]
    # once the hub answers, the file is verified and recorded so
    hub_source['answer'](HUB_SHA)
    out.clear()
    download.download_all(cache, log=out.append)
    assert 'matches the SHA-256 the hub records' in out[-1]
    assert _manifest(cache)['w.safetensors']['check'] == 'hub'
    # and a changed file is refused whatever the hub says
    with open(hub_source['file'], 'ab') as f:
        f.write(b'!')
    with pytest.raises(download.DownloadError, match='differs from the one recorded'):
        download.download_all(cache, log=lambda *a: None)


def test_a_verified_hub_file_needs_no_network_later(hub_source):
    cache = hub_source['dir']
    hub_source['answer'](HUB_SHA)
    download.download_all(cache, log=lambda *a: None)
    hub_source['answer'](None, 'offline')
    out = []
    download.download_all(cache, log=out.append)
    assert "matches the hub's SHA-256" in out[-1] and len(hub_source['asked']) == 1


def test_a_hub_hash_that_differs_is_refused(hub_source):
    hub_source['answer']('0' * 64)
    with pytest.raises(download.DownloadError, match='does not match the 0{64} the hub'):
        download.download_all(hub_source['dir'], log=lambda *a: None)


def test_an_old_manifest_entry_of_a_hub_file_is_checked_again(hub_source):
    """Before, a failed lookup recorded the hash as trusted: such a bare entry is not
    proof of a check, so the hub is asked again and a failed lookup refuses the file."""
    cache = hub_source['dir']
    os.makedirs(cache)
    with open(hub_source['file'], 'wb') as f:
        f.write(HUB_DATA)
    with open(os.path.join(cache, 'manifest.json'), 'w') as f:
        json.dump({'w.safetensors': HUB_SHA}, f)
    with pytest.raises(download.DownloadError, match='cannot verify'):
        download.download_all(cache, log=lambda *a: None)
    assert hub_source['fetched'] == []


def test_the_hub_lookup_reports_why_it_has_no_hash(monkeypatch):
    import huggingface_hub

    class Api:
        def __init__(self, endpoint):
            pass

        def get_paths_info(self, repo, files):
            raise ConnectionError('proxy refused\nmore')
    monkeypatch.setattr(huggingface_hub, 'HfApi', Api)
    assert hub.hub_file_sha256('org/repo', 'f') == (
        None, 'the hub lookup failed (ConnectionError: proxy refused)')

    class NoLfs(Api):
        def get_paths_info(self, repo, files):
            return [type('RepoFile', (), {'lfs': None})()]
    monkeypatch.setattr(huggingface_hub, 'HfApi', NoLfs)
    assert hub.hub_file_sha256('org/repo', 'f')[1] == (
        'the hub records no SHA-256 for org/repo/f (not an LFS file)')


def test_the_cli_has_the_option(tmp_path, monkeypatch):
    script = _script()
    seen = {}
    monkeypatch.setattr(script, 'download_all', lambda *a, **k: seen.update(k) or {})
    assert script.main(['--cache-dir', str(tmp_path), '--allow-unverified']) == 0
    assert seen['allow_unverified'] is True
    assert script.main(['--cache-dir', str(tmp_path)]) == 0 and not seen['allow_unverified']


# ---------------------------------------------------------------- the Hugging Face cache

def _hf_cache(root, repo, filename, data, blob_name=None, link=True):
    """A Hugging Face cache entry laid out as huggingface_hub writes it: the snapshot file
    links to blobs/<its hash>; returns the snapshot path."""
    folder = os.path.join(str(root), 'models--' + repo.replace('/', '--'))
    commit = 'c' * 40
    os.makedirs(os.path.join(folder, 'refs'), exist_ok=True)
    with open(os.path.join(folder, 'refs', 'main'), 'w') as f:
        f.write(commit)
    snap = os.path.join(folder, 'snapshots', commit, filename)
    os.makedirs(os.path.dirname(snap), exist_ok=True)
    if not link:
        with open(snap, 'wb') as f:
            f.write(data)
        return snap
    blob = os.path.join(folder, 'blobs', blob_name or hashlib.sha256(data).hexdigest())
    os.makedirs(os.path.dirname(blob), exist_ok=True)
    with open(blob, 'wb') as f:
        f.write(data)
    os.symlink(os.path.relpath(blob, os.path.dirname(snap)), snap)
    return snap


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants
    root = tmp_path / 'hf'
    root.mkdir()
    monkeypatch.setattr(constants, 'HF_HUB_CACHE', str(root))
    return root


def test_a_cached_hub_file_is_checked_against_its_blob_name(hf_cache):
    good = _hf_cache(hf_cache, 'org/good', 'model.safetensors', b'weights')
    assert hub.cached_hub_file('org/good', ['model.safetensors']) == good
    git = b'small file'   # a non-LFS file is stored under its git blob id
    name = hashlib.sha1(b'blob %d\0' % len(git) + git).hexdigest()
    small = _hf_cache(hf_cache, 'org/small', 'config.json', git, blob_name=name)
    assert hub.cached_hub_file('org/small', ['config.json']) == small
    _hf_cache(hf_cache, 'org/bad', 'model.safetensors', b'weights!',
              blob_name=hashlib.sha256(b'weights').hexdigest())
    with pytest.raises(hub.HubFileError, match='does not match the SHA-256 it is stored under'):
        hub.cached_hub_file('org/bad', ['model.safetensors'])
    _hf_cache(hf_cache, 'org/copy', 'model.safetensors', b'weights', link=False)
    with pytest.raises(hub.HubFileError, match='cannot verify the Hugging Face cache file'):
        hub.cached_hub_file('org/copy', ['model.safetensors'])


def test_timm_weights_are_verified_in_the_cache_before_and_after_a_download(
        hf_cache, monkeypatch):
    import timm
    repo = 'timm/vit_tiny_patch16_224.augreg_in21k_ft_in1k'
    # an altered cached file is refused before timm reads it
    _hf_cache(hf_cache, repo, 'model.safetensors', b'altered',
              blob_name=hashlib.sha256(b'original').hexdigest())
    monkeypatch.setattr(timm, 'create_model', lambda *a, **k: pytest.fail('read the file'))
    with pytest.raises(hub.HubFileError, match='truncated or altered'):
        download_timm_weights('vit_tiny_patch16_224')
    # a download that leaves nothing to check in the cache is refused (fail closed)
    import shutil
    shutil.rmtree(str(hf_cache / ('models--' + repo.replace('/', '--'))))
    monkeypatch.setattr(hub, 'hub_offline_reason', lambda: None)
    monkeypatch.setattr(timm, 'create_model', lambda *a, **k: torch_module().nn.Linear(1, 1))
    with pytest.raises(PretrainedWeightsError, match='cannot verify the ImageNet weights'):
        download_timm_weights('vit_tiny_patch16_224')

    # a download whose cached file checks out is used
    def download(*a, **k):
        _hf_cache(hf_cache, repo, 'model.safetensors', b'fresh')
        return torch_module().nn.Linear(1, 1)
    monkeypatch.setattr(timm, 'create_model', download)
    assert set(download_timm_weights('vit_tiny_patch16_224')) == {'weight', 'bias'}


def torch_module():
    import torch
    return torch


def test_open_clip_hub_weights_are_verified_in_the_cache(hf_cache, monkeypatch):
    import open_clip
    from vireid_plugin.models.lsmrl import clip_towers
    repo = 'timm/vit_base_patch16_clip_224.openai'
    _hf_cache(hf_cache, repo, 'open_clip_model.safetensors', b'altered',
              blob_name=hashlib.sha256(b'original').hexdigest())
    monkeypatch.setattr(open_clip, 'create_model', lambda *a, **k: pytest.fail('read it'))
    with pytest.raises(hub.HubFileError, match='truncated or altered'):
        clip_towers.create_clip('ViT-B-16', (64, 32), pretrained_tag='openai')
    import shutil
    shutil.rmtree(str(hf_cache / ('models--' + repo.replace('/', '--'))))
    monkeypatch.setattr(hub, 'hub_offline_reason', lambda: None)
    monkeypatch.setattr(open_clip, 'create_model', lambda *a, **k: 'model')
    with pytest.raises(PretrainedWeightsError, match="cannot verify the 'openai' weights"):
        clip_towers.create_clip('ViT-B-16', (64, 32), pretrained_tag='openai')
