"""Config files and command-line overrides, with errors a user can act on.

yacs raises a bare KeyError/ValueError deep in its merge; here each becomes one
``ConfigError`` line naming the file (or the command line), the key, and the
closest existing keys. Files may inherit with ``_BASE_: other.yaml`` (fast-reid
style, path relative to the including file).
"""
import difflib
import os
import re

import yaml
from yacs.config import CfgNode as CN

from .. import compat
from ..errors import ConfigError
from ..metrics.distance import DIST_METRICS
from ..metrics.selection import SELECT_METRICS
from ..registry import CONFIG_SECTIONS, LOSSES, MODELS, OPTIMIZERS, SCHEDULERS, TRANSFORMS
from ..signals import signal_numbers
from .checks import check_values
from .defaults import get_default_config
from .sections import changed_keys

BASE_KEY = '_BASE_'


def _flat_keys(cfg, prefix=''):
    keys = []
    for k, v in cfg.items():
        full = prefix + k
        keys.extend(_flat_keys(v, full + '.') if isinstance(v, CN) else [full])
    return keys


def _explain(exc, cfg, source):
    msg = str(exc.args[0] if exc.args else exc)
    m = re.search(r'Non-existent (?:config )?key: (\S+)', msg)
    if m:
        key = m.group(1)
        close = difflib.get_close_matches(key, _flat_keys(cfg), n=3, cutoff=0.6)
        hint = '; did you mean {}?'.format(', '.join(close)) if close else ''
        return ConfigError('unknown config key {!r} in {}{}'.format(key, source, hint))
    m = re.search(r'Type mismatch \((.*)\) with values \((.*)\) for config key: (\S+)', msg)
    if m:
        return ConfigError('config key {!r} in {}: expected a value like the default ({}), '
                           'got {}'.format(m.group(3), source, m.group(2).split(' vs. ')[0],
                                           m.group(2).split(' vs. ')[-1]))
    return ConfigError('{}: {}'.format(source, msg))


