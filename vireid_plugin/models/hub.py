"""Is the weights hub reachable, and is a hub file already cached? Answered at once.

``timm.create_model(pretrained=True)`` and ``open_clip.create_model(pretrained=tag)``
go through ``huggingface_hub``, which retries a host it cannot reach for about 50 s
before it fails. The plugin asks first: a file already in the Hugging Face cache is
loaded from there without the network; otherwise one TCP connection to the hub
(``HF_ENDPOINT``, default https://huggingface.co) with a 2 s timeout, or
``HF_HUB_OFFLINE=1``, decides, and an unreachable hub is one immediate message.
"""
import os
import socket
from urllib.parse import urlparse

__all__ = ['hub_endpoint', 'unreachable', 'hub_offline_reason', 'cached_hub_file',
           'DOWNLOAD_HINT']

DOWNLOAD_HINT = ('run `python scripts/download_weights.py` on a machine with network access '
                 '(it prints the config line to use), or copy the file here by hand')
_TRUE = ('1', 'true', 'yes', 'on')


def hub_endpoint():
    return os.environ.get('HF_ENDPOINT', 'https://huggingface.co').rstrip('/')


def host_port(url):
    parsed = urlparse(url if '://' in url else 'https://' + url)
    return parsed.hostname, parsed.port or (443 if parsed.scheme == 'https' else 80)


def unreachable(url, timeout=2.0):
    """None when a TCP connection to ``url``'s host opens within ``timeout`` s, else why not."""
    host, port = host_port(url)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return 'cannot reach {}:{} ({})'.format(host, port, exc.strerror or exc)
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
            return path
    return None
