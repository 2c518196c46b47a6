"""CMC curves from ``results.json``: every protocol row of a run, several runs on one plot.

A run's curve is its last evaluation of a trained model per dataset (the rows that
``scripts/aggregate_results.py`` reads), drawn at the ranks the run recorded
(``R1``, ``R5``, ``R10``, ``R20`` by default); mAP is in the legend.
"""
import os
import re

from ..engine.evaluation import final_rows
from .common import new_figure

__all__ = ['cmc_curves', 'cmc_figure', 'CMC_SIZE']

CMC_SIZE = (8.0, 5.0)   # inches
_RANK = re.compile(r'^R(\d+)$')


def cmc_curves(results_path, label=''):
    """[(legend label, ranks, CMC in %, mAP)] of one run's results.json."""
    rows = final_rows(results_path)
    label = label or os.path.basename(os.path.dirname(os.path.abspath(results_path)))
    curves = []
    for (dataset, mode), row in rows.items():
        ranks = sorted(int(m.group(1)) for m in map(_RANK.match, row) if m)
        curves.append(('{}: {} {}'.format(label, dataset, mode), ranks,
                       [row['R{}'.format(r)] for r in ranks], row.get('mAP')))
    return curves


def cmc_figure(runs, title='CMC'):
    """runs: [(label, results.json path)]. Returns (figure, curves)."""
    fig, axes = new_figure(*CMC_SIZE)
    ax = axes[0, 0]
    curves = []
    for label, path in runs:
        curves += cmc_curves(path, label)
    for name, ranks, cmc, mAP in curves:
        ax.plot(ranks, cmc, marker='o', label='{} (mAP {:.1f})'.format(name, mAP)
                if mAP is not None else name)
    ax.set_xlabel('rank')
    ax.set_ylabel('matching rate (%)')
    ax.set_ylim(0, 100)
    if curves:
        ax.set_xticks(sorted({r for _, ranks, _, _ in curves for r in ranks}))
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc='lower right')
    ax.set_title(title)
    fig.tight_layout()
    return fig, curves
