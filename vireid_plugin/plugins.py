"""Datasets (or models, loss terms) defined outside the package.

A module of your own registers its pieces the way the package's families do: a dataset
class in ``registry.IMAGE_DATASETS``/``VIDEO_DATASETS``, its options section with
``config.sections.register_config_section`` and its synthetic writer with
``data.synthetic.synthetic_writer`` (docs/adding-a-dataset.md). Importing it is all it
takes; two ways to have it imported:

- ``--plugin MODULE`` on the command line (``scripts/main.py``,
  ``scripts/make_synthetic_data.py``; repeatable): a module name on ``sys.path`` or the
  path of a ``.py`` file, imported before the config is read, so its sections' keys are
  known to the config file;
- an entry point of an installed distribution in the group ``vireid_plugin.datasets``,
  e.g. in its pyproject.toml ``[project.entry-points."vireid_plugin.datasets"]
  my_dataset = "my_package.my_dataset"``, imported by ``import vireid_plugin``.

After the imports the package's registries are copied into torchreid's again
(:func:`register_all`, which ``import vireid_plugin`` runs first), so torchreid's own
data managers accept the new datasets too.
"""
import importlib
import importlib.metadata
import importlib.util
import os
import sys
import warnings

from . import compat
from .engine.evaluation import evaluate_for_torchreid_engine
from .errors import ConfigError
from .registry import IMAGE_DATASETS, MODELS, VIDEO_DATASETS

ENTRY_POINT_GROUP = 'vireid_plugin.datasets'

__all__ = ['ENTRY_POINT_GROUP', 'add_argument', 'load', 'load_entry_points']


def add_argument(parser):
    """Add ``--plugin MODULE`` (repeatable) to an argparse parser (``args.plugin``: a list)."""
    parser.add_argument('--plugin', action='append', default=[], metavar='MODULE',
                        help='import MODULE (a module name or a .py file) first: a dataset '
                             'family of your own (docs/adding-a-dataset.md); repeatable')


def load(modules):
    """Import each of ``modules`` (module names or .py paths); returns the modules.

    A module that cannot be found is a ``ConfigError`` naming it; an error raised by the
    module's own code propagates unchanged (with its traceback)."""
    loaded = [_import(spec) for spec in modules or ()]
    if loaded:
        register_all()
    return loaded


def load_entry_points(group=ENTRY_POINT_GROUP):
    """Import the modules installed distributions declare in ``group``; one that fails
    to import is skipped with a warning naming it (the package stays importable)."""
    loaded = []
    for entry in importlib.metadata.entry_points(group=group):
        try:
            loaded.append(entry.load())
        except Exception as exc:  # a broken third-party plugin must not break the package
            warnings.warn('vireid_plugin: entry point {!r} ({}) of group {} failed to '
                          'import and is skipped: {}: {}'.format(
                              entry.name, entry.value, group, type(exc).__name__, exc))
    return loaded


def _import(spec):
    if spec.endswith('.py') or os.sep in spec:
        path = os.path.abspath(os.path.expanduser(spec))
        if not os.path.isfile(path):
            raise ConfigError('--plugin {}: file not found ({})'.format(spec, path))
        name = os.path.splitext(os.path.basename(path))[0]
        if name in sys.modules and getattr(sys.modules[name], '__file__', None) == path:
            return sys.modules[name]
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module   # pickling its classes (DataLoader workers) finds it
        try:
            module_spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module
    try:
        return importlib.import_module(spec)
    except ModuleNotFoundError as exc:
        if exc.name != spec and not spec.startswith(str(exc.name) + '.'):
            raise   # the plugin itself imports something missing: its own error
        raise ConfigError('--plugin {}: no module named {!r} on the Python path (give a '
                          'module name importable through PYTHONPATH, or the path of a .py '
                          'file)'.format(spec, exc.name)) from None


def register_all():
    """Copy the plugin's registries into torchreid's and let torchreid's own engines score
    plugin datasets with the cross-modal protocols (idempotent; see ``compat.py``)."""
    for name, cls in IMAGE_DATASETS.items():
        compat.register_image_dataset(name, cls)
    for name, cls in VIDEO_DATASETS.items():
        compat.register_video_dataset(name, cls)
    for name, builder in MODELS.items():
        compat.register_model(name, builder)
    compat.install_cross_modal_evaluation(evaluate_for_torchreid_engine)
