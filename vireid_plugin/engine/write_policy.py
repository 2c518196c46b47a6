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

Under torchrun only rank 0 writes, and the other ranks must stop with it, not wait at
their next collective until the process group's timeout (NCCL: 10 minutes by default
in torch 2.x). So with ``stop`` and
several processes a failed write does not raise at once: the rank skips the writes that
follow and goes on to the end of the save point, where every rank calls ``agree()``: one
all-reduce of one flag (a barrier the save point needs anyway: the other ranks wait
for the file). When a write failed on any rank, every rank raises there, together: the
rank whose write failed its ``WriteError`` (the one message, naming the file and the
cause), the others a quiet ``JobStopped``; every rank exits with status 1. torchrun
restarts failed workers whatever their status (it has no "do not restart" status), so
the failing rank first leaves the message in torchrun's store
(``distributed.stop_restarts``): restarted workers end at once with it, before any
data work. The save points are the checkpoint (``save_training_checkpoint``), the end
of an evaluation (``test``: results records and pool features) and of a validation.
"""
import sys

from .. import distributed
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
        #: the WriteError that stops the run, kept until the ranks agree (``agree``)
        self.stopping = None

    def write(self, kind, write, replaces=True):
        """Run ``write()`` (a write through the atomic writer) at a save point; ``kind``
        names it in messages ('checkpoint', 'results', ...). Returns its result, or None
        when it failed and the policy is 'retry', or under torchrun with 'stop' (the
        error is raised at the save point's ``agree()``; writes until then are skipped)."""
        if self.stopping is not None:
            return None
        self._retry_queued()
        if not replaces and self.queued:   # an earlier record is still missing: keep order
            self.queued.append((kind, write, self.queued[0][2]))
            return None
        try:
            result = write()
        except WriteError as exc:
            if self.mode == 'stop':
                if not distributed.is_distributed():
                    raise
                self.stopping = exc   # the other ranks stop with this one at agree()
                return None
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

    def agree(self, failed=None):
        """The end of a save point, on every rank: stop together when a write failed.

        ``failed``: a ``WriteError`` of a write made outside the policy (it always
        stops). Under torchrun one all-reduce of one flag; then the rank whose write
        failed raises its ``WriteError`` and the others ``distributed.JobStopped``
        (quiet). That rank prints the message (stderr) and leaves it in torchrun's store
        for restarted workers before the all-reduce, so no rank can exit (and have
        torchrun end the others) before the message is out. One
        process: raises ``failed`` if given (a failed policy write raised already)."""
        failed = failed if failed is not None else self.stopping
        if not distributed.is_distributed():
            if failed is not None:
                raise failed
            return
        if failed is not None:   # before the all-reduce: the other ranks cannot exit yet
            distributed.stop_restarts(str(failed))
            print('error: {}'.format(failed), file=sys.stderr, flush=True)
            failed.quiet = True   # printed: the command line does not print it again
        if distributed.any_rank(failed is not None):
            if failed is not None:
                raise failed
            raise distributed.JobStopped('stopped with the rank whose write failed (its '
                                         'message names the file)', quiet=True)

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
        file whose write still failed (or, under torchrun, the write that stopped the run
        after the last save point)."""
        if self.stopping is not None:
            raise self.stopping
        self._retry_queued()
        missing = list(self.failed.values()) + [e for _, _, e in self.queued]
        if not missing:
            return
        causes = list(dict.fromkeys(str(e) for e in missing))   # one line per file and cause
        error = WriteError(missing[0].filename, missing[0])
        error.message = 'the run ended with {} write(s) that never succeeded: {}'.format(
            len(missing), '; '.join(causes))
        raise error
