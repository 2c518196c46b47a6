#!/usr/bin/env python
"""Parameters and FLOPs of LSMRL against a plain CLIP mean-pooling video baseline.

    python scripts/lsmrl_cost.py [--arch lsmrl_clip_vit_b16] [--num-classes 500] [--seq-len 6]

Prints one JSON line per variant: the baseline (CLIP image tower per frame, temporal
mean, BNNeck heads: STFL, SD and CMI off), + STFL, + STFL + SD, and full LSMRL.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from vireid_plugin.models.lsmrl.cost import lsmrl_cost  # noqa: E402

VARIANTS = [('baseline (CLIP, temporal mean)', dict(stfl=False, sd=False, cmi=False)),
            ('+ STFL', dict(stfl=True, sd=False, cmi=False)),
            ('+ STFL + SD', dict(stfl=True, sd=True, cmi=False)),
            ('LSMRL (STFL + SD + CMI)', dict(stfl=True, sd=True, cmi=True))]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--arch', default='lsmrl_clip_vit_b16')
    p.add_argument('--num-classes', type=int, default=500)
    p.add_argument('--seq-len', type=int, default=6)
    args = p.parse_args(argv)
    for name, options in VARIANTS:
        row = lsmrl_cost(args.arch, args.num_classes, args.seq_len, **options)
        print(json.dumps(dict(variant=name, **row)), flush=True)


if __name__ == '__main__':
    main()
