"""Progress reporting: a tqdm bar on a terminal, a few plain lines in a log.

``progress(iterable, desc)`` is the one helper every loop of the plugin (epochs,
feature extraction, scoring) uses. On a TTY it is a ``tqdm`` bar; when the output
is redirected (a log file, CI, a cluster job) tqdm's carriage-return updates would
fill the log with one long line, so it prints at most ``lines`` plain lines instead
(``desc: 25/100 (25%) 3.1s``), at least ``min_interval`` seconds apart (a loop that
finishes quickly prints only its last line), then one at the end.
"""
import sys
import time

from tqdm import tqdm

__all__ = ['progress', 'is_tty']


def is_tty(stream=None):
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):   # closed or replaced streams
        return False


def progress(iterable, desc, total=None, enabled=True, lines=4, stream=None, tty=None,
             min_interval=10.0):
    """Iterate ``iterable`` while reporting progress on ``stream`` (default stderr).

    Args:
        desc: what is being done ("extracting sysu_mm01 features").
        total: number of items when ``len(iterable)`` is not available.
        enabled: False yields the items with no output at all.
        lines: plain-text mode prints at most this many intermediate lines,
        min_interval: and only once this many seconds have passed since the last one.
        tty: force bar (True) or plain lines (False); default: whether ``stream`` is a TTY.
    """
    if not enabled:
        yield from iterable
        return
    stream = sys.stderr if stream is None else stream
    if total is None:
        try:
            total = len(iterable)
        except TypeError:
            total = None
    if tty if tty is not None else is_tty(stream):
        yield from tqdm(iterable, desc=desc, total=total, file=stream, dynamic_ncols=True,
                        leave=False)
        return
    yield from _plain(iterable, desc, total, lines, stream, min_interval)


def _plain(iterable, desc, total, lines, stream, min_interval):
    start = last = time.time()
    step = max(1, total // (lines + 1)) if total else None
    count = 0
    for count, item in enumerate(iterable, 1):
        yield item
        if step and count % step == 0 and count < total and \
                time.time() - last >= min_interval:
            last = time.time()
            print('{}: {}/{} ({:.0f}%) {:.1f}s'.format(desc, count, total, 100.0 * count / total,
                                                       time.time() - start),
                  file=stream, flush=True)
    print('{}: {}{} done in {:.1f}s'.format(desc, count, '/{}'.format(total) if total else '',
                                            time.time() - start), file=stream, flush=True)
