#!/usr/bin/env python
"""Write synthetic datasets (SYSU-MM01, RegDB, HITSZ-VCM, LLCM, BUPTCampus) in their layouts.

    python scripts/make_synthetic_data.py --root datasets --dataset all [--plugin MODULE]
"""
import argparse
import os
import sys

# run from a fresh clone without installing the package
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vireid_plugin import plugins  # noqa: E402
from vireid_plugin.data.prepare import write_synthetic  # noqa: E402
from vireid_plugin.data.synthetic import is_synthetic  # noqa: E402
from vireid_plugin.errors import ConfigError  # noqa: E402
from vireid_plugin.registry import SYNTHETIC_WRITERS  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--root', default='datasets',
                        help='folder that receives the dataset folders')
    parser.add_argument('--dataset', default='all',
                        help='all, or one registered dataset writer (built in: {})'.format(
                            ', '.join(SYNTHETIC_WRITERS.names())))
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--overwrite', action='store_true', help='replace existing dataset folders')
    parser.add_argument('--flat', action='store_true',
                        help='HITSZ-VCM: pid folders directly under HITSZ-VCM/ (no Train/Test)')
    plugins.add_argument(parser)
    args = parser.parse_args(argv)
    try:
        plugins.load(args.plugin)
        names = SYNTHETIC_WRITERS.names() if args.dataset == 'all' else [args.dataset]
        SYNTHETIC_WRITERS.get(names[0])   # an unknown name: the message lists the known ones
    except (ConfigError, KeyError) as exc:
        parser.exit(2, 'error: {}\n'.format(exc.args[0]))
    for name in names:
        target = os.path.join(args.root, SYNTHETIC_WRITERS.get(name).folder)
        if is_synthetic(target) and not args.overwrite:
            print('{} already holds synthetic {}: kept (--overwrite writes it again)'.format(
                target, name))
            continue
        try:
            write_synthetic(name, args.root, seed=args.seed, overwrite=args.overwrite,
                            flat=args.flat)
        except FileExistsError as exc:
            parser.exit(1, 'error: {}\n'.format(exc))


if __name__ == '__main__':
    main()
