"""Export a trained run's model to ONNX and check it in onnxruntime on real inputs.

``export_checked(...)`` builds the model from the config as a run builds it
(``vireid_plugin.runner``), loads the checkpoint, exports the evaluation forward and
compares onnxruntime's features with PyTorch's on items of the first target's test set
(through the test transform). ``main(argv)`` is ``scripts/export_onnx.py``.
"""
import argparse
import os
import sys
import time

from ..config import ConfigError, load_config
from ..data import num_cameras
from ..data.prepare import prepare_datasets
from ..errors import UserError
from ..models import load_weights
from ..runner import build_data_manager, build_reid_model
from .onnx import ExportError, dataset_inputs, export_onnx, max_abs_difference

__all__ = ['DEFAULT_ATOL', 'export_checked', 'check_out', 'build_parser', 'main']

DEFAULT_ATOL = 1e-3   # float32 reassociation: measured up to 7e-5 on a trained tiny ViT
DESCRIPTION = ("Export a trained model's evaluation forward to ONNX and check it in "
               "onnxruntime.")


def export_checked(config_file, weights, out, atol=DEFAULT_ATOL, num_inputs=8, synthetic=False,
                   root='', opset=None, opts=(), log=print):
    """Export and check; returns whether the largest difference is within ``atol``.

    Raises ``ExportError`` when ``weights`` do not fit the model built from the config
    (the classifier aside: the evaluation forward does not use it).
    """
    check_out(out)   # before the data and the export: minutes on a real dataset
    # no training batches are drawn: torchreid's plain sampler spares the cross-modal
    # sampler's batch-size checks against the training set
    opts = list(opts) + ['sampler.train_sampler', 'RandomSampler'] + (
        ['data.synthetic', 'True'] if synthetic else [])
    cfg = load_config(config_file, opts, root=root)
    prepare_datasets(cfg)
    video = cfg.data.type == 'video'
    dm = build_data_manager(cfg)
    model = build_reid_model(cfg, dm.num_train_pids, num_cameras(dm))
    report = load_weights(model, weights, strict=False)
    # the classifier is not part of the evaluation forward; any other mismatch is
    unfit = ['{} (file {}, model {})'.format(*m) for m in report.mismatched
             if 'classifier' not in m[0]] + [
        '{} missing from the file'.format(k) for k in report.missing if 'classifier' not in k]
    if unfit:
        raise ExportError('{} does not fit model {} built from {}: {}'.format(
            weights, cfg.model.name, config_file, '; '.join(unfit)))
    target = dm.targets[0]
    inputs = dataset_inputs(dm.query_dataset(target), num_inputs)
    example = tuple(t[:2] for t in inputs)
    start = time.time()
    export_onnx(model, out, example, kind='video' if video else 'image', opset=opset)
    log('Exported {} ({} tensors from {}) to {} ({:.1f} MB) in {:.1f}s; inputs {}, '
        'dynamic batch'.format(cfg.model.name, len(report.loaded), weights, out,
                               os.path.getsize(out) / 2 ** 20, time.time() - start,
                               'clips (B, T, C, H, W), modality, camid' if video else
                               'images (B, C, H, W), modality, camid'))
    diff, scale = max_abs_difference(model, out, inputs)
    ok = diff <= atol
    log('onnxruntime vs PyTorch on {} {} test items (batch of {}, {}): max |difference| = '
        '{:.3g} (features up to {:.3g}); tolerance --atol {:g}: {}'.format(
            len(inputs[0]), target, len(inputs[0]), 'test transform', diff, scale, atol,
            'OK' if ok else 'FAILED'))
    return ok


def check_out(out):
    """``--out`` must name a file that can be written: not a folder, not under a file."""
    if os.path.isdir(out):
        raise ExportError('--out {} is a folder; give the ONNX file to write, e.g. '
                          '{}'.format(out, os.path.join(out, 'model.onnx')))
    parent = os.path.dirname(os.path.abspath(out))
    while not os.path.exists(parent) and os.path.dirname(parent) != parent:
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ExportError('--out {}: {} is a file, not a folder'.format(out, parent))


def build_parser():
    p = argparse.ArgumentParser(description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config-file', required=True, help='the config the model was trained with')
    p.add_argument('--weights', required=True, help='checkpoint (model.pth.tar-N or weights)')
    p.add_argument('--out', required=True, help='ONNX file to write')
    p.add_argument('--atol', type=float, default=DEFAULT_ATOL,
                   help='largest accepted |onnxruntime - PyTorch| feature difference '
                        '(default %(default)g)')
    p.add_argument('--num-inputs', type=int, default=8, help='test items compared (default 8)')
    p.add_argument('--synthetic', action='store_true',
                   help="generate the config's dataset synthetically where it is missing")
    p.add_argument('--root', default='', help='root path to data directory')
    p.add_argument('--opset', type=int, default=None, help="ONNX opset (default: torch's)")
    p.add_argument('opts', nargs=argparse.REMAINDER, help='config overrides (KEY VALUE ...)')
    return p


def main(argv=None):
    """``scripts/export_onnx.py``: exit status 0 (within --atol), 1 (beyond it, or a data or
    file error), 2 (config error)."""
    args = build_parser().parse_args(argv)
    try:
        ok = export_checked(args.config_file, args.weights, args.out, atol=args.atol,
                            num_inputs=args.num_inputs, synthetic=args.synthetic,
                            root=args.root, opset=args.opset, opts=args.opts or ())
    except UserError as exc:
        print('error: {}'.format(exc), file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    return 0 if ok else 1


if __name__ == '__main__':
    sys.exit(main())