class _NoAliasLoader(yaml.SafeLoader):
    """yaml's safe loader without anchors and aliases: a config needs none, and nested
    aliases let a few hundred bytes expand to gigabytes when the config is printed."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise yaml.composer.ComposerError(
                None, None, 'aliases (*{}) are not allowed in config files; write the value '
                'out'.format(event.anchor), event.start_mark)
        return super().compose_node(parent, index)


def _yaml_problem(exc):
    """'line L, column C: problem' of a yaml error (1-based, as editors count)."""
    mark = getattr(exc, 'problem_mark', None) or getattr(exc, 'context_mark', None)
    problem = getattr(exc, 'problem', None) or str(exc).splitlines()[0]
    if mark is None:
        return problem
    return 'line {}, column {}: {}'.format(mark.line + 1, mark.column + 1, problem)


def _read_yaml(path, seen=(), included_by=None):
    if not os.path.isfile(path):
        if included_by:
            raise ConfigError('config file {} not found: {} {} of {} (a path relative to that '
                              'file)'.format(path, BASE_KEY, os.path.relpath(
                                  path, os.path.dirname(included_by)), included_by))
        raise ConfigError('config file not found: {}'.format(path))
    if os.path.abspath(path) in seen:
        raise ConfigError('config file {} includes itself through {}'.format(path, BASE_KEY))
    try:
        with open(path, encoding='utf-8') as f:
            data = yaml.load(f, Loader=_NoAliasLoader) or {}
    except UnicodeDecodeError as exc:
        raise ConfigError('config file {} is not UTF-8 text (byte 0x{:02x} at offset {}); '
                          'save it as UTF-8'.format(path, exc.object[exc.start],
                                                    exc.start)) from None
    except yaml.YAMLError as exc:
        raise ConfigError('config file {} is not valid YAML at {}'.format(
            path, _yaml_problem(exc))) from None
    if not isinstance(data, dict):
        raise ConfigError('config file {} must hold a mapping of sections, got {}'.format(
            path, type(data).__name__))
    chain = []
    base = data.pop(BASE_KEY, None)
    if base:
        base_path = os.path.join(os.path.dirname(path), base)
        chain = _read_yaml(base_path, seen + (os.path.abspath(path),), included_by=path)
    return chain + [(path, data)]


#: keys that take auto, true or false: a YAML/CLI boolean is read as 'true' / 'false'
AUTO_BOOL_KEYS = ('ddp_find_unused_parameters',)


def _int_to_float(default, value, key=None):
    """yacs refuses ``1`` for a float key; a user writing ``warmup_epochs: 1`` means 1.0."""
    if isinstance(default, CN) and isinstance(value, dict):
        return {k: _int_to_float(default.get(k), v, k) for k, v in value.items()}
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if key in AUTO_BOOL_KEYS and isinstance(value, bool):
        return str(value).lower()
    if isinstance(default, list) and default and isinstance(value, list) and all(
            isinstance(d, float) for d in default):
        return [float(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
    return value


def merge_file(cfg, path):
    for source, data in _read_yaml(path):
        try:
            cfg.merge_from_other_cfg(CN(_int_to_float(cfg, data)))
        except (KeyError, ValueError, AssertionError) as exc:
            raise _explain(exc, cfg, source) from None


def merge_opts(cfg, opts):
    if len(opts) % 2:
        raise ConfigError('command-line overrides must be KEY VALUE pairs; got an odd '
                          'number of words: {}'.format(' '.join(opts)))
    opts = list(opts)
    for i in range(0, len(opts), 2):
        node = cfg
        for part in opts[i].split('.'):
            node = node.get(part) if isinstance(node, CN) else None
        try:
            value = yaml.safe_load(opts[i + 1]) if isinstance(opts[i + 1], str) else opts[i + 1]
        except yaml.YAMLError:
            continue
        coerced = _int_to_float(node, value, opts[i].split('.')[-1])
        # YAML's flow lists ([id, triplet]) are not Python literals, which yacs expects
        if coerced is not value or (isinstance(node, list) and isinstance(value, list)):
            opts[i + 1] = repr(coerced)
    try:
        cfg.merge_from_list(opts)
    except (KeyError, ValueError, AssertionError) as exc:
        raise _explain(exc, cfg, 'the command line') from None


def check_config(cfg):
    """Cross-key checks yacs cannot do; values no run can use (``checks.py``)."""
    check_values(cfg)
    if len(cfg.loss.terms) != len(cfg.loss.weights):
        raise ConfigError('loss.terms {} and loss.weights {} must have the same length'.format(
            list(cfg.loss.terms), list(cfg.loss.weights)))
    for key, registry in (('model.name', MODELS), ('train.optim', OPTIMIZERS),
                          ('train.lr_scheduler', SCHEDULERS)):
        sec, name = key.split('.')
        _check_name(key, cfg[sec][name], registry)
    for term in cfg.loss.terms:
        _check_name('loss.terms', term, LOSSES)
    _check_dataset_names(cfg)
    _check_sections(cfg)
    choices = {'train.amp': ('auto', 'bf16', 'fp16', 'off'),
               'test.select_on': ('last', 'val', 'test'),
               'train.on_nonfinite': ('skip', 'rollback', 'stop'),
               'train.on_write_error': ('stop', 'retry'),
               'data.on_bad_image': ('stop', 'skip'),
               'data.type': ('image', 'video'),
               'test.dist_metric': DIST_METRICS,
               'test.select_metric': SELECT_METRICS,
               'data.resize_interpolation': ('bilinear', 'bicubic'),
               'data.erase_fill': ('mean', 'random'),
               'sampler.modality_padding': ('auto', 'sysu', 'regdb'),
               'train.ddp_find_unused_parameters': ('auto', 'true', 'false')}
    for key, allowed in choices.items():
        sec, name = key.split('.')
        if cfg[sec][name] not in allowed:
            raise ConfigError('config key {!r} must be one of {}, got {!r}'.format(
                key, allowed, cfg[sec][name]))
    unknown = [n for n in cfg.data.transforms if n.lower() not in TRANSFORMS]
    if unknown:
        raise ConfigError('data.transforms: unknown transform(s) {}; available: {}'.format(
            unknown, ', '.join(TRANSFORMS.names())))
    try:
        signal_numbers(cfg.train.preempt_signals)
    except ValueError as exc:
        raise ConfigError('train.preempt_signals: {}'.format(exc)) from None
    if not 0.0 <= cfg.data.max_bad_fraction <= 1.0:
        raise ConfigError('data.max_bad_fraction must be in [0, 1] (a fraction of the training '
                          'items), got {}'.format(cfg.data.max_bad_fraction))
    if cfg.num_threads < 0:
        raise ConfigError("num_threads must be >= 0 (0: PyTorch's default, one per core), "
                          'got {}'.format(cfg.num_threads))
    k = cfg.sampler.num_instances
    if cfg.sampler.train_sampler == 'CrossModalIdentitySampler' and (
            k < 1 or cfg.train.batch_size < 2 * k or cfg.train.batch_size % (2 * k)):
        raise ConfigError('train.batch_size {} must be a positive multiple of 2 x '
                          'sampler.num_instances = {} (P ids x {} visible + {} infrared per '
                          'batch)'.format(cfg.train.batch_size, 2 * k, k, k))
    _check_mip_pipeline(cfg)
    if cfg.test.rerank and cfg.test.dist_metric == 'dot':
        raise ConfigError("test.rerank needs a distance (test.dist_metric euclidean or cosine): "
                          "torchreid's re_ranking squares the distances, which a negated dot "
                          'product (dot) does not survive')
    if cfg.test.visrank and not cfg.test.evaluate:
        raise ConfigError('test.visrank draws ranked lists of an evaluation run: set '
                          'test.evaluate True with it (and model.load_weights)')
    for _, section in CONFIG_SECTIONS.items():
        problem = section.check(cfg) if section.check else None
        if problem:
            raise ConfigError(problem)


def _check_mip_pipeline(cfg):
    """The MIP authors' sampler and input-pipeline keys (RandomIdentityModalitySampler,
    data.erase_fill / grayscale_after_erase / resize_interpolation)."""
    k, names = cfg.sampler.num_instances, [n.lower() for n in cfg.data.transforms]
    if cfg.sampler.train_sampler == 'RandomIdentityModalitySampler' and (
            k < 2 or k % 2 or cfg.train.batch_size < k or cfg.train.batch_size % k):
        raise ConfigError('RandomIdentityModalitySampler: sampler.num_instances {} must be even '
                          '(K / 2 infrared + K / 2 visible per identity) and train.batch_size {} '
                          'a multiple of it (P ids x K)'.format(k, cfg.train.batch_size))
    for key, value, name in (('erase_fill', 'random', 'random_erase'),
                             ('grayscale_after_erase', True, 'random_grayscale')):
        if cfg.data[key] == value and name not in names:
            raise ConfigError('data.{} {} changes {}, which data.transforms {} does not '
                              'name'.format(key, value, name, list(cfg.data.transforms)))
    changed = [key for key, plain in (('resize_interpolation', 'bilinear'), ('erase_fill', 'mean'),
                                      ('grayscale_after_erase', False)) if cfg.data[key] != plain]
    if changed and (cfg.get('data_cache') or {}).get('enabled', False):
        raise ConfigError('data.{} is not available with data_cache.enabled True (the cache '
                          'resizes bilinear and augments as torchreid does); set '
                          'data_cache.enabled False'.format(changed[0]))


def _check_name(key, value, registry):
    try:
        registry.get(value)
    except KeyError as exc:
        raise ConfigError('config key {!r}: {}'.format(key, exc.args[0])) from None


def _check_dataset_names(cfg):
    """data.sources / data.targets: names torchreid's data manager of data.type knows (the
    plugin's are registered there), with close names for a typo and data.type for a name
    of the other kind; found before any data is read."""
    if cfg.data.type not in ('image', 'video'):
        return   # check_config names the allowed values
    video = cfg.data.type == 'video'
    known = compat.video_dataset_names() if video else compat.image_dataset_names()
    other = compat.image_dataset_names() if video else compat.video_dataset_names()
    for key in ('sources', 'targets'):
        names = list(cfg.data[key])
        if not names:
            raise ConfigError('data.{} is empty: name at least one dataset (e.g. {})'.format(
                key, known[0] if known else 'sysu_mm01'))
        for name in names:
            if name in known:
                continue
            if name in other:
                raise ConfigError('data.{}: {} is {} dataset and data.type is {!r}: set '
                                  'data.type {}'.format(key, name, 'an image' if video else
                                                        'a video', cfg.data.type,
                                                        'image' if video else 'video'))
            close = difflib.get_close_matches(str(name), known + other, n=3, cutoff=0.6)
            raise ConfigError('data.{}: unknown dataset {!r}{}; {} datasets: {}'.format(
                key, name, ' (did you mean {}?)'.format(', '.join(close)) if close else '',
                cfg.data.type, ', '.join(known)))


def _check_sections(cfg):
    """Keys of a family's section set while the chosen model reads another section; values
    outside a section's declared choices."""
    used = getattr(MODELS.get(cfg.model.name), 'config_section', None)
    for name, section in CONFIG_SECTIONS.items():
        for key, allowed in section.choices.items():
            if cfg[name][key] not in allowed:
                raise ConfigError('config key {!r} must be one of {}, got {!r}'.format(
                    '{}.{}'.format(name, key), tuple(allowed), cfg[name][key]))
        if name == used or not section.family:
            continue
        stray = changed_keys(cfg, name)
        if stray:
            raise ConfigError('config key {!r} is set, but model {!r} does not read the {!r} '
                              'section ({}); remove it or choose a {} model'.format(
                                  stray[0], cfg.model.name, name,
                                  'it reads {!r}'.format(used) if used else 'it has no section',
                                  section.doc or name))


def load_config(config_file='', opts=(), sources=None, targets=None, root=None,
                transforms=None):
    """Defaults <- file (with _BASE_) <- CLI flags <- trailing KEY VALUE overrides."""
    cfg = get_default_config()
    if config_file:
        merge_file(cfg, config_file)
    if root:
        cfg.data.root = root
    if sources:
        cfg.data.sources = list(sources)
    if targets:
        cfg.data.targets = list(targets)
    if transforms:
        cfg.data.transforms = list(transforms)
    merge_opts(cfg, opts)
    check_config(cfg)
    cfg.freeze()
    return cfg
