"""Is the weights hub reachable, and is a hub file already cached? Answered at once.

``timm.create_model(pretrained=True)`` and ``open_clip.create_model(pretrained=tag)``
go through ``huggingface_hub``, which retries a host it cannot reach for about 50 s
before it fails. The plugin asks first: a file already in the Hugging Face cache is
loaded from there without the network; otherwise ``HF_HUB_OFFLINE=1`` or one HTTP
request to the hub (``HF_ENDPOINT``, default https://huggingface.co) decides, and an
unreachable hub is one immediate message.

The request goes through huggingface_hub's own HTTP client (``get_session()``), the
one its downloads use, so what applies to a download applies to the check:
``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``NO_PROXY``, certificates, a client factory set with
``huggingface_hub.set_client_factory``. A hub reached only through a proxy is reachable.
Nothing here imports torch: ``scripts/download_weights.py`` answers offline at once.

A file of the Hugging Face cache is stored under its hash (``blobs/<sha256>`` for an
LFS file, ``blobs/<git sha1>`` otherwise, the hub's ETag): ``cached_hub_file`` checks
the content against that name before the file is used (``verify_cached_file``), so a
truncated or altered cached file is refused, and one that cannot be checked too.
"""
import hashlib
import os
import re
import threading
from urllib.parse import urlparse

from ..errors import UserError

__all__ = ['hub_endpoint', 'origin_of', 'unreachable', 'hub_offline_reason', 'cached_hub_file',
           'hub_file_sha256', 'verify_cached_file', 'sha256_of', 'HubFileError', 'DOWNLOAD_HINT']

DOWNLOAD_HINT = ('run `python scripts/download_weights.py` on a machine with network access '
                 '(it prints the config line to use), or copy the file here by hand')
_TRUE = ('1', 'true', 'yes', 'on')
#: extra seconds past the request timeout before the check gives up on a hung lookup
_GRACE = 1.0


class HubFileError(UserError, RuntimeError):
    """A file of the Hugging Face cache does not match (or cannot be checked against) the
    hash it is stored under."""


def hub_endpoint():
    return os.environ.get('HF_ENDPOINT', 'https://huggingface.co').rstrip('/')


def origin_of(url):
    """``scheme://host[:port]`` of ``url`` (a bare host means https)."""
    parsed = urlparse(url if '://' in url else 'https://' + url)
    return '{}://{}'.format(parsed.scheme, parsed.netloc)


def _head(url, timeout):
    """One HEAD request through huggingface_hub's client, redirects not followed: the
    status code, or the reason there is none."""
    try:
        from huggingface_hub.utils import get_session
    except ImportError as exc:
        return 'huggingface_hub cannot be imported ({})'.format(exc)
    session = get_session()
    try:
        try:   # httpx-based huggingface_hub (1.x and later)
            response = session.head(url, timeout=timeout, follow_redirects=False)
        except TypeError:   # requests-based (0.x)
            response = session.head(url, timeout=timeout, allow_redirects=False)
    except Exception as exc:   # connection refused, proxy errors, timeouts, offline mode
        text = str(exc).strip().splitlines()
        return '{} ({})'.format(type(exc).__name__, text[0] if text else 'no detail')
    return response.status_code


def _proxy_note(origin):
    """' (through proxy P)' when the environment sends ``origin`` through a proxy."""
    import urllib.request
    parsed = urlparse(origin)
    proxy = urllib.request.getproxies().get(parsed.scheme)
    if not proxy or urllib.request.proxy_bypass(parsed.hostname or ''):
        return ''
    return ' (through the proxy {} set in the environment)'.format(proxy)


