"""How a cross-modal test set is scored: a feature pool and the modes drawn from it.

A dataset exposes ``test_pool`` (every query or gallery candidate, as item
tuples) and ``eval_modes(matrix)``. The engine extracts features for the pool
once and scores every mode and trial by indexing into it, so galleries are
never re-extracted per trial and both search directions share one extraction.
"""
from dataclasses import dataclass
from typing import Tuple

import numpy as np


@dataclass(frozen=True)
class EvalMode:
    """One row of a results table.

    name: row label as papers print it, e.g. ``'all-search single-shot'``.
    metric: protocol for ``vireid_plugin.metrics.evaluate_rank`` (sysu/regdb/vcm).
    query: int64 indices into ``dataset.test_pool``.
    galleries: one int64 index array into ``test_pool`` per trial (averaged).
    """
    name: str
    metric: str
    query: np.ndarray
    galleries: Tuple[np.ndarray, ...]

    @property
    def num_trials(self):
        return len(self.galleries)
