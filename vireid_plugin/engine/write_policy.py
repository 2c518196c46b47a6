"""What a failed write at a save point does: ``train.on_write_error``.

Every file a run writes goes through the one atomic writer
(``checkpoint_io.atomic_write``): a failed write (disk full, I/O error on a revoked
mount, no permission) leaves the previous file intact and no partial file, and raises
``WriteError`` naming the file and the cause. The engine makes its writes through
``WritePolicy.write`` at its save points; the policy decides what happens next:

- ``stop`` (the default): the error ends the run; the newest checkpoint on disk is
  complete, so ``model.resume auto`` continues from it once there is room again.
- ``retry``: the failure is printed and training continues; the write is tried again
  at the next save point. A checkpoint (``replaces=True``) is superseded by the next
  checkpoint, which is that retry (the newest state is the one worth writing; an old
  state is not kept in memory). A results record (``replaces=False``) is kept and
  written, in order, before the next write of any kind. When the run ends,
  ``finish()`` tries the kept writes once more and raises ``WriteError`` if anything
  the run should have written is still missing, so a run never ends with status 0
  while one of its files was not written.
"""
from ..checkpoint_io import WriteError

__all__ = ['ON_WRITE_ERROR', 'WritePolicy', 'WriteError']

ON_WRITE_ERROR = ('stop', 'retry')


class WritePolicy:
    """``mode``: 'stop' or 'retry' (see the module doc); ``log``: where messages go."""

    def __init__(self, mode='stop', log=print):
        if mode not in ON_WRITE_ERROR:
            raise ValueError('on_write_error must be one of {}, got {!r}'.format(
                ON_WRITE_ERROR, mode))
        self.mode = mode
        self.log = log
        #: {kind: WriteError} of superseding writes whose last attempt failed
        self.failed = {}
        #: [(kind, write, WriteError)] kept writes (results records), oldest first
        self.queued = []

    def write(self, kind, write, replaces=True):
        """Run ``write()`` (a write through the atomic writer) at a save point; ``kind``
        names it in messages ('checkpoint', 'results', ...). Returns its result, or None
        when it failed and the policy is 'retry'."""
        self._retry_queued()
        if not replaces and self.queued:   # an earlier record is still missing: keep order
            self.queued.append((kind, write, self.queued[0][2]))
            return None
        try:
            result = write()
        except WriteError as exc:
            if self.mode == 'stop':
                raise
            if replaces:
                self.failed[kind] = exc
                then = 'the next {} write tries again'.format(kind)
            else:
                self.queued.append((kind, write, exc))
                then = 'kept in memory and written at the next save point'
            self.log('=> {}. Training continues (train.on_write_error retry); {}'.format(
                exc, then))
            return None
        if replaces and self.failed.pop(kind, None) is not None:
            self.log('=> {} written again after a failed write'.format(kind))
        return result

    def _retry_queued(self):
        """The kept writes, oldest first, until one fails again."""
        while self.queued:
            kind, write, _ = self.queued[0]
            try:
                write()
            except WriteError as exc:
                self.queued[0] = (kind, write, exc)
                return
            self.queued.pop(0)
            self.log('=> {} written now (it had failed before)'.format(kind))

    def finish(self):
        """At the end of a run: write what is still kept; raise ``WriteError`` naming every
        file whose write still failed."""
        self._retry_queued()
        missing = list(self.failed.values()) + [e for _, _, e in self.queued]
        if not missing:
            return
        causes = list(dict.fromkeys(str(e) for e in missing))   # one line per file and cause
        error = WriteError(missing[0].filename, missing[0])
        error.message = 'the run ended with {} write(s) that never succeeded: {}'.format(
            len(missing), '; '.join(causes))
        raise error
