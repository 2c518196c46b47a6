"""Pre-emption: a scheduler's signal ends the run at a step boundary with nothing lost.

SLURM and most cluster schedulers send SIGTERM (or a chosen signal ahead of the time
limit, e.g. ``sbatch --signal=USR1@120``) and kill the job a little later. While a run
trains, ``PreemptionGuard`` replaces the handlers of ``train.preempt_signals``: a signal
only records that it came. The engine asks after every step in a single process
(``requested()``, a flag); under torchrun the ranks agree on it every ``train.print_freq``
steps and at each epoch's end, inside the log line's reduction (``agree()``: no
collective and no host sync of its own, so a run stops up to ``print_freq`` steps after
the signal). It finishes that step, writes a checkpoint at that iteration
through the one atomic writer, writes ``preempted.json`` (where it stopped and the
evaluation results so far) and raises ``Preempted``; the command line exits with
``PREEMPTED_EXIT_STATUS``. ``model.resume auto`` continues exactly from there.

More signals while the checkpoint is written are counted and ignored: a save is never
cut short, and the previous checkpoint stays intact whatever happens (atomic writes).
The previous handlers come back when the guard closes.
"""
import signal
import threading

from .. import distributed
from ..signals import signal_numbers

#: the command line's exit status after a pre-emption: EX_TEMPFAIL of sysexits.h
#: ("temporary failure; the user is invited to retry"), distinct from 0 (done), 1 (an
#: error), 2 (a config error) and from 128 + N (killed by signal N)
PREEMPTED_EXIT_STATUS = 75

#: what ``train.preempt_signals`` holds unless a config says otherwise
DEFAULT_SIGNALS = ('SIGTERM', 'SIGUSR1')

#: the file the engine writes beside the checkpoints when a signal stopped it
PREEMPTED_FILE = 'preempted.json'


class Preempted(Exception):
    """The run stopped on a signal after writing a resumable checkpoint."""

    def __init__(self, signame, epoch, iteration, checkpoint):
        self.signame, self.epoch, self.iteration = signame, epoch, iteration
        self.checkpoint = checkpoint
        where = 'at epoch {} iteration {}'.format(epoch + 1, iteration) if iteration else \
            'after epoch {}'.format(epoch)
        super().__init__(
            'stopped by {} {}; checkpoint "{}" written: continue with model.resume auto '
            '(or --resume); exit status {}'.format(signame, where, checkpoint,
                                                    PREEMPTED_EXIT_STATUS))


class PreemptionGuard:
    """Context manager: while open, ``signals`` only mark the run as asked to stop.

    Handlers can only be installed from the main thread; elsewhere the guard stays
    inactive (``requested()`` is then always False) and says so once.
    """

    def __init__(self, signals=DEFAULT_SIGNALS, log=print):
        self.signals = signal_numbers(signals)
        self.log = log
        self.received = None     # the first signal (signal.Signals) or None
        self.extra = 0           # signals after the first, ignored
        self._previous = {}

    def __enter__(self):
        if not self.signals:
            return self
        if threading.current_thread() is not threading.main_thread():
            self.log('=> Pre-emption handling off: the run is not in the main thread')
            return self
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        self._previous = {}
        return False

    def _handle(self, signum, frame):
        # a handler only records: the step, and any save under way, finish undisturbed
        if self.received is None:
            self.received = signal.Signals(signum)
        else:
            self.extra += 1

    @property
    def signame(self):
        return self.received.name if self.received is not None else None

    def requested(self):
        """Whether any rank got a signal (every rank gets the same answer: under torchrun
        they all stop at the same step). A collective under torchrun: the engine uses
        :meth:`agree` with a flag reduced along with its log instead."""
        return self.agree(distributed.any_rank(self.received is not None))

    def agree(self, any_rank):
        """Take ``any_rank`` (whether some rank got a signal, already agreed by every rank)
        as the answer; returns it."""
        if any_rank and self.received is None:   # another rank got it: name the first signal
            self.received = self.signals[0] if self.signals else signal.SIGTERM
        return bool(any_rank)
