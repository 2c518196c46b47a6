"""Value checks of a loaded config: one ``ConfigError`` line per bad value, before any data
or model work (a negative height, a NaN learning rate, a batch of 0, a list of lists where a
list of numbers belongs would otherwise fail minutes later, deep in a data loader or a
scheduler, with a traceback).

``check_values(cfg)`` runs once when a config is loaded (``config.loading.check_config``);
``check_device(cfg, device)`` runs when a run starts and its device is known
(``runner.run``), so a config written for a GPU can still be loaded and read on a CPU
(figures, export) but not trained there with options that need CUDA.
"""
import math

from ..errors import ConfigError, bounded_repr

__all__ = ['check_values', 'check_device', 'not_utf8', 'MAX_LIST_LENGTH']

#: the longest list a config key may hold (test.ranks, loss.terms, data.sources, ...)
MAX_LIST_LENGTH = 256

# key: (lowest allowed value, what the key means when the bound is broken)
_AT_LEAST = {
    'data.height': (1, 'the input height in pixels'),
    'data.width': (1, 'the input width in pixels'),
    'data.workers': (0, 'data loader worker processes; 0 loads in the main process'),
    'data.k_tfm': (1, 'augmented copies per image'),
    'train.batch_size': (1, 'images per training batch'),
    'test.batch_size': (1, 'images per evaluation batch'),
    'train.lr': (0.0, 'the base learning rate'),
    'train.weight_decay': (0.0, 'the weight decay'),
    'train.start_epoch': (0, 'the first epoch, 0-based'),
    'train.print_freq': (1, 'iterations between log lines'),
    'train.warmup_epochs': (0.0, 'the warmup length in epochs'),
    'train.min_lr_factor': (0.0, 'the final LR factor of the cosine'),
    'train.grad_clip': (0.0, 'the max gradient norm; 0 is off'),
    'train.checkpoint_every': (0, 'epochs between checkpoints; 0: only the last'),
    'train.checkpoint_every_iters': (0, 'iterations between checkpoints; 0 is off'),
    'train.keep_checkpoints': (1, 'regular checkpoints kept'),
    'train.max_nonfinite_steps': (1, 'non-finite steps in a row before stopping'),
    'sampler.num_instances': (1, 'images per identity in a batch'),
    'video.seq_len': (1, 'frames per clip'),
    'test.visrank_topk': (1, 'gallery images per ranked list'),
    'test.num_trials': (1, 'gallery trials scored'),
    'test.start_eval': (0, 'the first epoch evaluated'),
}


def not_utf8(text):
    """Whether ``text`` holds undecodable bytes (``os.fsdecode``'s surrogate escapes, as
    command-line words and ``os.listdir`` names in another encoding arrive)."""
    return any('\udc80' <= c <= '\udcff' for c in text)


def _flat(node, prefix=''):
    """(dotted key, value) of every leaf of a yacs node."""
    for key, value in node.items():
        full = prefix + key
        if isinstance(value, dict):
            yield from _flat(value, full + '.')
        else:
            yield full, value


def _lookup(node, key):
    for part in key.split('.'):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _short(value):
    return bounded_repr(value)


def _check_list(key, value, default):
    """A list key holds at most MAX_LIST_LENGTH scalars of the default's element type."""
    if len(value) > MAX_LIST_LENGTH:
        raise ConfigError('config key {!r} holds {} entries; at most {} are accepted'.format(
            key, len(value), MAX_LIST_LENGTH))
    kinds = {type(v) for v in default} if default else set()
    if float in kinds:
        kinds.add(int)    # 1 for 1.0
    nested = any(isinstance(d, (list, tuple)) for d in default)   # a section may want them
    for i, item in enumerate(value):
        if isinstance(item, (list, tuple, dict)) and not nested:
            raise ConfigError('config key {!r}: entry {} is a {} ({}); expected a flat list '
                              'like the default {}'.format(key, i, type(item).__name__,
                                                           _short(item), list(default)))
        if kinds and type(item) not in kinds:
            raise ConfigError('config key {!r}: entry {} is {} ({}); expected {} like the '
                              'default {}'.format(key, i, _short(item), type(item).__name__,
                                                  ' or '.join(sorted(t.__name__ for t in kinds)),
                                                  list(default)))
        if isinstance(item, float) and not math.isfinite(item):
            raise ConfigError('config key {!r}: entry {} is {}; expected a finite '
                              'number'.format(key, i, item))


def check_values(cfg, defaults=None):
    """Refuse values no run can use; ``defaults``: the default config (built when None)."""
    if defaults is None:
        from .defaults import get_default_config
        defaults = get_default_config()
    for key, value in _flat(cfg):
        if isinstance(value, str) and not_utf8(value):
            raise ConfigError('config key {!r} is {}, which holds bytes that are not UTF-8 (a '
                              'file or folder name in another encoding); rename it, the logs '
                              'and results files are UTF-8'.format(key, ascii(value)))
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError('config key {!r} is {}; expected a finite number'.format(
                key, value))
        if isinstance(value, (list, tuple)):
            default = _lookup(defaults, key)
            _check_list(key, value, default if isinstance(default, (list, tuple)) else [])
    for key, (low, meaning) in _AT_LEAST.items():
        value = _lookup(cfg, key)
        if value is not None and not isinstance(value, bool) and value < low:
            raise ConfigError('config key {!r} ({}) must be >= {}, got {}'.format(
                key, meaning, low, value))
    for key in ('data.sources', 'data.targets'):
        if not list(_lookup(cfg, key)):
            raise ConfigError('config key {!r} is empty: name at least one dataset (e.g. '
                              'sysu_mm01)'.format(key))
    ranks = list(cfg.test.ranks)
    if not ranks or min(ranks) < 1:
        raise ConfigError('config key \'test.ranks\' must list CMC ranks >= 1 (e.g. [1, 5, 10, '
                          '20]), got {}'.format(_short(ranks)))
    if len(cfg.data.norm_mean) != 3 or len(cfg.data.norm_std) != 3 or \
            min(cfg.data.norm_std) <= 0:
        raise ConfigError('data.norm_mean and data.norm_std must hold 3 values (R, G, B), the '
                          'std > 0; got {} and {}'.format(list(cfg.data.norm_mean),
                                                          list(cfg.data.norm_std)))
    if cfg.train.max_epoch < 1 and not cfg.test.evaluate:
        raise ConfigError('train.max_epoch is {}: nothing would be trained; set it >= 1, or '
                          'test.evaluate True (with model.load_weights) to only '
                          'evaluate'.format(cfg.train.max_epoch))


def check_device(cfg, device):
    """Options that need CUDA, refused on a CPU ``device`` (a torch.device) before any data
    work (a real dataset's first cache build takes minutes)."""
    if getattr(device, 'type', str(device)) == 'cuda':
        return
    why = 'use_gpu is False' if not cfg.use_gpu else 'no CUDA device is available'
    if cfg.train.amp == 'fp16':
        raise ConfigError('train.amp fp16 needs a CUDA device ({}); use bf16 or off on a '
                          'CPU'.format(why))
    if cfg.train.sync_bn:
        raise ConfigError('train.sync_bn needs CUDA (SyncBatchNorm has no CPU kernel; {}); '
                          'set it False'.format(why))
