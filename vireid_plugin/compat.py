"""The only module that knows where torchreid keeps things.

PyPI's ``torchreid`` 0.2.5 ships the library under ``torchreid.reid.*`` (and
``import torchreid.data`` fails there), upstream deep-person-reid under
``torchreid.*``. Everything else in the plugin imports torchreid through here.
"""
import importlib
import warnings

__all__ = [
    'layout', 'data', 'datasets', 'datamanager', 'models', 'engine', 'utils',
    'optim', 'metrics', 'transforms', 'ImageDataset', 'VideoDataset',
    'ImageDataManager', 'VideoDataManager', 'Engine', 'register_image_dataset',
    'register_video_dataset', 'register_model', 'image_dataset_names',
    'video_dataset_names', 'model_names',
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
# re-import or importlib.reload of the plugin replaces its own entries.
def _registry(module, key):
    table = vars(module).get(key)
    if not isinstance(table, dict):
        raise ImportError('torchreid module {} has no registry {!r}; this torchreid '
                          'version is not supported'.format(module.__name__, key))
    return table


def _put(table, kind, name, obj):
    old = table.get(name)
    if old is not None and old is not obj and not _ours(old):
        raise ValueError('{} name {!r} is already registered in torchreid by {}; '
                         'vireid_plugin will not overwrite it'.format(
                             kind, name, getattr(old, '__module__', old)))
    table[name] = obj


def _ours(obj):
    return getattr(obj, '__module__', '').split('.')[0] == 'vireid_plugin'


def register_image_dataset(name, cls):
    _put(_registry(datasets, '__image_datasets'), 'image dataset', name, cls)


def register_video_dataset(name, cls):
    _put(_registry(datasets, '__video_datasets'), 'video dataset', name, cls)


def register_model(name, builder):
    _put(_registry(models, '__model_factory'), 'model', name, builder)


def image_dataset_names():
    return sorted(_registry(datasets, '__image_datasets'))


def video_dataset_names():
    return sorted(_registry(datasets, '__video_datasets'))


def model_names():
    return sorted(_registry(models, '__model_factory'))
