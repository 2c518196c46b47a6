"""The only module that knows where torchreid keeps things.

PyPI's ``torchreid`` 0.2.5 ships the library under ``torchreid.reid.*`` (and
``import torchreid.data`` fails there), upstream deep-person-reid under
``torchreid.*``. Everything else in the plugin imports torchreid through here.
"""
import functools
import importlib
import warnings

from .registry import origin, same_definition

__all__ = [
    'layout', 'data', 'datasets', 'datamanager', 'models', 'engine', 'utils',
    'optim', 'metrics', 'transforms', 'ImageDataset', 'VideoDataset',
    'ImageDataManager', 'VideoDataManager', 'Engine', 'register_image_dataset',
    'register_video_dataset', 'register_model', 'image_dataset_names',
    'video_dataset_names', 'model_names', 'install_cross_modal_evaluation',
]

_SUBMODULES = ('data', 'data.datasets', 'data.datamanager', 'data.transforms',
               'models', 'engine', 'utils', 'optim', 'metrics')
_LAYOUTS = (('pypi', 'torchreid.reid'), ('upstream', 'torchreid'))


def resolve(import_module=importlib.import_module):
    """Return (layout name, {submodule path: module}) for the installed torchreid."""
    errors = []
    for name, root in _LAYOUTS:
        try:
            with warnings.catch_warnings():
                # torchreid warns on import that its Cython ranking is not built; the
                # plugin ranks with its own vectorised metric, so the notice is noise.
                warnings.filterwarnings('ignore', message='Cython evaluation')
                mods = {sub: import_module(root + '.' + sub) for sub in _SUBMODULES}
        except ImportError as exc:  # this layout is not the installed one
            errors.append('{}: {}'.format(root, exc))
            continue
        return name, mods
    raise ImportError(
        'vireid_plugin needs torchreid (PyPI "torchreid==0.2.5" or upstream '
        'deep-person-reid); neither layout imports: ' + '; '.join(errors))


layout, _mods = resolve()
data = _mods['data']
datasets = _mods['data.datasets']
datamanager = _mods['data.datamanager']
transforms = _mods['data.transforms']
models = _mods['models']
engine = _mods['engine']
utils = _mods['utils']
optim = _mods['optim']
metrics = _mods['metrics']

ImageDataset = data.ImageDataset
VideoDataset = data.VideoDataset
ImageDataManager = datamanager.ImageDataManager
VideoDataManager = datamanager.VideoDataManager
Engine = engine.Engine


# torchreid keeps its registries in module-level dicts with dunder names and
# raises on duplicate registration; we write into them directly so that a
# re-import or importlib.reload of the plugin replaces its own entries. A name
# torchreid (or anything else) already holds is never replaced.
def _registry(module, key):
    table = vars(module).get(key)
    if not isinstance(table, dict):
        raise ImportError('torchreid module {} has no registry {!r}; this torchreid '
                          'version is not supported'.format(module.__name__, key))
    return table


def _put(table, kind, name, obj):
    old = table.get(name)
    if old is not None and not _ours(old) and not same_definition(old, obj):
        raise ValueError('{} name {!r} is already registered in torchreid by {}; vireid_plugin '
                         'will not replace it with {}: register the plugin\'s entry under '
                         'another name'.format(kind, name, origin(old), origin(obj)))
    table[name] = obj


def _ours(obj):
    return getattr(obj, '__module__', '').split('.')[0] == 'vireid_plugin'


def register_image_dataset(name, cls):
    _put(_registry(datasets, '__image_datasets'), 'image dataset', name, cls)


def register_video_dataset(name, cls):
    _put(_registry(datasets, '__video_datasets'), 'video dataset', name, cls)


def register_model(name, builder):
    _put(_registry(models, '__model_factory'), 'model', name, _sized_builder(name, builder))


def _sized_builder(name, builder):
    """``builder`` as torchreid's ``build_model`` calls it (with no image size): the model
    it returns refuses, in one line, an input of another height x width than the one it
    was built for (its patch embedding's ``img_size``), instead of timm's error deep in
    the forward pass."""
    @functools.wraps(builder)
    def build(*args, **kwargs):
        model = builder(*args, **kwargs)
        size = next((tuple(m.img_size) for m in model.modules()
                     if isinstance(getattr(m, 'img_size', None), (tuple, list))
                     and getattr(m, 'strict_img_size', True)), None)
        if size is not None and hasattr(model, 'register_forward_pre_hook'):
            model.register_forward_pre_hook(functools.partial(_check_input_size, name, size))
        return model
    return build


def _check_input_size(name, size, module, args):
    x = args[0] if args else None
    if getattr(x, 'dim', None) is not None and x.dim() >= 4 and tuple(x.shape[-2:]) != size:
        from .errors import ConfigError
        raise ConfigError(
            '{} takes {}x{} images (torchreid\'s build_model passes no size), got {}x{}: '
            'give the data manager height={}, width={}, or build it at your size with '
            'vireid_plugin.models.build_model({!r}, num_classes, img_size=({}, {}))'.format(
                name, size[0], size[1], x.shape[-2], x.shape[-1], size[0], size[1], name,
                x.shape[-2], x.shape[-1]))


def image_dataset_names():
    return sorted(_registry(datasets, '__image_datasets'))


def video_dataset_names():
    return sorted(_registry(datasets, '__video_datasets'))


def model_names():
    return sorted(_registry(models, '__model_factory'))


# The one change the plugin makes to torchreid's own code. torchreid's engines
# (ImageSoftmaxEngine, ImageTripletEngine, the video engines) evaluate through
# Engine._evaluate, which knows one protocol: market-style single-gallery scoring.
# On a plugin dataset that gives one trial of numbers that look like results and
# are not comparable with any paper. The wrapper below sends plugin datasets (their
# query set has `eval_modes`) to the plugin's cross-modal evaluation (pool extracted
# once, every trial, the dataset's protocol, mINP, the same table as the plugin's
# engine) and calls torchreid's original for everything else. Installing it twice
# is a no-op.
def install_cross_modal_evaluation(evaluate):
    """``evaluate(engine, name, dataset, query_loader, dist_metric, normalize_feature, ranks,
    save_dir, rerank) -> (rank1, mAP)`` scores plugin datasets (the package passes
    ``engine.evaluation.evaluate_for_torchreid_engine``)."""
    original = engine.Engine._evaluate
    if getattr(original, '_vireid_cross_modal', False):
        return False

    @functools.wraps(original)
    def _evaluate(self, dataset_name='', query_loader=None, gallery_loader=None,
                  dist_metric='euclidean', normalize_feature=False, visrank=False,
                  visrank_topk=10, save_dir='', use_metric_cuhk03=False, ranks=(1, 5, 10, 20),
                  rerank=False):
        dataset = getattr(query_loader, 'dataset', None)
        if not hasattr(dataset, 'eval_modes'):
            return original(self, dataset_name=dataset_name, query_loader=query_loader,
                            gallery_loader=gallery_loader, dist_metric=dist_metric,
                            normalize_feature=normalize_feature, visrank=visrank,
                            visrank_topk=visrank_topk, save_dir=save_dir,
                            use_metric_cuhk03=use_metric_cuhk03, ranks=list(ranks),
                            rerank=rerank)
        return evaluate(self, dataset_name, dataset, query_loader, dist_metric,
                        normalize_feature, ranks, save_dir, rerank)

    _evaluate._vireid_cross_modal = True
    _evaluate._vireid_original = original
    engine.Engine._evaluate = _evaluate
    return True
