"""Unreadable training images: ``data.on_bad_image`` and ``data.max_bad_fraction``.

``stop`` (the default) keeps the reader's behaviour: the first unreadable file stops
the run with ``ImageReadError`` naming it. ``skip`` (``skip_bad_images(loader, ...)``)
wraps the training loader:

- ``ReplaceBadItems``: an item whose file (or one of whose frames) cannot be read is
  replaced by another item of the same identity and modality. The candidates are tried
  in an order drawn from the position's item seed (the sampler's ``item_seeds``), so
  the replacement, and its augmentation, which uses the same seed, depend on (run seed,
  epoch, position) and the files only: the same with any number of workers and after
  a resume. Each item carries ``bad_items``: '' or a JSON list of
  [index, path, message] of the files it replaced, so counts made in DataLoader
  workers reach the main process inside the batch.
- ``BadImageLog`` (main process): logs every replacement with its path, counts them per
  epoch (summed over the ranks under torchrun), and stops the run with one message
  when more than ``max_fraction`` of the training items turned out unreadable.
- ``SkippingLoader``: the DataLoader that feeds each batch to the log and, when an
  epoch's batches are exhausted, prints the epoch's count.

With the uint8 image cache (``data/cache/``) the files are decoded when the cache is
built: with ``skip`` an unreadable file becomes a bad row (recorded in the manifest)
that ``CachedTrainItems`` refuses with ``ImageReadError``, and the same replacement
applies.
"""
import json

import numpy as np
import torch

from .. import distributed
from .io import ImageReadError
from .wrapped import WrappedDataset

__all__ = ['ON_BAD_IMAGE', 'TooManyBadImages', 'ReplaceBadItems', 'BadImageLog',
           'SkippingLoader', 'skip_bad_images', 'check_bad_fraction']

ON_BAD_IMAGE = ('stop', 'skip')
MODALITY_NAMES = ('visible', 'infrared')


class TooManyBadImages(ImageReadError):
    """More training items are unreadable than ``data.max_bad_fraction`` allows."""


def _modality(item):
    return int(item[4]) if len(item) > 4 else 0


def _path(item):
    path = item[0]
    return path[0] if isinstance(path, (tuple, list)) else path


def check_bad_fraction(bad, total, max_fraction, first=''):
    """Raise ``TooManyBadImages`` when ``bad`` of ``total`` items exceeds the fraction."""
    if bad > max_fraction * total:
        raise TooManyBadImages(
            '{} of {} training items ({:.2%}) are unreadable, more than data.max_bad_fraction '
            '= {:g}: the data looks damaged{}. Fix or remove the files, or raise '
            'data.max_bad_fraction'.format(bad, total, bad / max(1, total), max_fraction,
                                           ' (first: {})'.format(first) if first else ''))


class ReplaceBadItems(WrappedDataset):
    """The training dataset with unreadable items replaced (see the module doc).

    Keys are whatever the wrapped dataset takes: ``(index, seed)`` pairs (``SeededItems``,
    ``CachedTrainItems``) or plain indices; the replacement gets the same seed. Without
    a seed the candidates are tried in dataset order after the bad item.
    """

    def __init__(self, dataset):
        super().__init__(dataset)
        groups = {}
        for index, item in enumerate(dataset.data):
            groups.setdefault((item[1], _modality(item)), []).append(index)
        self._group = groups

    def candidates(self, index, seed=None):
        """The other items of ``index``'s identity and modality, in the order tried."""
        item = self.dataset.data[index]
        group = self._group[(item[1], _modality(item))]
        others = [i for i in group if i != index]
        if seed is None:
            at = group.index(index)
            return group[at + 1:] + group[:at]
        order = np.random.RandomState(int(seed) % 2 ** 32).permutation(len(others))
        return [others[i] for i in order]

    def __getitem__(self, key):
        seeded = isinstance(key, (tuple, list))
        index, seed = key if seeded else (key, None)
        try:
            item = self.dataset[key]
            item['bad_items'] = ''
            return item
        except ImageReadError as exc:
            bad = [self._record(index, exc)]
        for other in self.candidates(index, seed):
            try:
                item = self.dataset[(other, seed) if seeded else other]
            except ImageReadError as exc:
                bad.append(self._record(other, exc))
                continue
            item['bad_items'] = json.dumps(bad)
            return item
        pid, modality = self.dataset.data[index][1], _modality(self.dataset.data[index])
        raise ImageReadError(
            '{}; no {} item of identity {} can replace it (data.on_bad_image skip): all {} '
            'are unreadable'.format(bad[0][2], MODALITY_NAMES[modality], pid, len(bad)),
            path=bad[0][1])

    def _record(self, index, exc):
        path = getattr(exc, 'path', None) or _path(self.dataset.data[index])
        return [int(index), path, str(exc)]


