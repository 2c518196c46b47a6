"""Where the image cache lives: ``data_cache.dir`` when set, else ``.vireid_cache`` in
``data.root`` (beside the dataset folders, where no dataset loader lists it), else, when
that is not writable, a folder per root under the user cache dir (``$XDG_CACHE_HOME``
or ``~/.cache``). The place depends on the user's settings alone, never on the files a
dataset lists (list files may point anywhere); inside it a cache is found again by its
name, ``<sources>_<H>x<W>``.

Caches of earlier versions lived in ``.vireid_cache`` in the training files' common
folder, inside the dataset folder, where a loader that lists its folder reads it as a
sample: :func:`legacy_folder` names that place so the build can copy its rows once.
"""
import hashlib
import os
import uuid

from ...errors import ConfigError

__all__ = ['CACHE_SUBDIR', 'cache_folder', 'legacy_folder', 'user_cache_dir']

CACHE_SUBDIR = '.vireid_cache'


def _writable(folder):
    """Whether files can be created in ``folder`` (made if missing)."""
    try:
        os.makedirs(folder, exist_ok=True)
        probe = os.path.join(folder, '.write-test-{}'.format(uuid.uuid4().hex))
        with open(probe, 'wb'):
            pass
        os.remove(probe)
        return True
    except OSError:
        return False


def user_cache_dir():
    base = os.environ.get('XDG_CACHE_HOME') or os.path.join(os.path.expanduser('~'), '.cache')
    return os.path.join(base, 'vireid_plugin')


def cache_folder(root='', folder='', writable=_writable):
    """The cache folder for datasets under ``root`` (``data.root``; '' is the current
    folder, as for the datasets); ``folder`` is ``data_cache.dir``."""
    if folder:
        folder = os.path.abspath(os.path.expanduser(folder))
        if not writable(folder):
            raise ConfigError('data_cache.dir {} is not writable; choose another folder or '
                              'leave it empty (beside the dataset folders)'.format(folder))
        return folder
    root = os.path.abspath(os.path.expanduser(root or '.'))
    beside = os.path.join(root, CACHE_SUBDIR)
    if writable(beside):
        return beside
    fallback = os.path.join(user_cache_dir(), hashlib.sha1(root.encode()).hexdigest()[:16])
    if not writable(fallback):
        raise ConfigError('no writable folder for the image cache: {} and {} are not '
                          'writable; set data_cache.dir'.format(beside, fallback))
    print('=> Image cache: {} is read-only, using {}'.format(root, fallback))
    return fallback


def legacy_folder(files):
    """Where earlier versions put the cache of ``files`` (absolute paths): only read, to
    carry an existing cache over."""
    return os.path.join(os.path.commonpath([os.path.dirname(f) for f in files]), CACHE_SUBDIR)
