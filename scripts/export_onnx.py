#!/usr/bin/env python
"""Export a trained model's evaluation forward to ONNX and check it in onnxruntime.

    python scripts/export_onnx.py --config-file CFG --weights CKPT --out model.onnx
        [--atol 1e-3] [--num-inputs 8] [--synthetic] [--root DIR] [KEY VALUE ...]

The model is built from the config as scripts/main.py builds it and loads CKPT.
Image models take images plus modality and camera ids, video models
(data.type video) clips (B, T, C, H, W) plus modality and camid; the batch axis
is dynamic. The file is then run in onnxruntime on real inputs (items of the
first target's test set through the test transform; --synthetic generates the
config's dataset first where it is missing) and the largest absolute difference
from PyTorch's features is printed; the exit status is 1 when it exceeds --atol.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import vireid_plugin  # noqa: E402,F401  (registers datasets and models)
from vireid_plugin.config import (ConfigError, imagedata_kwargs, load_config,  # noqa: E402
                                  model_kwargs, videodata_kwargs)
from vireid_plugin.data import (CrossModalImageDataManager, CrossModalVideoDataManager,  # noqa: E402
                                num_cameras)
from vireid_plugin.data.prepare import prepare_datasets  # noqa: E402
from vireid_plugin.engine import load_weights  # noqa: E402
from vireid_plugin.errors import USER_ERRORS  # noqa: E402
from vireid_plugin.export import (ExportError, dataset_inputs, export_onnx,  # noqa: E402
                                  max_abs_difference)
from vireid_plugin.models import build_model  # noqa: E402

DEFAULT_ATOL = 1e-3   # float32 reassociation: measured up to 7e-5 on a trained tiny ViT


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
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


def run(args):
    # no training batches are drawn: torchreid's plain sampler spares the cross-modal
    # sampler's batch-size checks against the training set
    opts = list(args.opts or ()) + ['sampler.train_sampler', 'RandomSampler'] + (
        ['data.synthetic', 'True'] if args.synthetic else [])
    cfg = load_config(args.config_file, opts, root=args.root)
    prepare_datasets(cfg)
    video = cfg.data.type == 'video'
    dm = (CrossModalVideoDataManager(**videodata_kwargs(cfg)) if video
          else CrossModalImageDataManager(**imagedata_kwargs(cfg)))
    model = build_model(cfg.model.name, dm.num_train_pids, **model_kwargs(cfg, num_cameras(dm)))
    report = load_weights(model, args.weights, strict=False)
    loaded = report.loaded
    # the classifier is not part of the evaluation forward; any other mismatch is
    unfit = ['{} (file {}, model {})'.format(*m) for m in report.mismatched
             if 'classifier' not in m[0]] + [
        '{} missing from the file'.format(k) for k in report.missing if 'classifier' not in k]
    if unfit:
        raise ExportError('{} does not fit model {} built from {}: {}'.format(
            args.weights, cfg.model.name, args.config_file, '; '.join(unfit)))
    target = dm.targets[0]
    inputs = dataset_inputs(dm.query_dataset(target), args.num_inputs)
    example = tuple(t[:2] for t in inputs)
    start = time.time()
    export_onnx(model, args.out, example, kind='video' if video else 'image', opset=args.opset)
    print('Exported {} ({} tensors from {}) to {} ({:.1f} MB) in {:.1f}s; inputs {}, '
          'dynamic batch'.format(cfg.model.name, len(loaded), args.weights, args.out,
                                 os.path.getsize(args.out) / 2 ** 20, time.time() - start,
                                 'clips (B, T, C, H, W), modality, camid' if video else
                                 'images (B, C, H, W), modality, camid'))
    diff, scale = max_abs_difference(model, args.out, inputs)
    ok = diff <= args.atol
    print('onnxruntime vs PyTorch on {} {} test items (batch of {}, {}): max |difference| = '
          '{:.3g} (features up to {:.3g}); tolerance --atol {:g}: {}'.format(
              len(inputs[0]), target, len(inputs[0]), 'test transform', diff, scale, args.atol,
              'OK' if ok else 'FAILED'))
    return 0 if ok else 1


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return run(args)
    except USER_ERRORS as exc:
        print('error: {}'.format(exc), file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1


if __name__ == '__main__':
    sys.exit(main())
