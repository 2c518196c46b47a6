"""Training checkpoints: when they are written, which are kept, and resuming from them.

Files live in ``<save_dir>/model/``: ``model.pth.tar-<E>`` after E whole epochs (torchreid's
name), ``model.pth.tar-<E>-it<K>`` after K iterations of epoch E + 1 (every
``train.checkpoint_every_iters``), and ``model-best.pth.tar`` (the best on the
selection split when ``test.select_on`` is ``val`` or ``test``). The newest
``train.keep_checkpoints`` regular files are kept, the best one always.

A training checkpoint holds everything an uninterrupted run would still have:
model, loss-term parameters, optimizer, scheduler, AMP scaler, every RNG (Python,
NumPy, torch, CUDA; DataLoader workers draw from per-item seeds, see
``data/seeded.py``), the epoch and the iteration inside it (the sampler restarts
there), the schedule it was trained with, and the selection state. Files are
written by the one atomic writer (``checkpoint_io``); a checkpoint whose weights
are not finite is never written.

Writing and reading files is ``vireid_plugin.checkpoint_io``; loading weights into
a model is ``vireid_plugin.models.load_weights``.
"""
import os
import re

import torch

from ..errors import UserError, bounded_repr
from ..checkpoint_io import CheckpointError, load_checkpoint, save_checkpoint, state_dict_of
from ..models.load import load_weights
from ..optim.optimizers import place_state

__all__ = ['CheckpointError', 'CheckpointManager', 'NonFiniteError', 'load_checkpoint',
           'save_checkpoint', 'load_weights', 'resume', 'schedule_changes', 'BEST']

BEST = 'model-best.pth.tar'
#: optimizer options that say how, not what, it computes
IMPLEMENTATION_KEYS = ('fused', 'foreach')
_NAME = re.compile(r'^model\.pth\.tar-(\d+)(?:-it(\d+))?$')


class NonFiniteError(UserError, RuntimeError):
    """Training produced a non-finite loss or non-finite weights it cannot recover from."""


def checkpoint_name(epoch, iteration=0):
    return 'model.pth.tar-{}'.format(epoch) + ('-it{}'.format(iteration) if iteration else '')


def parse_name(name):
    """(epochs done, iterations into the next epoch) of a checkpoint file name, or None."""
    m = _NAME.match(name)
    return (int(m.group(1)), int(m.group(2) or 0)) if m else None


def nonfinite_tensors(state_dict):
    """Names of floating tensors with NaN or inf values."""
    return [k for k, v in state_dict.items()
            if torch.is_tensor(v) and v.is_floating_point() and not torch.isfinite(v).all()]


class CheckpointManager:
    """Writes, prunes and finds the checkpoints of one run (``<save_dir>/model``)."""

    def __init__(self, save_dir, keep=3):
        self.folder = os.path.join(save_dir, 'model')
        self.keep = max(1, int(keep))

    def regular(self):
        """[(epoch, iteration, path)] of the regular checkpoints, oldest first."""
        if not os.path.isdir(self.folder):
            return []
        found = []
        for name in os.listdir(self.folder):
            key = parse_name(name)
            if key is not None:
                found.append((*key, os.path.join(self.folder, name)))
        return sorted(found)

    def save(self, state, epoch, iteration=0, best=False):
        """Write the checkpoint of (epoch, iteration) and prune; ``best`` also writes
        ``model-best.pth.tar``. Refuses weights that are not finite."""
        bad = nonfinite_tensors(state['state_dict'])
        if bad:
            raise NonFiniteError('not writing a checkpoint at epoch {} iteration {}: the weights '
                                 'hold NaN/inf values ({}); the previous checkpoint is intact'
                                 .format(epoch, iteration, ', '.join(bad[:4])))
        path = os.path.join(self.folder, checkpoint_name(epoch, iteration))
        save_checkpoint(state, path)
        if best:
            save_checkpoint(state, os.path.join(self.folder, BEST))
        self.prune((epoch, iteration))
        return path

    def prune(self, newest):
        """Keep the ``keep`` newest regular checkpoints up to ``newest`` (epoch, iteration),
        the one just written included; files of later steps (another run's, or a branch
        this run resumed before) are never counted against it, so a checkpoint reported
        as saved is never deleted by its own pruning."""
        earlier = [path for e, i, path in self.regular() if (e, i) < tuple(newest)]
        for old in earlier[:max(0, len(earlier) - (self.keep - 1))]:
            os.remove(old)

    def latest_good(self, log=print):
        """The newest regular checkpoint that loads; unreadable ones are reported and skipped.
        Returns (path, loaded object) or (None, None)."""
        for _, _, path in reversed(self.regular()):
            try:
                return path, load_checkpoint(path)
            except CheckpointError as exc:
                log('Skipping an unusable checkpoint: {}'.format(exc))
        return None, None


