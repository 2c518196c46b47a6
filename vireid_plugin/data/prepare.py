"""Make sure the datasets a run needs are on disk (the synthetic default).

A dataset class names its folder under the data root (``dataset_dir``); the synthetic
writer registered for that folder (``data/synthetic.py``, ``synthetic_writer``) makes it.
"""
import inspect
import os
import os.path as osp
import time

from ..registry import IMAGE_DATASETS, SYNTHETIC_WRITERS, VIDEO_DATASETS
from .datasets.common import check_not_synthetic
from .synthetic import SYNTHETIC_MARKER, is_synthetic, older_synthetic_ids, writer_for_folder


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


def _dataset_folders(cfg):
    """(dataset folder name, its path under data.root) of every source and target."""
    root = osp.abspath(osp.expanduser(cfg.data.root))
    for name in dict.fromkeys(list(cfg.data.sources) + list(cfg.data.targets)):
        folder = getattr(dataset_class(name), 'dataset_dir', None)
        if folder:
            yield folder, root if osp.basename(root) == folder else osp.join(root, folder)


def check_real_data(cfg):
    """Without ``data.synthetic``: refuse a synthetic tree where a dataset of the run is
    read (before any data is loaded; the loaders check the marker again), and an unmarked
    one that looks like an older writer's (``check_not_older_synthetic``)."""
    if cfg.data.synthetic:
        return
    for folder, path in _dataset_folders(cfg):
        if osp.isdir(path):
            check_not_synthetic(path, folder, synthetic=False)   # older trees too


def prepare_datasets(cfg):
    """With ``data.synthetic``, generate every missing plugin dataset under ``data.root``.

    A root that is itself the dataset folder, or a dataset already present, is
    left alone (one line says when it is not a synthetic tree); without
    ``data.synthetic`` nothing is written, a synthetic tree is refused and a missing
    dataset is reported by the dataset class itself.
    """
    if not cfg.data.synthetic:
        check_real_data(cfg)
        return []
    made = []
    root = osp.abspath(osp.expanduser(cfg.data.root))
    for folder, path in _dataset_folders(cfg):
        writer = writer_for_folder(folder)
        if writer is None:
            continue
        if not osp.isdir(path):
            if path != root:   # a root named like the dataset folder is never nested into
                made.append(_ensure(writer, root))
        elif older_synthetic_ids(path, writer.real_ids) is not None:
            print('=> {} looks like a synthetic {} written by an older vireid_plugin (no {} '
                  'file): used as the synthetic data data.synthetic True asks for'.format(
                      path, folder, SYNTHETIC_MARKER))
        elif not is_synthetic(path):
            print('=> data.synthetic True, but {} holds a dataset that is not a synthetic '
                  'tree (the real {}?): it is used as it is'.format(path, folder))
    return made
