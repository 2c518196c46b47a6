#!/usr/bin/env python
"""Write synthetic SYSU-MM01 / RegDB / HITSZ-VCM / LLCM / BUPTCampus data in their real layouts.

    python scripts/make_synthetic_data.py --root datasets --dataset all
"""
import argparse
import os
import sys
import time

# run from a fresh clone without installing the package
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vireid_plugin.data.synthetic import SYNTHETIC  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--root', default='datasets',
                        help='folder that receives the dataset folders')
    parser.add_argument('--dataset', default='all', choices=sorted(SYNTHETIC) + ['all'])
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--overwrite', action='store_true', help='replace existing dataset folders')
    parser.add_argument('--flat', action='store_true',
                        help='HITSZ-VCM: pid folders directly under HITSZ-VCM/ (no Train/Test)')
    args = parser.parse_args(argv)
    families = sorted(SYNTHETIC) if args.dataset == 'all' else [args.dataset]
    for family in families:
        kw = {'flat': args.flat} if family == 'hitsz_vcm' else {}
        start = time.time()
        try:
            path = SYNTHETIC[family](args.root, seed=args.seed, overwrite=args.overwrite, **kw)
        except FileExistsError as exc:
            parser.exit(1, 'error: {}\n'.format(exc))
        print('wrote {} in {:.1f} s'.format(path, time.time() - start))


if __name__ == '__main__':
    main()
