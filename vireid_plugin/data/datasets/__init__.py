"""Cross-modal datasets, one family (a sub-package or a module) each.

A family owns its loader (registered in ``registry.IMAGE_DATASETS`` /
``VIDEO_DATASETS``), the config section of its options (``config/sections.py``) and its
synthetic writer (``data/synthetic.py``). Every module and sub-package here is imported
below, so a family registers itself just by existing: adding a dataset edits no central
list (docs/adding-a-dataset.md). Datasets defined outside the package are imported with
``--plugin MODULE`` or the ``vireid_plugin.datasets`` entry points (``plugins.py``).
"""
import importlib
import pkgutil

from .base import (INFRARED, VISIBLE, CrossModalImageDataset, CrossModalVideoDataset,
                   with_modality)
from .common import DatasetNotFoundError
from .options import DatasetOptionError, dataset_option, scoped_options


def _import_families():
    for info in pkgutil.walk_packages(__path__, __name__ + '.'):
        importlib.import_module(info.name)


_import_families()

__all__ = ['INFRARED', 'VISIBLE', 'CrossModalImageDataset', 'CrossModalVideoDataset',
           'DatasetNotFoundError', 'DatasetOptionError', 'dataset_option', 'scoped_options',
           'with_modality']
