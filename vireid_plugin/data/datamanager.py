"""torchreid data managers with the cross-modal sampler and dataset options.

torchreid's ``build_train_sampler`` is a closed list, so these subclasses let
torchreid build everything, then replace the train loader's sampler when one of the
plugin's samplers (``vireid_plugin.registry.SAMPLERS``: ``CrossModalIdentitySampler``,
the MIP authors' ``RandomIdentityModalitySampler``) is asked for. torchreid builds the
datasets with a fixed set of keywords; the config's dataset options (``dataset_options``,
{config key: value}) reach them through ``datasets.options.scoped_options``, set only
while torchreid's constructor runs. With several processes
(``num_replicas``, ``rank``: torchrun, see ``vireid_plugin.distributed``) each rank's
loader yields its identity block of every global batch (``batch_size_train`` stays the
global batch).
"""
import torch
import torchvision.transforms as T

from .. import compat
from ..errors import ConfigError
from ..registry import SAMPLERS
from .bad_images import ON_BAD_IMAGE, ReplaceBadItems, skip_bad_images
from .cache.dataset import CachedTrainItems, cached_train_loader
from .channel_aug import VIEW_NAME, ChannelAugItems, channel_names, collate_views
from .datasets.options import scoped_options
from .identity_modality_sampler import RandomIdentityModalitySampler
from .sampler import CrossModalIdentitySampler  # noqa: F401  (registers the sampler)
from .seeded import SeededItems
from .transforms import add_plugin_transforms, apply_pipeline_options

CROSS_MODAL_SAMPLER = 'CrossModalIdentitySampler'


