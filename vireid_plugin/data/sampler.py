"""Identity samplers for visible-infrared training batches.

``IdentityBatchSampler`` holds what the plugin's samplers share: items grouped by
identity and modality, the seeded epoch order, exact resumption inside an epoch,
per-position item seeds and the rank split under several processes. Each sampler
is registered in ``vireid_plugin.registry.SAMPLERS`` under the name
``sampler.train_sampler`` selects it by.
"""
import math
from collections import defaultdict

import torch
from torch.utils.data import Sampler

from ..registry import SAMPLERS

VISIBLE, INFRARED = 0, 1

__all__ = ['IdentityBatchSampler', 'CrossModalIdentitySampler', 'items_by_identity',
           'VISIBLE', 'INFRARED']


def items_by_identity(data_source):
    """{pid: ([visible indices], [infrared indices])} of 5-tuple items
    ``(impath, pid, camid, dsetid, modality)``; only ``item[1]`` and ``item[4]`` are read."""
    by_id = defaultdict(lambda: ([], []))
    for index, item in enumerate(data_source):
        if len(item) < 5:
            raise ValueError('items must be 5-tuples (impath, pid, camid, dsetid, '
                             'modality); item {} has {} fields'.format(index, len(item)))
        pid, modality = int(item[1]), int(item[4])
        if modality not in (VISIBLE, INFRARED):
            raise ValueError('item {} has modality {}, expected 0 (visible) or '
                             '1 (infrared)'.format(index, modality))
        by_id[pid][modality].append(index)
    return by_id


def report_one_modality_ids(by_id, usable, log=print):
    """One counted line for the training ids a cross-modal sampler leaves out (images of one
    modality only): the classifier still has a class for each, never trained."""
    left = sorted(set(by_id) - set(usable))
    if left:
        items = sum(len(vis) + len(ir) for pid in left for vis, ir in [by_id[pid]])
        log('=> Warning: {} of {} training ids have images of one modality only and are never '
            'sampled ({} images; ids {}{}); the classifier keeps a class for each'.format(
                len(left), len(by_id), items, ', '.join(map(str, left[:5])),
                ', ...' if len(left) > 5 else ''))


class IdentityBatchSampler(Sampler):
    """Base of the plugin's identity samplers (see the subclasses for the batch layout).

    Subclasses set ``batch_size``, ``num_pids_per_batch`` and implement
    ``_global_order(gen)`` (the epoch's flat list of item indices, whole global
    batches) and ``_rank_slices()`` ((offset, length) pieces of a global batch that
    this rank keeps). Only ids with items of both modalities are used
    (``num_excluded_ids`` counts the others).
    """

    def __init__(self, data_source, seed=None, item_seeds=False, num_replicas=1, rank=0):
        by_id = items_by_identity(data_source)
        usable = sorted(pid for pid, (vis, ir) in by_id.items() if vis and ir)
        self.num_excluded_ids = len(by_id) - len(usable)
        report_one_modality_ids(by_id, usable)
        self.pids = usable
        self._items = [tuple(torch.tensor(by_id[p][m], dtype=torch.long) for m in (0, 1))
                       for p in usable]
        if not isinstance(num_replicas, int) or num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError('rank {} of num_replicas {} is not a valid process'.format(
                rank, num_replicas))
        if num_replicas > 1 and seed is None:
            raise ValueError('several processes need a seed: every rank draws the same '
                             'global order and keeps its part')
        self.num_replicas, self.rank = num_replicas, rank
        self.seed = seed
        self.epoch = 0
        self.item_seeds = item_seeds
        self._start = 0
        self._told = False      # set_epoch was called: the caller keeps the epoch
        self._ended = False     # a pass ran to its end

    def _check_split(self, what):
        """P ids per global batch must split evenly over the processes."""
        if self.num_pids_per_batch % self.num_replicas:
            raise ValueError(
                'batch_size={} holds P={} ids (x {}); {} processes need P to be a multiple '
                'of {} (each takes P / {} ids of every batch)'.format(
                    self.batch_size, self.num_pids_per_batch, what, self.num_replicas,
                    self.num_replicas, self.num_replicas))

    def set_epoch(self, epoch):
        self._set_epoch(epoch)
        self._told = True

    def _set_epoch(self, epoch):
        self.epoch = int(epoch)

    def _next_pass_epoch(self):
        """When nobody calls ``set_epoch`` (torchreid's engines, a plain ``for epoch: for
        batch in loader``), each pass after a complete one is the next epoch: a seeded
        order would otherwise repeat every epoch, item seeds (augmentation) included. Once
        ``set_epoch`` is called, the caller says which epoch every pass is."""
        if self._ended and not self._told:
            self._set_epoch(self.epoch + 1)
        self._ended = False

    def set_start(self, position):
        """The next pass (only) starts at ``position`` of the epoch's order."""
        if not 0 <= position <= len(self):
            raise ValueError('start position {} outside the epoch of {} items'.format(
                position, len(self)))
        self._start = int(position)

    @property
    def local_batch_size(self):
        """Items of one batch on this rank."""
        return self.batch_size // self.num_replicas

    def _generator(self):
        gen = torch.Generator()
        if self.seed is None:
            gen.manual_seed(int(torch.randint(2 ** 62, (), dtype=torch.long).item()))
        else:
            # Large odd multiplier: (seed, epoch) pairs do not collide as seed + epoch would.
            gen.manual_seed((int(self.seed) * 1000003 + self.epoch) % 2 ** 63)
        return gen

    def _finish(self, out, gen):
        """Item seeds, this rank's share of every global batch, the start position."""
        start, self._start = self._start, 0
        if self.item_seeds:
            out = list(zip(out, torch.randint(2 ** 62, (len(out),), generator=gen).tolist()))
        if self.num_replicas > 1:   # this rank's pieces of every global batch
            pieces = self._rank_slices()
            out = [x for i in range(0, len(out), self.batch_size)
                   for lo, n in pieces for x in out[i + lo:i + lo + n]]
        return self._pass(out[start:])

    def _pass(self, order):
        yield from order
        self._ended = True

    def __iter__(self):
        self._next_pass_epoch()
        gen = self._generator()
        return self._finish(self._global_order(gen), gen)