def unreachable(url, timeout=2.0):
    """None when ``url``'s host answers an HTTP request within ``timeout`` s, else why not.

    Any answer counts except 407 (proxy authentication) and 5xx (a proxy or the server
    cannot serve it). The request runs in a daemon thread and the caller waits at most
    ``timeout`` + 1 s, so a hung name lookup cannot hold it either."""
    origin = origin_of(url)
    answer = []
    thread = threading.Thread(target=lambda: answer.append(_head(origin, timeout)),
                              name='vireid-hub-check', daemon=True)
    thread.start()
    thread.join(timeout + _GRACE)
    where = origin + _proxy_note(origin)
    if not answer:
        return 'cannot reach {}: no answer within {:g} s'.format(where, timeout)
    status = answer[0]
    if isinstance(status, str):
        return 'cannot reach {}: {}'.format(where, status)
    if status == 407 or status >= 500:
        return 'cannot reach {}: it answered HTTP {}{}'.format(
            where, status, ' (proxy authentication required)' if status == 407 else '')
    return None


def hub_offline_reason(timeout=2.0):
    """None when the Hugging Face hub can be asked, else the reason it cannot."""
    for var in ('HF_HUB_OFFLINE', 'TRANSFORMERS_OFFLINE'):
        if os.environ.get(var, '').strip().lower() in _TRUE:
            return '{} is set'.format(var)
    return unreachable(hub_endpoint(), timeout)


def cached_hub_file(repo_id, filenames):
    """Path of the first of ``filenames`` of hub repo ``repo_id`` in the local Hugging Face
    cache, or None."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    for name in filenames:
        try:
            path = try_to_load_from_cache(repo_id, name)
        except Exception:   # malformed repo ids and cache folders: not cached
            path = None
        if isinstance(path, str) and os.path.isfile(path):
            return verify_cached_file(path)
    return None


def sha256_of(path, chunk=1 << 20):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            h.update(block)
    return h.hexdigest()


def _git_sha1_of(path, chunk=1 << 20):
    """The git blob id of a file (what the hub names a non-LFS file by)."""
    h = hashlib.sha1(b'blob %d\0' % os.path.getsize(path))
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(chunk), b''):
            h.update(block)
    return h.hexdigest()


def verify_cached_file(path):
    """``path`` when the Hugging Face cache file it links to matches the hash its blob is
    named by; else :class:`HubFileError` (a file not stored under a hash, as in a copied
    cache without links, cannot be checked and is refused too)."""
    blob = os.path.realpath(path)
    name = os.path.basename(blob)
    if re.fullmatch(r'[0-9a-f]{64}', name):
        digest, what = sha256_of(blob), 'SHA-256'
    elif re.fullmatch(r'[0-9a-f]{40}', name):
        digest, what = _git_sha1_of(blob), 'git SHA-1'
    else:
        raise HubFileError(
            'cannot verify the Hugging Face cache file {}: it is not stored under its hash '
            '(blobs/<sha256>), so its content cannot be checked; {}, then set the config '
            'key to the verified file'.format(path, DOWNLOAD_HINT))
    if digest != name:
        raise HubFileError(
            'the Hugging Face cache file {} does not match the {} it is stored under ({}, '
            'content {}): truncated or altered; delete {} and download it again'.format(
                path, what, name, digest, blob))
    return path


def hub_file_sha256(repo_id, filename):
    """(SHA-256 the hub records for ``filename`` of ``repo_id`` (its LFS metadata), None)
    or (None, why it cannot be told): the hub did not answer, the file is unknown, or it
    is not an LFS file. Never raises: the caller decides what an unknown hash means
    (``download.py`` refuses the file unless told to accept it unverified)."""
    try:
        from huggingface_hub import HfApi
        info = HfApi(endpoint=hub_endpoint()).get_paths_info(repo_id, [filename])
    except Exception as exc:   # offline, proxy, HTTP errors, huggingface_hub missing
        text = str(exc).strip().splitlines()
        return None, 'the hub lookup failed ({}: {})'.format(
            type(exc).__name__, text[0] if text else 'no detail')
    if not info:
        return None, 'the hub lists no file {} in {}'.format(filename, repo_id)
    sha = getattr(getattr(info[0], 'lfs', None), 'sha256', None)
    if not isinstance(sha, str) or len(sha) != 64:
        return None, 'the hub records no SHA-256 for {}/{} (not an LFS file)'.format(
            repo_id, filename)
    return sha.lower(), None
