"""Training losses logged every N steps from device tensors: no host sync per step.

Each step adds its loss terms (0-d tensors, still on the GPU) to running sums; only
:meth:`LossWindow.flush` (every ``train.print_freq`` steps and at the end of an epoch)
moves them to the host, in one transfer, averaged over the processes of a
multi-process run. Throughput is measured between flushes, after the transfer has
waited for the device, so it is wall-clock true even though CUDA runs asynchronously.
"""
import time

import torch

from .. import distributed

__all__ = ['LossWindow']


class LossWindow:
    """Running sums of named 0-d tensors since the last flush."""

    def __init__(self):
        self.sums, self.counts = {}, {}
        self.steps = self.images = 0
        self.data_time = 0.0
        self.start = time.time()
        self.epoch_sums, self.epoch_counts = {}, {}
        self.flag = False   # the flag of the last flush, on any rank

    def add(self, values, images, data_time=0.0):
        """One step: ``values`` {name: 0-d tensor} (None for a skipped step)."""
        self.steps += 1
        self.images += int(images)
        self.data_time += data_time
        for name, value in (values or {}).items():
            value = value.detach().float() if torch.is_tensor(value) else torch.tensor(
                float(value))
            self.sums[name] = self.sums[name] + value if name in self.sums else value
            self.counts[name] = self.counts.get(name, 0) + 1

    def flush(self, flag=False):
        """({name: mean since the last flush}, seconds, steps, images/s, data seconds/step);
        starts a new window. One host transfer (collective over the ranks). ``flag`` (e.g.
        "this process got a pre-emption signal") rides along: afterwards ``self.flag`` says
        whether it was set on any rank."""
        names = sorted(self.sums)
        means = {}
        values = [self.sums[k] / self.counts[k] for k in names]
        if names or distributed.is_distributed():
            ref = values[0] if values else torch.zeros((), device=distributed.collective_device())
            vec = torch.stack(values + [ref.new_tensor(float(bool(flag)))])
            values = distributed.all_reduce_mean(vec).tolist()
            self.flag = values.pop() > 0
            means = dict(zip(names, values))
            for k in names:
                self.epoch_sums[k] = self.epoch_sums.get(k, 0.0) + means[k] * self.counts[k]
                self.epoch_counts[k] = self.epoch_counts.get(k, 0) + self.counts[k]
        else:
            self.flag = bool(flag)
        now = time.time()
        seconds = max(now - self.start, 1e-9)
        stats = (means, seconds, self.steps, self.images * distributed.world_size() / seconds,
                 self.data_time / max(1, self.steps))
        self.sums, self.counts = {}, {}
        self.steps = self.images = 0
        self.data_time = 0.0
        self.start = now
        return stats

    def epoch_means(self):
        """Means over every flushed step of the epoch (host floats, no transfer)."""
        return {k: self.epoch_sums[k] / self.epoch_counts[k] for k in sorted(self.epoch_sums)}
