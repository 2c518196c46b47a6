#!/usr/bin/env python
"""Average the final results of several runs, e.g. RegDB's ten trials.

    for t in 0 1 2 3 4 5 6 7 8 9; do
        python scripts/main.py --config-file CFG data.split_id $t data.save_dir log/regdb_t$t
    done
    python scripts/aggregate_results.py log/regdb_t*/results.json

RegDB is reported as the mean over ten models, each trained and tested on its own
trial (data.split_id 0..9); SYSU-MM01's ten gallery trials are already averaged
inside one run.
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tabulate import tabulate  # noqa: E402

from vireid_plugin.engine.evaluation import average_runs  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('results', nargs='+', help='results.json files of the runs')
    p.add_argument('--json', default='', help='also write the averaged rows here')
    args = p.parse_args(argv)
    try:
        rows = average_runs(args.results)
    except ValueError as exc:
        print('error: {}'.format(exc), file=sys.stderr)
        return 1
    table = [[r['dataset'], r['mode'], r['runs']] +
             ['{:.2f} ± {:.2f}'.format(r[m], r[m + '_std'])
              for m in r if not m.endswith('_std') and m not in ('dataset', 'mode', 'runs')]
             for r in rows]
    metrics = [m for m in rows[0]
               if not m.endswith('_std') and m not in ('dataset', 'mode', 'runs')]
    print(tabulate(table, headers=['dataset', 'mode', 'runs'] + metrics, tablefmt='github'))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(rows, f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
