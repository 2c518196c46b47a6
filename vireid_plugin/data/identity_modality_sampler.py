"""The MIP authors' training sampler: every identity's images once per epoch, in 4 + 4 chunks.

``RandomIdentityModalitySampler`` gives the epoch of ``RandomIdentityModalitySampler``
in the MIP authors' code (GitHub wurqjackey/MIP, ``datasets/sampler.py``;
``DATASETS.SAMPLER 'modal'``), rewritten here from its description
(``shared/research/mip.md``, ``docs/mip.md``) on the plugin's seeded-epoch machinery.

With ``num_instances`` = K (their ``DATALOADER.NUM_INSTANCE``, 8 in their script) and
h = K / 2, for every identity with images of both modalities:

1. padding (random picks with replacement from the identity's own list, as it stands):
   - ``padding='sysu'`` (their rule for every dataset but RegDB): a modality with fewer
     than h images is filled up to h;
   - ``padding='regdb'`` (their rule when ``DATASETS.NAMES`` is ``regdb``): both
     modalities get ``h - n_visible % h`` more images (1..h; their code counts the
     *visible* list for both);
   then the shorter modality is filled up to the longer one's length;
2. both lists are shuffled and cut into chunks of h infrared + h visible images; a
   last partial chunk is dropped. An identity therefore has
   ``c = floor(max(n_ir, n_vis, h) / h)`` chunks ('sysu') and appears in ``c``
   batches of the epoch: in proportion to its image count, not uniformly;
3. batches: while at least P = batch_size / K identities have chunks left, P of
   them are drawn at random (uniformly, distinct) and each gives its next chunk;
   the batch is ``[id_1 h IR, ..., id_P h IR, id_1 h visible, ..., id_P h visible]``
   (all infrared first). Chunks of the last < P identities are not used, so the
   epoch has between ``(C - (P-1 largest c)) / P`` and ``C / P`` batches
   (C = sum of the c), a number that depends on the draw.

Ids with one modality only are left out (``num_excluded_ids``; their code fails on
them). The draws are the plugin's (a torch generator seeded from ``(seed, epoch)``),
not NumPy's global state as in theirs: the same distribution, not the same order.

Randomness, exact resumption (``set_epoch``, ``set_start``), per-position item seeds
and the rank split work as for :class:`~vireid_plugin.data.sampler.CrossModalIdentitySampler`:
with R processes rank r keeps, of every global batch, the infrared chunks of its
block of P / R identities followed by their visible chunks (so every rank's batch is
also infrared-first, the ranks' identity groups are disjoint and their union is the
single-process batch). ``len`` is this epoch's (known before the pass: the order is
drawn from the seed), so a DataLoader with ``drop_last=True`` counts its batches right.
"""
import torch

from ..registry import SAMPLERS
from .sampler import IdentityBatchSampler

__all__ = ['RandomIdentityModalitySampler', 'PADDING']

#: padding rules of the released sampler, named by the dataset their code applies them to
PADDING = ('sysu', 'regdb')


