"""ThreadedBatches: the extractor's decoding threads (vireid_plugin/inference/batches.py).

The reader here is a fake map-style dataset whose items are known tensors, so every
expectation is the input itself: batches in input order, each item read once, bad items
passed through, the window of decoded items bounded, errors raised in the consumer.
"""
import threading
import time

import pytest
import torch

from vireid_plugin.inference.batches import ThreadedBatches


class Reader:
    """Item i is the tensor [i, i] (uint8); ``bad`` items are unreadable; ``boom`` raises."""

    def __init__(self, n, bad=(), boom=None, delay=0.0):
        self.n, self.bad, self.boom, self.delay = n, set(bad), boom, delay
        self.lock = threading.Lock()
        self.reads = []          # (index, thread name) of every read, in order of reading
        self.yielded = 0         # items handed out by the iterator so far (set by the test)
        self.window = 0          # most items read but not yet handed out

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if self.delay:
            time.sleep(self.delay)
        with self.lock:
            self.reads.append((i, threading.current_thread().name))
            self.window = max(self.window, len(self.reads) - self.yielded)
        if i == self.boom:
            raise RuntimeError('a bug in the reader at {}'.format(i))
        if i in self.bad:
            return i, None, 'cannot read item {}'.format(i)
        return i, torch.tensor([i, i], dtype=torch.uint8), None


@pytest.mark.parametrize('threads', [0, 1, 3])
@pytest.mark.parametrize('n,size', [(1, 4), (10, 4), (12, 4), (37, 8)])
def test_batches_come_in_input_order_with_each_item_read_once(threads, n, size):
    reader = Reader(n, delay=0.0005)
    out = list(ThreadedBatches(reader, size, threads=threads, ahead=2))
    assert len(out) == -(-n // size)
    rows = [i for got, _, _ in out for i in got]
    assert rows == list(range(n))
    for got, x, bad in out:
        assert torch.equal(x, torch.tensor([[i, i] for i in got], dtype=torch.uint8))
        assert bad == []
    assert sorted(i for i, _ in reader.reads) == list(range(n))


def test_both_the_thread_and_the_consumer_decode():
    """The consumer does not sleep while its batch is undecoded: with one slow decoding
    thread it reads some of the items itself."""
    reader = Reader(64, delay=0.002)
    list(ThreadedBatches(reader, 16, threads=1))
    names = {name for _, name in reader.reads}
    assert threading.current_thread().name in names
    assert any(name.startswith('vireid-decode') for name in names)


def test_finish_runs_on_each_batch_and_bad_items_pass_through():
    reader = Reader(10, bad=[3, 4])

    def finish(batch):
        got, x, bad = batch
        return got, x.float() / 2, bad

    out = list(ThreadedBatches(reader, 5, threads=1, finish=finish))
    assert [got for got, _, _ in out] == [[0, 1, 2], [5, 6, 7, 8, 9]]
    assert out[0][2] == [(3, 'cannot read item 3'), (4, 'cannot read item 4')]
    assert torch.equal(out[1][1], torch.tensor([[i / 2, i / 2] for i in range(5, 10)]))


def test_a_batch_of_only_bad_items_has_no_tensor():
    out = list(ThreadedBatches(Reader(4, bad=[0, 1]), 2, threads=1))
    assert out[0][0] == [] and out[0][1] is None and len(out[0][2]) == 2
    assert out[1][0] == [2, 3]


def test_the_decoded_window_stays_bounded():
    """At most (ahead + 1) batches are read ahead of what the consumer has taken."""
    reader = Reader(200, delay=0.0002)
    size, ahead = 8, 2
    for got, _, _ in ThreadedBatches(reader, size, threads=2, ahead=ahead):
        time.sleep(0.002)   # a slow model: the threads run ahead as far as they may
        with reader.lock:
            reader.yielded += len(got)
    assert reader.window <= (ahead + 1) * size


def decoding_threads():
    """The extractor's decoding threads alive now (other threads, tqdm's monitor say,
    come and go on their own)."""
    return [t for t in threading.enumerate() if t.name.startswith('vireid-decode')]


def test_a_reader_bug_is_raised_in_the_consumer_and_the_threads_end():
    with pytest.raises(RuntimeError, match='a bug in the reader at 13'):
        list(ThreadedBatches(Reader(40, boom=13), 4, threads=2))
    assert decoding_threads() == []


def test_closing_early_stops_the_threads():
    reader = Reader(1000, delay=0.0005)
    it = iter(ThreadedBatches(reader, 10, threads=2, ahead=1))
    next(it)
    assert len(decoding_threads()) == 2
    it.close()
    assert decoding_threads() == []
    assert len(reader.reads) <= 10 + 1 * 10 + 2   # the window, plus one item per thread