class _CrossModalLoaders:
    """Placed before torchreid's manager in the MRO; its __init__ wraps torchreid's.

    ``data_cache`` (the ``data_cache`` config section as a dict): with ``enabled``, the
    train loader reads pre-resized uint8 images (``cache/``) and, with
    ``gpu_augment``, ``batch_transform`` (else None) augments each batch on the device.
    ``on_bad_image`` ('stop' or 'skip') and ``max_bad_fraction``: unreadable training
    images stop the run, or are replaced by another item of the same identity and
    modality (``bad_images.py``). ``modality_padding`` ('auto', 'sysu', 'regdb'): the
    padding rule of ``RandomIdentityModalitySampler`` ('auto': 'regdb' when every source
    is a RegDB dataset, as the authors' code decides by the dataset name).
    ``resize_interpolation``, ``erase_fill``, ``grayscale_after_erase``: the train
    pipeline options of ``transforms.apply_pipeline_options`` (the MIP authors' input
    pipeline: 'bicubic', 'random', True; the defaults keep torchreid's).
    """

    #: the engine applies it to each training batch on the device (uint8 cache path)
    batch_transform = None

    def __init__(self, train_sampler=CROSS_MODAL_SAMPLER, dataset_options=None, seed=None,
                 batch_size_train=32, num_instances=4, workers=4,
                 transforms='random_flip', num_replicas=1, rank=0, data_cache=None,
                 on_bad_image='stop', max_bad_fraction=0.01, modality_padding='auto',
                 resize_interpolation='bilinear', erase_fill='mean',
                 grayscale_after_erase=False, **kwargs):
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        if on_bad_image not in ON_BAD_IMAGE:
            raise ConfigError('data.on_bad_image must be one of {}, got {!r}'.format(
                ON_BAD_IMAGE, on_bad_image))
        self._on_bad_image, self._max_bad_fraction = on_bad_image, float(max_bad_fraction)
        self._data_root = kwargs.get('root', '')   # the image cache lives beside its datasets
        if self.num_replicas > 1 and train_sampler not in SAMPLERS:
            raise ConfigError(
                'sampler.train_sampler {} in a {}-process run: every process would train on '
                'the same batches; use {} (they give each process its own ids)'.format(
                    train_sampler, self.num_replicas, ' or '.join(SAMPLERS.names())))
        self._modality_padding = modality_padding
        sampler = self._setup(train_sampler, seed)
        with scoped_options(dataset_options):   # torchreid builds the datasets in here
            super().__init__(train_sampler=sampler, batch_size_train=batch_size_train,
                             num_instances=num_instances, workers=workers,
                             transforms=transforms, **kwargs)
        self._add_plugin_transforms(transforms, dict(
            resize_interpolation=resize_interpolation, erase_fill=erase_fill,
            grayscale_after_erase=grayscale_after_erase))
        self._channel_setup(transforms, data_cache)
        self._resample_train_loader(batch_size_train, num_instances, workers)
        if (data_cache or {}).get('enabled'):
            self._use_image_cache(data_cache, transforms, workers)
        if self._exchange_view:   # CAJ: the second visible views join the batch
            self.train_loader.collate_fn = collate_views
        if on_bad_image == 'skip':
            self.train_loader = skip_bad_images(self.train_loader, max_bad_fraction)

    def _setup(self, train_sampler, seed):
        self._plugin_sampler = train_sampler if train_sampler in SAMPLERS else None
        self._want_cross_modal = self._plugin_sampler is not None
        self._seed = seed
        # torchreid only knows its own names; it builds a loader we then re-sample.
        return 'RandomSampler' if self._want_cross_modal else train_sampler

    def _add_plugin_transforms(self, names, options=None):
        names = [names] if isinstance(names, str) else list(names or [])
        self.transform_tr = add_plugin_transforms(self.transform_tr, names, self.height,
                                                  self.width)
        if options:
            self.transform_tr = apply_pipeline_options(self.transform_tr, names, self.height,
                                                       self.width, **options)
        self.train_set.transform = self.transform_tr

    def _channel_setup(self, names, data_cache):
        """CAJ's channel augmentations (``channel_aug.py``): applied per item after the
        pipeline, by the modality of the item, from its seed (a plugin sampler's)."""
        names = [names] if isinstance(names, str) else list(names or [])
        self._channel_names = channel_names(names)
        self._exchange_view = VIEW_NAME in [n.lower() for n in names]
        if (self._channel_names or self._exchange_view) and not self._want_cross_modal:
            raise ConfigError('data.transforms {} need per-item seeds: use one of the '
                              'plugin\'s samplers ({}) as sampler.train_sampler'.format(
                                  self._channel_names + [VIEW_NAME] * self._exchange_view,
                                  ', '.join(SAMPLERS.names())))
        gpu = (data_cache or {}).get('enabled') and (data_cache or {}).get('gpu_augment', True)
        scoped = [n for n in self._channel_names if n.endswith(('_visible', '_infrared'))]
        if gpu and (self._exchange_view or scoped):
            raise ConfigError('data.transforms {} (by modality, or a second view of each '
                              'visible item) have no batch form; set data_cache.gpu_augment '
                              'False to run the PIL pipeline on the cached images'.format(
                                  scoped + [VIEW_NAME] * self._exchange_view))

    def _channel_items(self, dataset):
        if not (self._channel_names or self._exchange_view):
            return dataset
        return ChannelAugItems(dataset, self._channel_names, view=self._exchange_view)

    def _resample_train_loader(self, batch_size, num_instances, workers):
        if not self._want_cross_modal:
            return
        old = self.train_loader
        # per-position item seeds and a private generator for the loader's own draws:
        # augmentation and order depend on (seed, epoch, position) only, so a run resumed
        # mid-epoch sees exactly the batches of an uninterrupted one
        cls = SAMPLERS.get(self._plugin_sampler)
        extra = {}
        if cls is RandomIdentityModalitySampler:
            extra['padding'] = self._padding_rule()
        try:
            sampler = cls(old.dataset.train, batch_size, num_instances, seed=self._seed,
                          item_seeds=True, num_replicas=self.num_replicas, rank=self.rank,
                          **extra)
        except ValueError as exc:   # a batch the training set cannot fill: the config's
            raise ConfigError('sampler {}: {}; lower train.batch_size or raise '
                              'sampler.num_instances'.format(cls.__name__, exc)) from None
        if self.num_replicas > 1 and sampler.num_pids_per_batch // self.num_replicas < 2:
            print('=> Warning: each of the {} processes gets 1 identity per batch (P = {}): '
                  'batch-hard triplet terms find no negative on a rank and give 0. Raise '
                  'train.batch_size to at least {} (2 ids per process)'.format(
                      self.num_replicas, sampler.num_pids_per_batch,
                      2 * self.num_replicas * (batch_size // sampler.num_pids_per_batch)))
        generator = torch.Generator()
        generator.manual_seed(0 if self._seed is None else int(self._seed))
        self.train_loader = torch.utils.data.DataLoader(
            SeededItems(self._channel_items(old.dataset)), sampler=sampler,
            batch_size=sampler.local_batch_size,
            shuffle=False,
            num_workers=workers, pin_memory=self.use_gpu, drop_last=True,
            persistent_workers=workers > 0, generator=generator)

    def _padding_rule(self):
        if self._modality_padding != 'auto':
            return self._modality_padding
        return 'regdb' if all(str(s).startswith('regdb') for s in self.sources) else 'sysu'

    def _use_image_cache(self, options, transforms, workers):
        norm = next(t for t in self.transform_tr.transforms if isinstance(t, T.Normalize))
        names = [transforms] if isinstance(transforms, str) else list(transforms or [])
        seeded = isinstance(self.train_loader.dataset, SeededItems)
        self.train_loader, self.batch_transform = cached_train_loader(
            self.train_loader, self.train_set, '+'.join(self.sources),
            (self.height, self.width), names, list(norm.mean), list(norm.std), seed=self._seed,
            folder=options.get('dir', ''), gpu_augment=options.get('gpu_augment', True),
            workers=workers, pin_memory=self.use_gpu,
            wrap=(lambda d: SeededItems(self._channel_items(d))) if seeded else None,
            on_bad=self._on_bad_image, max_bad_fraction=self._max_bad_fraction,
            root=self._data_root)

    @property
    def bad_image_policy(self):
        """(``data.on_bad_image``, ``data.max_bad_fraction``): every stage that reads training
        items applies it (the LSMRL prompt stage too)."""
        return self._on_bad_image, self._max_bad_fraction

    @property
    def train_set(self):
        """The training dataset (unwrapped from ``SeededItems``, the image cache and the
        replacement of unreadable items)."""
        dataset = self.train_loader.dataset
        while isinstance(dataset, (SeededItems, CachedTrainItems, ReplaceBadItems,
                                   ChannelAugItems)):
            dataset = dataset.dataset
        return dataset

    def query_dataset(self, name):
        """The query-mode dataset instance of a target (holds test_pool/eval_modes)."""
        return self.test_loader[name]['query'].dataset


class CrossModalImageDataManager(_CrossModalLoaders, compat.ImageDataManager):
    """torchreid's ImageDataManager with the cross-modal sampler and dataset options."""


class CrossModalVideoDataManager(_CrossModalLoaders, compat.VideoDataManager):
    """torchreid's VideoDataManager (tracklets) with the cross-modal sampler."""


def num_cameras(datamanager):
    """Camera-embedding size: every camid that training or testing can feed the model."""
    camids = {it[2] for it in datamanager.train_set.train}
    for name in datamanager.targets:
        ds = datamanager.query_dataset(name)
        pool = getattr(ds, 'test_pool', list(ds.query) + list(ds.gallery))
        camids |= {it[2] for it in pool}
    return max(camids) + 1