@SAMPLERS.register('RandomIdentityModalitySampler')
class RandomIdentityModalitySampler(IdentityBatchSampler):
    """Args:
        data_source: items ``(impath, pid, camid, dsetid, modality)``, modality 0 visible,
            1 infrared.
        batch_size: the global batch, P identities x K items.
        num_instances: K items per identity and batch, K / 2 of each modality (even).
        padding: 'sysu' or 'regdb' (see the module doc).
        seed, item_seeds, num_replicas, rank: as ``CrossModalIdentitySampler``.
    """

    def __init__(self, data_source, batch_size, num_instances, seed=None, item_seeds=False,
                 num_replicas=1, rank=0, padding='sysu'):
        if not isinstance(num_instances, int) or num_instances < 2 or num_instances % 2:
            raise ValueError('num_instances (K images per identity, K / 2 infrared + K / 2 '
                             'visible) must be an even int >= 2, got {!r}'.format(num_instances))
        k = num_instances
        if not isinstance(batch_size, int) or batch_size < 1 or batch_size % k:
            raise ValueError(
                'batch_size must be a positive multiple of num_instances = {} (P ids x ({} '
                'infrared + {} visible)), got batch_size={}'.format(k, k // 2, k // 2,
                                                                    batch_size))
        if padding not in PADDING:
            raise ValueError('padding must be one of {}, got {!r}'.format(PADDING, padding))
        super().__init__(data_source, seed=seed, item_seeds=item_seeds,
                         num_replicas=num_replicas, rank=rank)
        self.batch_size = batch_size
        self.num_instances = k
        self.half = k // 2
        self.padding = padding
        self.num_pids_per_batch = batch_size // k
        self._check_split('({} infrared + {} visible)'.format(self.half, self.half))
        if self.num_pids_per_batch > len(self.pids):
            raise ValueError(
                'batch_size={} with num_instances={} needs P={} ids per batch, but only {} '
                'ids have both visible and infrared items ({} excluded)'.format(
                    batch_size, k, self.num_pids_per_batch, len(self.pids),
                    self.num_excluded_ids))
        # without a seed: one seed per pass, drawn from torch's global generator by the
        # first len() or iter() of the pass, so len() tells the length of the coming pass
        self._pass_seed, self._pass_used = None, False
        self._counted = {}       # (epoch, seed) -> global batches of that epoch

    # ---- the epoch ------------------------------------------------------------
    def _set_epoch(self, epoch):
        super()._set_epoch(epoch)
        if self._pass_used:
            self._pass_seed = None

    def _pass_generator(self, new_pass):
        if self.seed is not None:
            return self._generator()
        if self._pass_seed is None or (new_pass and self._pass_used):
            self._pass_seed = int(torch.randint(2 ** 62, (), dtype=torch.long).item())
            self._pass_used = False
        self._pass_used = self._pass_used or new_pass
        return torch.Generator().manual_seed(self._pass_seed)

    def _pad(self, pool, n, gen):
        """``pool`` plus ``n`` random picks (with replacement) from it."""
        if n <= 0:
            return pool
        return torch.cat([pool, pool[torch.randint(len(pool), (n,), generator=gen)]])

    def _chunks(self, vis, ir, gen):
        """One identity's [(h infrared indices, h visible indices), ...] for the epoch."""
        h = self.half
        if self.padding == 'regdb':
            extra = h - len(vis) % h
            ir, vis = self._pad(ir, extra, gen), self._pad(vis, extra, gen)
        else:
            ir, vis = self._pad(ir, h - len(ir), gen), self._pad(vis, h - len(vis), gen)
        ir = self._pad(ir, len(vis) - len(ir), gen)
        vis = self._pad(vis, len(ir) - len(vis), gen)
        ir = ir[torch.randperm(len(ir), generator=gen)].tolist()
        vis = vis[torch.randperm(len(vis), generator=gen)].tolist()
        return [(ir[c * h:(c + 1) * h], vis[c * h:(c + 1) * h]) for c in range(len(ir) // h)]

    def _global_order(self, gen):
        chunks = [self._chunks(vis, ir, gen) for vis, ir in self._items]
        used = [0] * len(chunks)
        available = list(range(len(chunks)))
        p, out = self.num_pids_per_batch, []
        while len(available) >= p:
            picked = [available[j] for j in
                      torch.randperm(len(available), generator=gen)[:p].tolist()]
            infrared, visible = [], []
            for i in picked:
                ir, vis = chunks[i][used[i]]
                infrared += ir
                visible += vis
                used[i] += 1
                if used[i] == len(chunks[i]):
                    available.remove(i)
            out += infrared + visible
        return out

    def __iter__(self):
        self._next_pass_epoch()
        gen = self._pass_generator(new_pass=True)
        order = self._global_order(gen)
        self._counted = {self._key(): len(order) // self.batch_size}
        return self._finish(order, gen)

    def _key(self):
        return self.epoch, self.seed if self.seed is not None else self._pass_seed

    @property
    def num_batches(self):
        """Global batches of the current epoch (its order is drawn to count them); without
        a seed, of the coming pass (or of the one just made, until ``set_epoch``)."""
        self._next_pass_epoch()
        gen = self._pass_generator(new_pass=False)
        key = self._key()
        if key not in self._counted:
            self._counted = {key: len(self._global_order(gen)) // self.batch_size}
        return self._counted[key]

    def __len__(self):
        return self.num_batches * self.local_batch_size

    def _rank_slices(self):
        n = self.num_pids_per_batch // self.num_replicas * self.half   # per modality
        return [(self.rank * n, n),
                (self.num_pids_per_batch * self.half + self.rank * n, n)]
