"""Signal names of the config (``train.preempt_signals``) -> the signals a run catches."""
import signal


def signal_numbers(names):
    """['SIGTERM', 'USR1', ...] -> [signal.Signals]; ValueError naming an unknown one or one
    that cannot be caught."""
    out = []
    for name in names:
        key = str(name).upper()
        key = key if key.startswith('SIG') else 'SIG' + key
        sig = getattr(signal.Signals, key, None)
        if sig is None or sig in (signal.SIGKILL, signal.SIGSTOP):
            raise ValueError('{!r} is not a signal a run can catch (e.g. SIGTERM, SIGUSR1, '
                             'SIGUSR2, SIGINT)'.format(name))
        out.append(sig)
    return out
