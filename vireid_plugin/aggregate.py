"""The mean ± std of several runs' final results, e.g. RegDB's ten trials: a table, and
``scripts/aggregate_results.py``'s command line (``main``).

Each run's ``results.json`` contributes its last evaluation of a trained model per
dataset and mode (``engine.evaluation.average_runs``).
"""
import argparse
import json
import os
import sys

from tabulate import tabulate

from .checkpoint_io import atomic_write
from .engine.evaluation import RESULTS_FILE, average_runs

__all__ = ['averages_table', 'main']

_KEYS = ('dataset', 'mode', 'runs')


def averages_table(rows):
    """``average_runs`` rows as a GitHub-style table: one ``mean ± std`` column per metric."""
    metrics = [m for m in rows[0] if not m.endswith('_std') and m not in _KEYS]
    table = [[r['dataset'], r['mode'], r['runs']] +
             ['{:.2f} ± {:.2f}'.format(r[m], r[m + '_std'])
              for m in r if not m.endswith('_std') and m not in _KEYS]
             for r in rows]
    return tabulate(table, headers=list(_KEYS) + metrics, tablefmt='github')


def results_path(run):
    """A run folder's ``results.json`` (``scripts/visualize.py`` takes folders too), or the
    file given."""
    return os.path.join(run, RESULTS_FILE) if os.path.isdir(run) else run


def build_parser():
    p = argparse.ArgumentParser(
        description='Average the final results of several runs, e.g. RegDB\'s ten trials.')
    p.add_argument('results', nargs='+', metavar='RUN',
                   help='the runs: their folders (data.save_dir) or results.json files')
    p.add_argument('--json', default='', help='also write the averaged rows here')
    return p


def main(argv=None):
    """Prints the table; exit status 1 (one ``error:`` line) when the runs do not fit."""
    args = build_parser().parse_args(argv)
    try:
        rows = average_runs([results_path(r) for r in args.results])
    except ValueError as exc:
        print('error: {}'.format(exc), file=sys.stderr)
        return 1
    print(averages_table(rows))
    if args.json:
        atomic_write(args.json, lambda f: json.dump(rows, f, indent=2), mode='w')
    return 0


if __name__ == '__main__':
    sys.exit(main())