@SAMPLERS.register('CrossModalIdentitySampler')
class CrossModalIdentitySampler(IdentityBatchSampler):
    """Batches of P identities x (K visible + K infrared) items.

    Each batch holds ``P = batch_size // (2K)`` distinct pids; for each, in order,
    its K visible then its K infrared item indices (the batch is
    ``[id1 vis*K, id1 ir*K, id2 vis*K, id2 ir*K, ...]``). An id's K items of a
    modality are drawn without replacement when it has at least K of them, with
    replacement otherwise. Pids are taken from a shuffled list of all usable ids,
    reshuffled when fewer than P are left, so ids appear about equally often.

    Only ids with at least one item of each modality are usable; the others are
    never sampled (``num_excluded_ids`` counts them). Only ``item[1]`` (pid) and
    ``item[4]`` (modality) are read, so image and video-tracklet items both work.

    An epoch is ``max(1, ceil(max(n_visible, n_infrared) / (P*K)))`` batches
    (items of usable ids), so about every item of the larger modality is seen
    once; indices are yielded flat, so use it with
    ``DataLoader(batch_size=batch_size, sampler=..., drop_last=True)``.

    Randomness: with ``seed``, the order depends only on ``(seed, epoch)``
    (``set_epoch`` as for ``DistributedSampler``; if nobody ever calls it, as torchreid's
    engines do not, each pass after a complete one is the next epoch);
    without, each pass draws its seed from torch's global generator, so
    ``torch.manual_seed`` reproduces it.

    Exact resumption: ``set_start(position)`` makes the next pass begin at that
    position of the epoch's order (a checkpoint taken after k batches resumes at
    ``k * batch_size``). With ``item_seeds=True`` the sampler yields
    ``(index, item_seed)`` pairs, one seed per position drawn from the same
    generator, for a dataset wrapped in ``SeededItems``: each item's augmentation
    then depends on the seed only, not on worker processes or on where a run resumed.

    Several processes (DistributedDataParallel): ``batch_size`` stays the *global*
    batch, P ids x (K + K); with ``num_replicas`` = R processes, rank r yields the
    r-th block of P / R ids of every global batch (its K visible + K infrared items
    each), so the ranks' batches are disjoint identity groups whose union is the
    single-process batch, item seeds included. Every rank draws the whole global order
    from the same ``seed`` (required) and keeps its block; use it with
    ``DataLoader(batch_size=batch_size // num_replicas)``. ``len``, positions and
    ``set_start`` count this rank's items.
    """

    def __init__(self, data_source, batch_size, num_instances, seed=None, item_seeds=False,
                 num_replicas=1, rank=0):
        if not isinstance(num_instances, int) or num_instances < 1:
            raise ValueError('num_instances (K per modality) must be a positive int, '
                             'got {!r}'.format(num_instances))
        k = num_instances
        if not isinstance(batch_size, int) or batch_size < 1 or batch_size % (2 * k):
            raise ValueError(
                'batch_size must be a positive multiple of 2*num_instances = {} (P ids x '
                '{} visible + {} infrared), got batch_size={}'.format(2 * k, k, k, batch_size))
        super().__init__(data_source, seed=seed, item_seeds=item_seeds,
                         num_replicas=num_replicas, rank=rank)
        usable = self.pids
        self.batch_size = batch_size
        self.num_instances = k
        self.num_pids_per_batch = batch_size // (2 * k)
        self._check_split('{} visible + {} infrared'.format(k, k))
        if self.num_pids_per_batch > len(usable):
            raise ValueError(
                'batch_size={} with num_instances={} needs P={} ids per batch, but only {} '
                'ids have both visible and infrared items ({} excluded)'.format(
                    batch_size, k, self.num_pids_per_batch, len(usable),
                    self.num_excluded_ids))

        n_vis = sum(len(v) for v, _ in self._items)
        n_ir = sum(len(r) for _, r in self._items)
        self.num_batches = max(1, math.ceil(max(n_vis, n_ir) / (self.num_pids_per_batch * k)))

    def __len__(self):
        return self.num_batches * self.local_batch_size

    def _rank_slices(self):
        n = self.local_batch_size   # the r-th block of P / R ids, K + K items each
        return [(self.rank * n, n)]

    def _draw(self, pool, gen):
        n, k = len(pool), self.num_instances
        if n >= k:
            return pool[torch.randperm(n, generator=gen)[:k]]
        return pool[torch.randint(n, (k,), generator=gen)]

    def _global_order(self, gen):
        p, n_ids = self.num_pids_per_batch, len(self.pids)
        queue, out = [], []
        for _ in range(self.num_batches):
            if len(queue) < p:
                # Top up with a fresh shuffle of the ids not still queued, so the
                # batch's P ids are distinct.
                queued = set(queue)
                queue += [i for i in torch.randperm(n_ids, generator=gen).tolist()
                          if i not in queued]
            ids, queue = queue[:p], queue[p:]
            for i in ids:
                vis, ir = self._items[i]
                out += self._draw(vis, gen).tolist()
                out += self._draw(ir, gen).tolist()
        return out
