"""Fetch the pretrained weights the real recipes use into one cache folder, verified.

``scripts/download_weights.py`` is the CLI. Files:

- ``vit_base_patch16_224.orig_in21k_ft_in1k`` (timm hub): MIP's ImageNet ViT-B/16,
  the original JAX weights the MIP authors loaded as ``jx_vit_base_p16_224-80ecf9dd.pth``;
- ``vit_base_patch16_224.augreg2_in21k_ft_in1k`` (timm hub): ``vit_base_reid``'s default;
- OpenAI CLIP ViT-B/16 (``ViT-B-16.pt``, the URL open_clip's ``openai`` tag names): LSMRL;
- the MIP authors' released checkpoints (their Google Drive folder, through gdown).

Checksums: a Hugging Face hub file is checked against the SHA-256 the hub records for
it (its LFS metadata, ``hub.hub_file_sha256``); OpenAI's URL carries the file's
SHA-256 in its path (what OpenAI's ``clip`` package verifies). Verification fails
closed: a hub file whose hash cannot be asked (the lookup fails, no LFS hash) is
refused, unless ``--allow-unverified`` (``allow_unverified=True``) accepts it, which is
recorded in the manifest and printed on every run. The MIP checkpoints have no
published hash at all: their SHA-256 is recorded in ``<cache>/manifest.json`` after the
download and checked on every later run (and the output says so). Each manifest entry
is ``{"sha256": ..., "check": "published" | "hub" | "recorded" | "unverified"}``
(a bare hash string, the earlier format, still reads).

Offline, every host is asked once with a short timeout (in parallel, through
huggingface_hub's HTTP client: proxy settings apply, ``hub.py``) and the command stops
at once with what to fetch by hand and where to put it. Importing this module imports
neither torch nor torchreid (``scripts/download_weights.py`` loads it on its own).
"""
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional

from . import hub
from .hub import sha256_of
from ..errors import UserError

__all__ = ['WeightSource', 'SOURCES', 'DownloadError', 'default_cache_dir', 'sha256_of',
           'hub_cache_folder', 'weights_unavailable',
           'offline_hosts', 'manual_instructions', 'download_all']

MANIFEST = 'manifest.json'
#: how a file's SHA-256 was established (the 'check' of its manifest entry)
PUBLISHED, HUB, RECORDED, UNVERIFIED = 'published', 'hub', 'recorded', 'unverified'
MIP_DRIVE_FOLDER = '1MUawaVku45vviDrxh9rJtshDEL2oCi6C'   # wurqjackey/MIP README, "GoogleDrive"


class DownloadError(UserError, RuntimeError):
    """Offline, a failed download or a checksum that does not match."""


@dataclass(frozen=True)
class WeightSource:
    key: str
    what: str
    kind: str                  # 'hf' (hub repo + file), 'url', 'gdrive_folder'
    source: str                # hub repo id, URL, or Drive folder id
    target: str                # file (or folder) name under the cache folder
    config: str                # the config line, {path} filled in
    filename: str = ''         # file inside the hub repo
    sha256: Optional[str] = None   # known from the source's name (url kind)
    stands_for: str = ''       # the hub repo whose weights this file replaces (url kind)

    @property
    def url(self):
        if self.kind == 'hf':
            return '{}/{}/resolve/main/{}'.format(hub.hub_endpoint(), self.source, self.filename)
        if self.kind == 'gdrive_folder':
            return 'https://drive.google.com/drive/folders/{}'.format(self.source)
        return self.source


_OPENAI_SHA = '5806e77cd80f8b59890b7e101eabd078d9fb84e6937f9e85e4ecb61988df416f'
SOURCES = (
    WeightSource('mip_imagenet', "ImageNet ViT-B/16 for MIP (timm "
                 "vit_base_patch16_224.orig_in21k_ft_in1k = the authors' "
                 "jx_vit_base_p16_224-80ecf9dd.pth)", 'hf',
                 'timm/vit_base_patch16_224.orig_in21k_ft_in1k',
                 'vit_base_patch16_224.orig_in21k_ft_in1k.safetensors',
                 'model.pretrained_path {path}   # mip_vit_base_patch16 (configs/mip_*.yaml)',
                 filename='model.safetensors'),
    WeightSource('vit_imagenet', "ImageNet ViT-B/16 for the ViT baseline (timm "
                 "vit_base_patch16_224 = .augreg2_in21k_ft_in1k)", 'hf',
                 'timm/vit_base_patch16_224.augreg2_in21k_ft_in1k',
                 'vit_base_patch16_224.augreg2_in21k_ft_in1k.safetensors',
                 'model.pretrained_path {path}   # vit_base_reid (configs/vit_sysu.yaml)',
                 filename='model.safetensors'),
    WeightSource('clip_openai', 'OpenAI CLIP ViT-B/16 for LSMRL (open_clip tag "openai")',
                 'url', 'https://openaipublic.azureedge.net/clip/models/{}/ViT-B-16.pt'.format(
                     _OPENAI_SHA), 'ViT-B-16.pt',
                 'model.pretrained_path {path}   # lsmrl_clip_vit_b16 (configs/lsmrl_vcm.yaml)',
                 sha256=_OPENAI_SHA, stands_for='timm/vit_base_patch16_clip_224.openai'),
    WeightSource('mip_released', "MIP authors' released checkpoints (SYSU-MM01, RegDB; "
                 'github.com/wurqjackey/MIP)', 'gdrive_folder', MIP_DRIVE_FOLDER, 'mip_released',
                 'model.load_weights {path}   # configs/mip_sysu_released.yaml, '
                 'with test.evaluate True'),
)


