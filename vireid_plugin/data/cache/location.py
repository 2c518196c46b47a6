"""Where the image cache lives (``data_cache.dir``, else beside the dataset, else the user
cache dir)."""
import hashlib
import os
import uuid

from ...errors import ConfigError

__all__ = ['CACHE_SUBDIR', 'cache_folder', 'user_cache_dir']

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


def cache_folder(files, folder='', writable=_writable):
    """Where the cache of ``files`` lives (see the module doc); ``folder`` is
    ``data_cache.dir``."""
    if folder:
        folder = os.path.abspath(os.path.expanduser(folder))
        if not writable(folder):
            raise ConfigError('data_cache.dir {} is not writable; choose another folder or '
                              'leave it empty (next to the dataset)'.format(folder))
        return folder
    common = os.path.commonpath([os.path.dirname(os.path.abspath(f)) for f in files])
    beside = os.path.join(common, CACHE_SUBDIR)
    if writable(beside):
        return beside
    fallback = os.path.join(user_cache_dir(),
                            hashlib.sha1(common.encode()).hexdigest()[:16])
    if not writable(fallback):
        raise ConfigError('no writable folder for the image cache: {} and {} are not '
                          'writable; set data_cache.dir'.format(beside, fallback))
    print('=> Image cache: {} is read-only, using {}'.format(common, fallback))
    return fallback