def schedule_changes(saved, current):
    """'key: checkpoint X, config Y' for every schedule setting that differs (a value read
    from the file is printed bounded: nested shared lists cost bytes on disk and gigabytes
    as text)."""
    if not isinstance(saved, dict) or not saved:
        return []
    return ['{}: checkpoint {}, config {}'.format(k, bounded_repr(saved[k]), current[k])
            for k in sorted(current) if k in saved and _plain(saved[k]) != _plain(current[k])]



def _plain(value):
    return list(value) if isinstance(value, (list, tuple)) else value


def resume(path, model, optimizer=None, scheduler=None, criterion=None):
    """Restore model/optimizer/scheduler (and the loss terms' parameters) from a checkpoint
    file; returns the epoch to start from. (The engine's ``resume`` also restores the
    RNGs, the position inside an epoch and the selection state.)"""
    ckpt = load_checkpoint(path)
    restore_training_state(ckpt, path, model, optimizer, scheduler, criterion)
    return int(ckpt['epoch'])


def check_training_checkpoint(ckpt, path):
    """Refuse what ``load_checkpoint(path)`` read unless it is a training checkpoint."""
    if not isinstance(ckpt, dict) or 'state_dict' not in ckpt or 'epoch' not in ckpt:
        raise CheckpointError('{} is not a training checkpoint (expected keys state_dict and '
                              'epoch, found {})'.format(path, sorted(ckpt)[:6] if isinstance(
                                  ckpt, dict) else type(ckpt).__name__))


def restore_training_state(ckpt, path, model, optimizer=None, scheduler=None, criterion=None,
                           scaler=None):
    """Load the parts of a training checkpoint into the given objects."""
    check_training_checkpoint(ckpt, path)
    try:
        model.load_state_dict(state_dict_of(ckpt, path))
    except RuntimeError as exc:
        raise CheckpointError('{} does not fit model {}: {}'.format(
            path, type(model).__name__, str(exc).splitlines()[1:3])) from None
    if criterion is not None and ckpt.get('criterion'):
        try:
            criterion.load_state_dict(ckpt['criterion'])
        except RuntimeError as exc:
            raise CheckpointError('{}: its loss-term parameters do not fit loss.terms {}: {}'
                                  .format(path, list(getattr(criterion, 'terms', {})),
                                          str(exc).splitlines()[1:3])) from None
    if optimizer is not None and ckpt.get('optimizer'):
        # the saved groups carry the writer's implementation (fused on a GPU, foreach on
        # the CPU); keep this run's, chosen for this run's device
        kept = [{k: g[k] for k in IMPLEMENTATION_KEYS if k in g} for g in optimizer.param_groups]
        try:
            optimizer.load_state_dict(ckpt['optimizer'])
        except ValueError as exc:
            raise CheckpointError(
                '{}: its optimizer state does not fit this optimizer ({}); was train.optim or '
                'the model changed (a run of an earlier version)? train.resume_fresh_optimizer '
                'True resumes its weights, schedule and position with the optimizer\'s '
                'moments started afresh'.format(path, exc)) from None
        for group, flags in zip(optimizer.param_groups, kept):
            group.update(flags)
        place_state(optimizer)   # the state where this implementation reads it
    if scheduler is not None and ckpt.get('scheduler'):
        scheduler.load_state_dict(ckpt['scheduler'])
    if scaler is not None and ckpt.get('scaler'):
        scaler.load_state_dict(ckpt['scaler'])


def resume_target(configured, save_dir, env=None):
    """What a run resumes from: ``model.resume`` as configured, except that a worker
    restarted by ``torchrun --max-restarts`` (``TORCHELASTIC_RESTART_COUNT`` > 0) with no
    ``model.resume`` takes 'auto', so an elastic job picks its newest complete checkpoint
    up by itself. 'auto' with no checkpoint in ``save_dir`` yet is '' (a fresh start, the
    prompt stage included)."""
    env = os.environ if env is None else env
    target = configured
    if not target and int(env.get('TORCHELASTIC_RESTART_COUNT', '0') or 0) > 0:
        target = 'auto'
        print('=> Restarted by torchrun (restart {}): model.resume auto'.format(
            env['TORCHELASTIC_RESTART_COUNT']))
    if target == 'auto' and not CheckpointManager(save_dir).regular():
        print('=> model.resume auto: no checkpoint in "{}"; starting from scratch'.format(
            os.path.join(save_dir, 'model')))
        return ''
    return target