def default_cache_dir():
    base = os.environ.get('XDG_CACHE_HOME', os.path.join(os.path.expanduser('~'), '.cache'))
    return os.path.join(base, 'vireid_plugin', 'weights')


def hub_cache_folder(repo):
    """The folder of hub repo ``repo`` in the Hugging Face cache (where timm and open_clip
    look for its files; ``HF_HUB_CACHE``, ``HF_HOME``)."""
    try:
        from huggingface_hub import constants
        base = constants.HF_HUB_CACHE
    except ImportError:
        base = os.path.join(os.path.expanduser('~'), '.cache', 'huggingface', 'hub')
    return os.path.join(base, 'models--' + repo.strip('/').replace('/', '--'))


def weights_unavailable(what, repo, reason, path_key):
    """The one line for pretrained weights that are neither cached nor downloadable now:
    the folder searched, the command that fetches them (and the file it writes, or has
    written: then the config line that uses it)."""
    source = next((s for s in SOURCES if repo and repo.strip('/') in (s.source, s.stands_for)),
                  None)
    fetched = os.path.join(default_cache_dir(), source.target) if source else ''
    if fetched and os.path.isfile(fetched):
        fix = ('`python scripts/download_weights.py` fetched them as {}: set {} {} (or set '
               'model.pretrained False)'.format(fetched, path_key, fetched))
    else:
        fix = '{}{}, then set {} to the file (or set model.pretrained False)'.format(
            hub.DOWNLOAD_HINT, ' (it writes {})'.format(fetched) if fetched else '', path_key)
    return ('{} are not in the Hugging Face cache (searched {}) and the hub cannot be asked '
            '({}): {}'.format(what, hub_cache_folder(repo) if repo else 'no hub repo', reason,
                              fix))


def offline_hosts(sources=SOURCES, timeout=2.0):
    """{url: reason} of the sources whose host cannot be reached (tried in parallel)."""
    if os.environ.get('HF_HUB_OFFLINE', '').strip().lower() in ('1', 'true', 'yes', 'on'):
        return {s.url: 'HF_HUB_OFFLINE is set' for s in sources}
    with ThreadPoolExecutor(max_workers=max(1, len(sources))) as pool:
        reasons = list(pool.map(lambda s: hub.unreachable(s.url, timeout), sources))
    return {s.url: r for s, r in zip(sources, reasons) if r}


def manual_instructions(cache_dir, sources=SOURCES):
    lines = ['Download by hand on a machine with network access and put each file here:']
    for s in sources:
        lines.append('  {}\n    {}\n    -> {}{}'.format(
            s.what, s.url, os.path.join(cache_dir, s.target),
            '/ (every file of the folder)' if s.kind == 'gdrive_folder' else ''))
    lines.append('then run this command again to verify them (it checks what is present '
                 'first and downloads nothing that is).')
    return '\n'.join(lines)


def _read_manifest(cache_dir):
    path = os.path.join(cache_dir, MANIFEST)
    if not os.path.isfile(path):
        return {}
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError:
        raise DownloadError('{} is not valid JSON; delete it to record the hashes '
                            'again'.format(path)) from None


def _fetch(source, dest):
    if source.kind == 'hf':
        from huggingface_hub import hf_hub_download
        tmp = hf_hub_download(source.source, source.filename,
                              local_dir=os.path.join(os.path.dirname(dest), '.hf'))
        os.replace(tmp, dest)
    elif source.kind == 'url':
        import torch.hub
        torch.hub.download_url_to_file(source.url, dest, progress=True)
    else:
        import gdown
        files = gdown.download_folder(id=source.source, output=dest, quiet=False)
        if not files:
            raise DownloadError('gdown fetched nothing from {}'.format(source.url))


def _files_of(path):
    if os.path.isdir(path):
        return sorted(os.path.join(root, f) for root, _, names in os.walk(path) for f in names)
    return [path] if os.path.isfile(path) else []


def _entry(manifest, rel):
    """(SHA-256, check) recorded for ``rel``, or (None, None). A bare string (manifests
    written before checks were recorded) is a hash recorded at download, check unknown."""
    value = manifest.get(rel)
    if isinstance(value, str):
        return value, None
    if isinstance(value, dict) and isinstance(value.get('sha256'), str):
        return value['sha256'], value.get('check')
    return None, None