class BadImageLog:
    """Main-process bookkeeping of replaced items (see the module doc).

    ``num_items``: training items (the fraction's denominator); ``log``: where lines go.
    """

    def __init__(self, num_items, max_fraction=0.01, log=print):
        self.num_items = int(num_items)
        self.max_fraction = float(max_fraction)
        self.log = log
        self.bad = {}          # index -> (path, message): every unreadable item seen so far
        self.epoch_records = []
        self.epochs = 0

    def note(self, batch):
        """Log and count the replacements of one collated batch (its ``bad_items``)."""
        replaced_by = batch.get('impath', [])
        for i, text in enumerate(batch.get('bad_items', ())):
            if not text:
                continue
            for index, path, message in json.loads(text):
                self.epoch_records.append([index, path, message])
                self.bad[index] = (path, message)
                self.log('=> Skipped an unreadable training image (data.on_bad_image skip): '
                         '{}; replaced by {}'.format(
                             message, replaced_by[i] if i < len(replaced_by) else
                             'another item of its identity and modality'))
            self._check()

    def end_epoch(self):
        """The epoch's count (every rank's under torchrun); returns (replacements, unreadable
        items seen so far)."""
        mine = self.epoch_records
        self.epoch_records = []
        self.epochs += 1
        everyone = distributed.gather_objects(mine)
        count = sum(len(r) for r in everyone)
        for rank, records in enumerate(everyone):
            if rank == distributed.rank():
                continue
            for index, path, message in records:
                self.bad[index] = (path, message)
                self.log('=> Rank {} skipped an unreadable training image: {}'.format(
                    rank, message))
        self.log('=> Unreadable training images this epoch: {} item(s) replaced by another of '
                 'the same identity and modality ({} unreadable item(s) found so far, of {}; '
                 'data.on_bad_image skip)'.format(count, len(self.bad), self.num_items))
        self._check()
        return count, len(self.bad)

    def _check(self):
        first = next(iter(self.bad.values()), ('', ''))[1]
        check_bad_fraction(len(self.bad), self.num_items, self.max_fraction, first)


class SkippingLoader(torch.utils.data.DataLoader):
    """A DataLoader whose batches pass through ``bad_log.note`` and whose every complete
    pass ends with ``bad_log.end_epoch()`` (set ``bad_log`` after construction)."""

    bad_log = None

    def __iter__(self):
        for batch in super().__iter__():
            if self.bad_log is not None:
                self.bad_log.note(batch)
            yield batch
        if self.bad_log is not None:
            self.bad_log.end_epoch()


def skip_bad_images(loader, max_fraction=0.01, log=print):
    """``loader`` (a training DataLoader) rebuilt to replace unreadable items: same
    sampler, batch size, workers and options; its dataset in ``ReplaceBadItems``."""
    dataset = ReplaceBadItems(loader.dataset)
    batching = dict(sampler=loader.sampler, batch_size=loader.batch_size,
                    drop_last=loader.drop_last) if loader.batch_size is not None \
        else dict(batch_sampler=loader.batch_sampler)
    new = SkippingLoader(
        dataset, num_workers=loader.num_workers, pin_memory=loader.pin_memory,
        persistent_workers=loader.persistent_workers, generator=loader.generator,
        collate_fn=loader.collate_fn, worker_init_fn=loader.worker_init_fn, **batching)
    new.bad_log = BadImageLog(len(dataset.data), max_fraction, log)
    return new
