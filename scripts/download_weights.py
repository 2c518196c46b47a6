#!/usr/bin/env python
"""Fetch the pretrained weights of the real recipes into a cache folder and verify them.

    python scripts/download_weights.py [--cache-dir DIR] [--only mip_imagenet clip_openai ...]
                                       [--allow-unverified]

Downloads timm's ImageNet ViT-B/16 weights (MIP's and the ViT baseline's), OpenAI's
CLIP ViT-B/16 (LSMRL) and the MIP authors' released checkpoints (Google Drive, via
gdown), checks their SHA-256 and prints the config line to use for each. Offline it
stops at once (exit status 1) saying what to download by hand and where to put it.
"""
import argparse
import importlib
import importlib.util
import os
import sys
import types

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _download_module():
    """``vireid_plugin.models.download`` without running the package's ``__init__`` files:
    they register the plugin into torchreid (importing torchreid, torch, timm and open_clip,
    seconds this command does not need; offline it answers at once). In a process that
    imported the package already, the real module."""
    if 'vireid_plugin' not in sys.modules:
        spec = importlib.util.find_spec('vireid_plugin')
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit('error: vireid_plugin is not importable (pip install -e . in '
                             'the repository)')
        root = list(spec.submodule_search_locations)[0]
        for name, path in (('vireid_plugin', root),
                           ('vireid_plugin.models', os.path.join(root, 'models'))):
            package = types.ModuleType(name)
            package.__path__ = [path]   # a bare package: its submodules import, its __init__ not
            sys.modules[name] = package
    return importlib.import_module('vireid_plugin.models.download')


download = _download_module()
SOURCES, DownloadError = download.SOURCES, download.DownloadError
default_cache_dir, download_all = download.default_cache_dir, download.download_all


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--cache-dir', default=default_cache_dir(),
                   help='where the files go (default: %(default)s)')
    p.add_argument('--only', nargs='+', metavar='NAME', choices=[s.key for s in SOURCES],
                   help='fetch only these: ' + ', '.join(s.key for s in SOURCES))
    p.add_argument('--timeout', type=float, default=2.0,
                   help='seconds to wait for each host before calling it offline')
    p.add_argument('--allow-unverified', action='store_true',
                   help="accept a hub file whose SHA-256 cannot be asked (the hub's lookup "
                        'fails); without it such a file is refused. It is recorded as '
                        'unverified in manifest.json and printed so on every run')
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        lines = download_all(args.cache_dir, keys=args.only, timeout=args.timeout,
                             allow_unverified=args.allow_unverified)
    except DownloadError as exc:
        print('error: {}'.format(exc), file=sys.stderr)
        return 1
    print('\nConfig lines (append to scripts/main.py, or put in your config):')
    for key, entries in lines.items():
        for line in entries:
            print('  ' + line)
    return 0


if __name__ == '__main__':
    sys.exit(main())
