"""Make sure the datasets a run needs are on disk (the synthetic default).

A dataset class names its folder under the data root (``dataset_dir``); the synthetic
writer registered for that folder (``data/synthetic.py``, ``synthetic_writer``) makes it.
"""
import inspect
import os
import os.path as osp
import time

from ..registry import IMAGE_DATASETS, SYNTHETIC_WRITERS, VIDEO_DATASETS
from .synthetic import writer_for_folder


def dataset_class(name):
    registry = VIDEO_DATASETS if name in VIDEO_DATASETS else IMAGE_DATASETS
    return registry.get(name) if name in registry else None


def ensure_synthetic(name, root, **kw):
    """Path of ``<root>/<folder>`` of the synthetic dataset ``name`` (a registered writer),
    generating it first if it is missing."""
    return _ensure(SYNTHETIC_WRITERS.get(name), root, **kw)   # KeyError lists the names


def _ensure(writer, root, **kw):
    target = os.path.join(root, writer.folder)
    if os.path.isdir(target):
        return target
    print('Generating synthetic {} data in {}'.format(writer.folder, target))
    try:
        return writer(root, **kw)
    except FileExistsError:
        if os.path.isdir(target):   # a concurrent run got there first
            return target
        raise


def write_synthetic(name, root, seed=0, overwrite=False, flat=False):
    """Run the registered writer ``name`` at its default size (the demos' data), print where
    and how long; ``flat`` reaches a writer that takes it (HITSZ-VCM without Train/Test)."""
    writer = SYNTHETIC_WRITERS.get(name)
    kw = {'flat': True} if flat and 'flat' in inspect.signature(writer).parameters else {}
    start = time.time()
    path = writer(root, seed=seed, overwrite=overwrite, **kw)
    print('wrote {} in {:.1f} s'.format(path, time.time() - start))
    return path


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
        folder = getattr(dataset_class(name), 'dataset_dir', None)
        writer = writer_for_folder(folder) if folder else None
        if writer is None or osp.basename(root) == folder:
            continue
        if not osp.isdir(osp.join(root, folder)):
            made.append(_ensure(writer, root))
    return made
