"""Helpers the dataset files share: one error type and the summary of modalities."""
import io
import os
import os.path as osp

from ...errors import DatasetNotFoundError
from .base import MODALITY_NAMES

__all__ = ['DatasetNotFoundError', 'dataset_error', 'locate_dataset', 'list_images',
           'modality_counts', 'print_modality_summary', 'numbered_fields', 'line_error',
           'ExistingFiles', 'open_text', 'unusable_links']

DEMO_HINT = ('To try the plugin without the real data, run the synthetic demo: '
             'python scripts/main.py --config-file configs/demo.yaml')

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp')


def dataset_error(name, problem, path, layout, obtain):
    """Build the one error a dataset raises for bad input.

    name: dataset name; problem: what is wrong; path: the path looked at;
    layout: the expected layout (multi-line text); obtain: how to get the data.
    """
    lines = ['{}: {}: {}'.format(name, problem, path),
             'Expected layout:', layout.rstrip('\n'),
             'To get the data: ' + obtain,
             DEMO_HINT]
    return DatasetNotFoundError('\n'.join(lines))


def locate_dataset(root, folder, markers):
    """``<root>/<folder>`` (torchreid's convention), else ``root`` itself when it holds
    one of the ``markers`` sub-folders (the user pointed at the dataset folder); None
    when neither, so the caller raises its dataset's own error."""
    nested = os.path.join(root, folder)
    if os.path.isdir(nested):
        return nested
    if any(os.path.isdir(os.path.join(root, m)) for m in markers):
        return root
    return None


def list_images(folder, unusable=None):
    """Sorted image file names of ``folder`` (hidden and non-image files ignored).

    An image name that is not a file (a dangling symbolic link, a link loop) is left out;
    with ``unusable`` (a list) its path is appended there, for the caller to count."""
    names = []
    for f in os.listdir(folder):
        if f.startswith('.') or not f.lower().endswith(IMAGE_EXTENSIONS):
            continue
        if any('\udc80' <= c <= '\udcff' for c in f):   # os.fsdecode's undecodable bytes
            raise DatasetNotFoundError('{}: the file name {} is not UTF-8 (another encoding); '
                                       'rename it, the logs and results files are '
                                       'UTF-8'.format(folder, ascii(f)))
        if osp.isfile(osp.join(folder, f)):
            names.append(f)
        elif unusable is not None and not osp.isdir(osp.join(folder, f)):
            unusable.append(osp.join(folder, f))
    return sorted(names)


def unusable_links(name, paths, log=print):
    """One counted line for the entries a scan left out because they lead nowhere (dangling
    symbolic links, link loops): they are not trained on or drawn into galleries."""
    if paths:
        log('=> Warning: {}: {} entr{} lead nowhere (dangling or looping symbolic links) and '
            'are left out, which also changes the seeded gallery draws; first: {}'.format(
                name, len(paths), 'y' if len(paths) == 1 else 'ies', paths[0]))


def open_text(path):
    """The text of a list file as a file object: UTF-8, a leading byte-order mark dropped
    (Windows editors write one; it would be an invisible part of the first entry). A file
    that is not UTF-8 is one error naming the file and the line of the first bad byte."""
    with open(path, 'rb') as f:
        data = f.read()
    try:
        return io.StringIO(data.decode('utf-8-sig'))
    except UnicodeDecodeError as exc:
        lineno = data.count(b'\n', 0, exc.start) + 1
        raise line_error(path, lineno, 'not UTF-8 text (byte 0x{:02x} at offset {}); save '
                         'the file as UTF-8'.format(data[exc.start], exc.start)) from None


def modality_counts(items):
    """(#visible, #infrared) items of a list of 5-tuples."""
    n_ir = sum(1 for it in items if it[4] == 1)
    return len(items) - n_ir, n_ir


def print_modality_summary(dataset):
    """The lines torchreid's summary lacks: images per modality in each subset."""
    print('  subset   | # {} | # {}'.format(*MODALITY_NAMES))
    for subset in ('train', 'query', 'gallery'):
        vis, ir = modality_counts(getattr(dataset, subset))
        print('  {:8s} | {:9d} | {:10d}'.format(subset, vis, ir))
    print('  ----------------------------------------')


def numbered_fields(path):
    """(1-based line number, whitespace-split fields, line) of each non-blank line of a text
    file."""
    with open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            fields = line.split()
            if fields:   # blank (e.g. trailing) lines carry no entry
                yield lineno, fields, line.rstrip('\n')


def line_error(path, lineno, problem):
    """Bad content: the user needs the file and 1-based line to fix."""
    return DatasetNotFoundError('{}, line {}: {}'.format(path, lineno, problem))


class ExistingFiles:
    """``isfile`` by listing each folder once (thousands of files, few folders)."""

    def __init__(self):
        self._listing = {}

    def __call__(self, path):
        folder, name = osp.split(path)
        if folder not in self._listing:
            try:
                self._listing[folder] = frozenset(os.listdir(folder))
            except OSError:
                self._listing[folder] = frozenset()
        return name in self._listing[folder]
