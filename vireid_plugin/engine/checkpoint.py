"""Resuming a training run from a checkpoint written by the engine.

Writing and reading files is ``vireid_plugin.checkpoint_io`` (the one atomic writer
and the one reader); loading weights into a model is ``vireid_plugin.models.load_weights``.
"""
from ..checkpoint_io import CheckpointError, load_checkpoint, save_checkpoint, state_dict_of
from ..models.load import load_weights

__all__ = ['CheckpointError', 'load_checkpoint', 'save_checkpoint', 'load_weights', 'resume']


def resume(path, model, optimizer=None, scheduler=None, criterion=None):
    """Restore model/optimizer/scheduler (and the loss terms' parameters); returns the
    epoch to start from."""
    ckpt = load_checkpoint(path)
    if not isinstance(ckpt, dict) or 'state_dict' not in ckpt or 'epoch' not in ckpt:
        raise CheckpointError('{} is not a training checkpoint (expected keys state_dict and '
                              'epoch, found {})'.format(path, sorted(ckpt)[:6] if isinstance(
                                  ckpt, dict) else type(ckpt).__name__))
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
        optimizer.load_state_dict(ckpt['optimizer'])
    if scheduler is not None and ckpt.get('scheduler'):
        scheduler.load_state_dict(ckpt['scheduler'])
    return int(ckpt['epoch'])
