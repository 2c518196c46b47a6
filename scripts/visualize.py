#!/usr/bin/env python
"""Draw every figure of a finished run (PNG files and TensorBoard images).

    python scripts/visualize.py RUN_DIR [--compare OTHER_RUN ...] [--config-file CFG]
        [--checkpoint PATH] [--out DIR] [--queries 6] [--topk 10] [--ids 10] [--seed 0]

RUN_DIR is a run's data.save_dir: its features.safetensors (ranked lists, t-SNE),
results.json (CMC curves; --compare adds other runs' curves to the plot),
config.yaml and newest checkpoint (attention maps, MIP's instance prompts).
PNGs go to RUN_DIR/figures/ (or --out), images to RUN_DIR's TensorBoard log.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import vireid_plugin  # noqa: E402,F401  (registers models)
from vireid_plugin.errors import USER_ERRORS  # noqa: E402
from vireid_plugin.visualize import visualize_run  # noqa: E402


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('run_dir', help="a run's data.save_dir")
    p.add_argument('--compare', nargs='+', default=[], metavar='RUN',
                   help='other run directories (or results.json files) for the CMC plot')
    p.add_argument('--config-file', default='', help='config of the run (default '
                                                     'RUN_DIR/config.yaml)')
    p.add_argument('--checkpoint', default='', help='weights for the attention maps '
                                                    '(default: the newest in RUN_DIR/model)')
    p.add_argument('--out', default='', help='folder of the PNGs (default RUN_DIR/figures)')
    p.add_argument('--queries', type=int, default=6, help='queries per ranked-list figure')
    p.add_argument('--topk', type=int, default=10, help='gallery items per query')
    p.add_argument('--ids', type=int, default=10, help='identities in the t-SNE plots')
    p.add_argument('--seed', type=int, default=0, help='sampling of queries and identities')
    p.add_argument('--device', default='cpu', help='device of the attention forward')
    p.add_argument('--no-tensorboard', action='store_true', help='PNG files only')
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        written = visualize_run(args.run_dir, compare=args.compare,
                                config_file=args.config_file, checkpoint=args.checkpoint,
                                out_dir=args.out, num_queries=args.queries, topk=args.topk,
                                num_ids=args.ids, seed=args.seed, device=args.device,
                                tensorboard=not args.no_tensorboard)
    except USER_ERRORS + (ValueError,) as exc:   # missing run files: one message
        print('error: {}'.format(exc), file=sys.stderr)
        return 1
    for tag, path in written.items():
        print('{}  ({})'.format(path, tag))
    return 0


if __name__ == '__main__':
    sys.exit(main())
