"""Batches of decoded inputs for the extractor, decoded beside the model in threads.

The per-image work (open, decode, resize: PIL, which releases the GIL) runs in
``threads`` decoding threads, in input order, up to ``ahead`` batches in front of the
batch the model is on (memory stays ``ahead + 1`` batches whatever the input count).
The thread that decodes a batch's last item also assembles the batch (``collate``, then
``finish``: the extractor's normalisation), so the thread running the model only runs
the model. That thread decodes too while it waits: when the batch it needs is not
complete, it claims the next undecoded items itself (that batch's first) instead of
sleeping. On two
cores with one decoding thread this keeps both busy whichever side, decoding or the
model, is the slower (the benchmark's figures: docs/inference.md).

Each item is decoded exactly once, by whichever thread claims it first; batches come
out in input order with the same items in each, and ``finish`` is elementwise, so the
features do not depend on who decoded what.
"""
import threading

from .inputs import collate

__all__ = ['ThreadedBatches']


class ThreadedBatches:
    """``finish(collate(items))`` of ``reader[0..n)`` (a map-style dataset) in batches of
    ``batch_size``, in order."""

    def __init__(self, reader, batch_size, threads=1, ahead=2, finish=None):
        self.reader = reader
        self.batch_size = max(1, int(batch_size))
        self.threads = max(0, int(threads))
        self.ahead = max(1, int(ahead))
        self.finish = finish

    def __len__(self):
        return -(-len(self.reader) // self.batch_size)

    def _assemble(self, items):
        got = collate(items)
        return got if self.finish is None else self.finish(got)

    def __iter__(self):
        n, size = len(self.reader), self.batch_size
        slots, done = [None] * n, {}
        left = [min(size, n - s) for s in range(0, n, size)]   # undecoded items per batch
        cond = threading.Condition()
        state = {'next': 0, 'limit': min(n, (1 + self.ahead) * size), 'stop': False,
                 'error': None}

        def decode(i):
            """Decode item ``i``; the batch's last item also assembles the batch."""
            try:
                got = self.reader[i]
                b = i // size
                with cond:
                    slots[i] = got
                    left[b] -= 1
                    items = slots[b * size:b * size + size] if left[b] == 0 else None
                    if items is not None:
                        slots[b * size:b * size + len(items)] = [None] * len(items)
                if items is not None:
                    batch = self._assemble(items)
                    with cond:
                        done[b] = batch
                        cond.notify_all()
            except BaseException as exc:   # a bug: unreadable files come back as items
                with cond:
                    state['error'] = exc
                    cond.notify_all()
                raise

        def claim(upto):
            """The next undecoded index below ``upto`` (now claimed), else None; under cond."""
            i = state['next']
            if i >= upto or state['stop']:
                return None
            state['next'] = i + 1
            return i

        def worker():
            while True:
                with cond:
                    while not state['stop'] and state['next'] >= state['limit'] < n:
                        cond.wait()
                    i = claim(state['limit'])
                if i is None:
                    return
                try:
                    decode(i)
                except BaseException:
                    return   # the consumer raises it

        workers = [threading.Thread(target=worker, name='vireid-decode-{}'.format(k),
                                    daemon=True) for k in range(self.threads)]
        for w in workers:
            w.start()
        try:
            for b, start in enumerate(range(0, n, size)):
                end = min(n, start + size)
                with cond:
                    state['limit'] = min(n, end + self.ahead * size)
                    cond.notify_all()
                while True:   # decode (this batch's items first) instead of waiting
                    with cond:
                        if state['error'] is not None:
                            raise state['error']
                        if b in done:
                            batch = done.pop(b)
                            break
                        i = claim(state['limit'])
                        if i is None:   # all claimed: the decoding threads finish them
                            cond.wait()
                            continue
                    decode(i)
                yield batch
        finally:
            with cond:
                state['stop'] = True
                cond.notify_all()
            for w in workers:
                w.join()
