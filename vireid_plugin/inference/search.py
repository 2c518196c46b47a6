"""``scripts/search.py``: which gallery images match each query image, from a trained run.

``python scripts/search.py RUN_DIR --query DIR --query-modality infrared --gallery DIR
--gallery-modality visible --topk 10 --out results.json --html results.html``

Folders are read recursively (a video run: each folder of frames is a tracklet).
``--index FILE`` keeps the gallery's features: built on first use, reopened next time
(only new files of ``--gallery`` are extracted and added), refused if another model or
preprocessing built it. Outputs are written atomically at the end: a failed command
leaves none half-written.
"""
import argparse
import json
import os
import sys

from ..checkpoint_io import atomic_write
from ..errors import UserError
from .errors import InferenceInputError, MissingModalityError
from .extractor import Extractor
from .html import results_html
from .index import SEARCH_ENGINES, GalleryIndex
from .inputs import IMAGE_EXTENSIONS, MODALITIES, list_clips, list_images, modality_code

__all__ = ['search_folders', 'build_parser', 'main']

MODALITY_NAMES = {0: 'visible', 1: 'infrared'}


def _items(extractor, folder, skipped=None, log=print):
    """The folder's images (a video run: its tracklets); files that are not images by
    name are named and added to ``skipped``."""
    if extractor.pre.kind == 'video':
        return list_clips(folder)
    others = []
    items = list_images(folder, others)
    for path in others:
        log('skipped {}: not an image file ({})'.format(path, ' '.join(IMAGE_EXTENSIONS)))
        if skipped is not None:
            skipped.append((path, 'not an image file'))
    return items


def _key(path):
    return json.dumps(path) if isinstance(path, (list, tuple)) else path


def _gallery(extractor, args, log):
    """The gallery index: opened from --index (new --gallery files added) or built."""
    modality = modality_code(args.gallery_modality, '--gallery-modality')
    kw = dict(on_bad=args.on_bad, show_progress=True, log=log)
    if args.index and os.path.isfile(args.index):
        index = GalleryIndex.open(args.index, extractor)
        log('Opened index {} ({} items)'.format(args.index, len(index)))
        skipped = []
        if args.gallery:
            known = {_key(p) for p in index.paths}
            new = [it for it in _items(extractor, args.gallery, skipped, log)
                   if _key(it) not in known]
            if new:
                skipped += index.add(extractor, new, modality, args.gallery_camid,
                                    desc='gallery (new items)', **kw)
                index.save(args.index)
                log('Added {} item(s) to {}'.format(len(new) - len(skipped), args.index))
        return index, skipped
    if not args.gallery:
        raise InferenceInputError('--gallery DIR is needed (or --index FILE of an existing '
                                  'index)')
    others = []
    index, skipped = GalleryIndex.build(extractor, _items(extractor, args.gallery, others, log),
                                        modality, args.gallery_camid, desc='gallery', **kw)
    skipped = others + skipped
    if not len(index):
        raise InferenceInputError('no readable gallery item under {}'.format(args.gallery))
    if args.index:
        index.save(args.index)
        log('Saved index {} ({} items)'.format(args.index, len(index)))
    return index, skipped


