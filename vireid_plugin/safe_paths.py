"""Paths built from data stay where they belong.

Two rules, one helper each:

- a file a command writes stays under the folder it was given: a name derived from
  data (a target name read from ``features.safetensors``, a mode name) becomes one
  file-name component with :func:`safe_component`, and :func:`path_under` checks the
  resolved path (symbolic links followed) against the resolved folder;
- an entry of a dataset's list file names a file inside the dataset folder:
  :func:`entry_path` joins it and refuses absolute paths and ``..`` segments that leave
  the folder (checked on the path as written, so a dataset folder that is itself a
  symbolic link, or that links image folders kept elsewhere, keeps working).
"""
import os
import re

from .errors import UserError

__all__ = ['UnsafePathError', 'safe_component', 'path_under', 'entry_path']

#: longest file-name component made from data (file systems allow 255 bytes)
MAX_COMPONENT = 120
_UNSAFE = re.compile(r'[^A-Za-z0-9._+-]+')


class UnsafePathError(UserError, ValueError):
    """A path built from a file's content would leave the folder it belongs to."""


def safe_component(text, max_len=MAX_COMPONENT):
    """``text`` as one harmless file-name component: every run of characters other than
    letters, digits, ``. _ + -`` becomes ``_`` (so no ``/``, no NUL, no newline), leading
    dots are dropped (no ``..``, no hidden file) and the result is cut to ``max_len``."""
    out = _UNSAFE.sub('_', str(text)).lstrip('.')[:max_len]
    return out or '_'


def _within(path, folder):
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def path_under(folder, name):
    """``folder/name`` when it resolves (links followed) inside ``folder``; else
    :class:`UnsafePathError`. ``name`` should come from :func:`safe_component`."""
    path = os.path.join(folder, name)
    real_folder = os.path.realpath(folder)
    real = os.path.realpath(path)
    if not _within(real, real_folder) or real == real_folder:
        raise UnsafePathError('refused to write {!r}: it resolves to {!r}, outside the '
                              'folder {!r} it belongs to'.format(path, real, folder))
    return path


def entry_path(folder, entry, where):
    """The file a list-file ``entry`` names inside ``folder``; an absolute path or ``..``
    segments leaving ``folder`` raise :class:`UnsafePathError` naming ``where`` (the list
    file and line). A file kept elsewhere can be linked into the folder."""
    if os.path.isabs(entry) or (os.name == 'nt' and os.path.splitdrive(entry)[0]):
        problem = 'is an absolute path'
    else:
        path = os.path.normpath(os.path.join(folder, entry))
        if _within(path, os.path.normpath(folder)) and path != os.path.normpath(folder):
            return path
        problem = 'leaves the dataset folder'
    raise UnsafePathError('{}: the entry {!r} {} {!r}; entries must name files inside it '
                          '(link files kept elsewhere into the folder instead)'.format(
                              where, entry, problem, folder))
