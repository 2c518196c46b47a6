"""One run per ``data.save_dir``: a folder that holds another run is never mixed with a new one.

A run's folder holds its checkpoints (``model/``), its evaluations (``results.json``), the
features they scored and, after a pre-emption, ``preempted.json``. A new run (training,
or an evaluation) into a folder that holds any of these would append its results to the
old ones, overwrite their features, and have its checkpoints pruned against the old
run's. So, before anything is written or loaded (``check_save_dir``):

- a run that continues the folder's run (``--resume``, ``model.resume``) goes on;
- ``--start-over`` (``data.start_over True``) moves the old run aside, to
  ``<save_dir>.old-<YYYYmmdd-HHMMSS>``, and starts in an empty folder;
- otherwise the run is refused with one line naming the three ways out.
"""
import os
import time

from ..errors import UserError
from .evaluation import RESULTS_FILE
from .preemption import PREEMPTED_FILE
from .saved_features import FEATURES_FILE, UNTRAINED_FEATURES_FILE

__all__ = ['SaveDirInUseError', 'RUN_FILES', 'run_files', 'check_save_dir', 'move_aside']

#: what marks a folder as holding a run (logs and config.yaml alone do not: a run that
#: failed before its first result left nothing to lose)
RUN_FILES = (RESULTS_FILE, FEATURES_FILE, UNTRAINED_FEATURES_FILE, PREEMPTED_FILE)
CHECKPOINT_FOLDER = 'model'


class SaveDirInUseError(UserError, FileExistsError):
    """data.save_dir holds another run and this one neither continues it nor starts over."""


def run_files(save_dir):
    """The entries of ``save_dir`` that belong to a run (sorted names; empty: no run)."""
    found = [name for name in RUN_FILES if os.path.isfile(os.path.join(save_dir, name))]
    ckpts = os.path.join(save_dir, CHECKPOINT_FOLDER)
    if os.path.isdir(ckpts):
        found += [os.path.join(CHECKPOINT_FOLDER, name) for name in sorted(os.listdir(ckpts))
                  if name.startswith('model')]
    return sorted(found)


def move_aside(save_dir, now=None):
    """Rename ``save_dir`` to ``<save_dir>.old-<time>`` (a free name); returns the new path."""
    stamp = time.strftime('%Y%m%d-%H%M%S', time.localtime(now))
    base = '{}.old-{}'.format(os.path.normpath(save_dir), stamp)
    target, k = base, 1
    while os.path.exists(target):
        k += 1
        target = '{}-{}'.format(base, k)
    os.rename(save_dir, target)
    return target


def check_save_dir(save_dir, resume=False, evaluate=False, start_over=False, move=True):
    """Refuse (``SaveDirInUseError``) a new run into a folder holding another run, unless it
    ``resume``s it; with ``start_over`` the old run is moved aside (by the caller where
    ``move`` is False: only one process of a multi-process run moves it). Returns the
    folder the old run went to, or None."""
    found = run_files(save_dir) if os.path.isdir(save_dir) else []
    if not found or (resume and not evaluate):
        return None
    if start_over:
        if not move:
            return None
        moved = move_aside(save_dir)
        print('=> --start-over: the run that was in {} is now in {}'.format(save_dir, moved))
        return moved
    shown = ', '.join(found[:3]) + (', ...' if len(found) > 3 else '')
    raise SaveDirInUseError(
        'data.save_dir {} holds another run ({}); {}choose another data.save_dir, or pass '
        '--start-over (data.start_over True) to move that run aside to {}.old-<time> and '
        'start again'.format(save_dir, shown,
                             '' if evaluate else 'continue it with --resume, ',
                             os.path.normpath(save_dir)))