def search_folders(args, log=print):
    """Run the command's work; returns the results dict (also written to --out/--html)."""
    extractor = Extractor.from_run(args.run_dir, checkpoint=args.checkpoint, device=args.device,
                                   backend=args.backend, onnx_file=args.onnx,
                                   batch_size=args.batch_size, workers=args.workers, log=log)
    log('Model: ' + extractor.describe())
    q_mod = modality_code(args.query_modality, '--query-modality')
    g_mod = modality_code(args.gallery_modality, '--gallery-modality')
    if extractor.needs_modality() and (q_mod is None or g_mod is None):
        raise MissingModalityError('{} selects its prompts by modality: give --query-modality '
                                   'and --gallery-modality (visible or infrared)'.format(
                                       extractor.model_name))
    q_others = []   # an empty query folder fails before any work
    queries = _items(extractor, args.query, q_others, log)
    index, g_skipped = _gallery(extractor, args, log)
    out = extractor.extract(queries, q_mod, args.query_camid, on_bad=args.on_bad,
                            show_progress=True, desc='queries', log=log)
    if not len(out.indices):
        raise InferenceInputError('no readable query under {}'.format(args.query))
    dist, idx = index.search(out.features, args.topk, modality=g_mod, engine=args.search,
                             rerank=args.rerank)
    results = {
        'run': args.run_dir, 'model': extractor.model_name,
        'checkpoint': extractor.checkpoint, 'fingerprint': extractor.fingerprint,
        'dist_metric': extractor.dist_metric, 'rerank': bool(args.rerank),
        'search': args.search, 'backend': args.backend, 'topk': int(args.topk),
        'query_modality': MODALITY_NAMES.get(q_mod), 'gallery_modality': MODALITY_NAMES.get(g_mod),
        'gallery_size': len(index),
        'skipped': [{'path': p, 'reason': r} for p, r in g_skipped + q_others + out.skipped],
        'queries': [{'path': _plain(item),
                     'matches': [{'path': _plain(index.paths[int(j)]), 'distance': float(d)}
                                 for d, j in zip(drow.tolist(), irow.tolist())]}
                    for item, drow, irow in zip(out.items, dist, idx)]}
    if args.out:
        text = json.dumps(results, indent=1)
        atomic_write(args.out, lambda f: f.write(text), mode='w')
        log('Wrote {} ({} queries, top {})'.format(args.out, len(results['queries']), args.topk))
    if args.html:
        page = results_html(results, size=(extractor.pre.height, extractor.pre.width),
                            title='{}: {} queries against {}'.format(
                                extractor.model_name, len(results['queries']), len(index)))
        atomic_write(args.html, lambda f: f.write(page), mode='w')
        log('Wrote {}'.format(args.html))
    if results['skipped']:
        log('{} file(s) skipped (unreadable or not images)'.format(len(results['skipped'])))
    return results


def _plain(path):
    return list(path) if isinstance(path, (list, tuple)) else path


def build_parser():
    names = ', '.join(MODALITIES)
    p = argparse.ArgumentParser(
        description='Search a gallery folder for each query image with a trained run.',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('run_dir', help='a finished run folder (scripts/main.py data.save_dir)')
    p.add_argument('--query', required=True, help='folder of query images (recursive)')
    p.add_argument('--query-modality', default=None, help='modality of the queries: ' + names)
    p.add_argument('--gallery', default='', help='folder of gallery images (recursive)')
    p.add_argument('--gallery-modality', default=None,
                   help='modality of the gallery images (and the index items searched)')
    p.add_argument('--query-camid', type=int, default=None,
                   help='training camera id of the queries (default: unknown camera)')
    p.add_argument('--gallery-camid', type=int, default=None,
                   help='training camera id of the gallery (default: unknown camera)')
    p.add_argument('--topk', type=int, default=10)
    p.add_argument('--out', default='results.json', help='results JSON (default %(default)s)')
    p.add_argument('--html', default='', help='also write this self-contained HTML page')
    p.add_argument('--index', default='',
                   help='gallery index file: built once, reopened (and extended) later')
    p.add_argument('--checkpoint', default='',
                   help="weights file (default: the run's selected, else last checkpoint)")
    p.add_argument('--backend', choices=('torch', 'onnx'), default='torch')
    p.add_argument('--onnx', default='', help='the ONNX file of scripts/export_onnx.py')
    p.add_argument('--search', choices=SEARCH_ENGINES, default='exact')
    p.add_argument('--rerank', action='store_true', help='k-reciprocal re-ranking')
    p.add_argument('--on-bad', choices=('skip', 'stop'), default='skip',
                   help='an unreadable file: skip it (named, counted) or stop')
    p.add_argument('--batch-size', type=int, default=None,
                   help="images per forward (default: the run's test.batch_size)")
    p.add_argument('--workers', type=int, default=0,
                   help='loader processes (default 0: decoding threads beside the model, one per '
                        'core the model leaves free)')
    p.add_argument('--device', default='cpu')
    return p


def main(argv=None):
    """Exit status 0, or 1 on a user error (one line on stderr)."""
    args = build_parser().parse_args(argv)
    try:
        search_folders(args, log=lambda msg: print(msg, file=sys.stderr))
    except UserError as exc:
        print('error: {}'.format(exc), file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
