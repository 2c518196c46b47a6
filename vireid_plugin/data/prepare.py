"""Make sure the datasets a run needs are on disk (the synthetic default)."""
import os.path as osp

from ..registry import IMAGE_DATASETS, VIDEO_DATASETS
from .synthetic import DATASET_DIRS, ensure_synthetic

# dataset folder under the data root -> synthetic generator family
SYNTHETIC_FAMILY = {folder: family for family, folder in DATASET_DIRS.items()}


def dataset_class(name):
    registry = VIDEO_DATASETS if name in VIDEO_DATASETS else IMAGE_DATASETS
    return registry.get(name) if name in registry else None


def prepare_datasets(cfg):
    """With ``data.synthetic``, generate every missing plugin dataset under ``data.root``.

    A root that is itself the dataset folder, or a dataset already present, is
    left alone; without ``data.synthetic`` nothing is written and a missing
    dataset is reported by the dataset class itself.
    """
    if not cfg.data.synthetic:
        return []
    made = []
    root = osp.abspath(osp.expanduser(cfg.data.root))
    for name in dict.fromkeys(list(cfg.data.sources) + list(cfg.data.targets)):
        cls = dataset_class(name)
        folder = getattr(cls, 'dataset_dir', None)
        if folder not in SYNTHETIC_FAMILY or osp.basename(root) == folder:
            continue
        if not osp.isdir(osp.join(root, folder)):
            made.append(ensure_synthetic(SYNTHETIC_FAMILY[folder], root))
    return made