def _check_hub_file(source, path, digest, recorded, check, allow_unverified):
    """(check, how) of a hub file: the hub's SHA-256 must match; when it cannot be asked
    the file is refused (fail closed) unless it was accepted unverified before or
    ``allow_unverified`` is set."""
    if recorded and check == HUB:
        return HUB, "matches the hub's SHA-256 (checked when it was first verified)"
    expected, why = hub.hub_file_sha256(source.source, source.filename)
    if expected:
        if digest != expected:
            raise DownloadError('{}: SHA-256 {} does not match the {} the hub records for '
                                '{}/{}; delete the file and download it again'.format(
                                    path, digest, expected, source.source, source.filename))
        return HUB, 'matches the SHA-256 the hub records'
    if recorded and check == UNVERIFIED:
        return UNVERIFIED, ('UNVERIFIED ({}): accepted earlier with --allow-unverified, '
                            'unchanged since'.format(why))
    if allow_unverified:
        return UNVERIFIED, ('UNVERIFIED ({}): accepted because of --allow-unverified; '
                            'recorded as unverified in {}'.format(why, MANIFEST))
    raise DownloadError(
        'cannot verify {}: {}. Downloads fail closed, so the file is not accepted and no '
        'config line is printed for it. Run this command again when the hub answers, or '
        'pass --allow-unverified to accept the file unchecked (recorded as unverified in '
        '{} and said so on every run)'.format(path, why, MANIFEST))


def download_all(cache_dir, keys=None, timeout=2.0, log=print, allow_unverified=False):
    """Fetch (unless present) and verify every source (or those in ``keys``).

    Returns {key: [config lines]}. Raises ``DownloadError`` when offline with a missing
    file (with :func:`manual_instructions`), on a checksum mismatch, or when a hub file's
    SHA-256 cannot be asked (fail closed; ``allow_unverified`` accepts it and says so).
    Files without a published hash (the MIP authors' Drive folder) get theirs recorded at
    download and checked on every later run.
    """
    sources = [s for s in SOURCES if keys is None or s.key in keys]
    unknown = set(keys or ()) - {s.key for s in SOURCES}
    if unknown:
        raise DownloadError('unknown weight name(s) {}; choose from {}'.format(
            ', '.join(sorted(unknown)), ', '.join(s.key for s in SOURCES)))
    os.makedirs(cache_dir, exist_ok=True)
    missing = [s for s in sources if not _files_of(os.path.join(cache_dir, s.target))]
    if missing:
        down = offline_hosts(missing, timeout)
        if down:
            raise DownloadError('offline: {}.\n{}'.format(
                '; '.join(sorted(set(down.values()))), manual_instructions(cache_dir, missing)))
    manifest = _read_manifest(cache_dir)
    lines = {}
    try:
        for s in sources:
            dest = os.path.join(cache_dir, s.target)
            if s in missing:
                log('=> Downloading {} from {}'.format(s.what, s.url))
                _fetch(s, dest)
            lines[s.key] = []
            for path in _files_of(dest):
                rel = os.path.relpath(path, cache_dir)
                digest = sha256_of(path)
                recorded, check = _entry(manifest, rel)
                if path == dest and s.sha256 and digest != s.sha256:
                    raise DownloadError('{}: SHA-256 {} does not match the published {}; '
                                        'delete the file and download it again'.format(
                                            path, digest, s.sha256))
                if recorded and digest != recorded:
                    raise DownloadError('{}: SHA-256 {} differs from the one recorded at its '
                                        'download ({}); delete it and download it '
                                        'again'.format(path, digest, recorded))
                if path == dest and s.sha256:
                    check, how = PUBLISHED, 'matches the published SHA-256'
                elif path == dest and s.kind == 'hf':
                    check, how = _check_hub_file(s, path, digest, recorded, check,
                                                 allow_unverified)
                elif recorded:
                    check = check or RECORDED
                    how = 'matches the SHA-256 recorded at download (no published hash)'
                else:
                    check = RECORDED
                    how = 'no published hash: SHA-256 recorded now in ' + MANIFEST
                log('{}  {}  ({})'.format(digest, rel, how))
                manifest[rel] = {'sha256': digest, 'check': check}
                if path.endswith(('.pth', '.pt', '.safetensors', '.bin', '.tar')):
                    lines[s.key].append(s.config.format(path=path))
    finally:   # what was established so far is kept, also when a later file is refused
        # imported here: checkpoint_io imports torch, which answering offline does not need
        from ..checkpoint_io import atomic_write
        atomic_write(os.path.join(cache_dir, MANIFEST),
                     lambda f: json.dump(manifest, f, indent=2, sort_keys=True), mode='w')
    return lines
