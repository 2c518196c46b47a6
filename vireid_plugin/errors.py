"""Errors a user can cause; the CLI prints their message alone, without a traceback.

Every user error of the package subclasses :class:`UserError`, defined here in a module
that imports nothing of the package, so any layer (config, data, models, engine, export)
can raise one without importing another layer, and a library user can write one
``except vireid_plugin.errors.UserError``. The errors that belong to one layer are
defined in that layer (``CheckpointError`` in ``checkpoint_io``, ``ImageReadError`` in
``data.io``, ...) as subclasses of :class:`UserError` and of the builtin they refine
(``ValueError``, ``OSError``, ``RuntimeError``), so ``except ValueError`` keeps working.
"""


def bounded_repr(value, limit=200, depth=2):
    """``repr`` of a value read from a user's file, for an error message: at most ``limit``
    characters whatever it holds (nested shared lists cost bytes in a YAML or pickle file
    and gigabytes as text): ``depth`` levels and 6 entries of each are shown."""
    if isinstance(value, (list, tuple, dict)):
        brackets = '[]' if isinstance(value, list) else '()' if isinstance(value, tuple) \
            else '{}'
        if depth <= 0:
            return brackets[0] + '...' + brackets[1]
        entries = list(value.items())[:6] if isinstance(value, dict) else value[:6]
        parts = [bounded_repr(e[0], limit, depth - 1) + ': ' + bounded_repr(e[1], limit,
                                                                             depth - 1)
                 if isinstance(value, dict) else bounded_repr(e, limit, depth - 1)
                 for e in entries]
        if len(value) > 6:
            parts.append('...')
        single = ',' if isinstance(value, tuple) and len(value) == 1 else ''
        text = brackets[0] + ', '.join(parts) + single + brackets[1]
    else:
        text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + '...'


class UserError(Exception):
    """The base of every error a user can cause: its message is meant for the user as is."""


class ConfigError(UserError, ValueError):
    """A config file or override the user wrote is wrong."""


class DatasetNotFoundError(UserError, RuntimeError):
    """A dataset's files are missing or malformed.

    The message is meant for the user as is (the CLI prints it without a
    traceback): what was looked at, what should be there, how to get it.
    """


class DatasetOptionError(UserError, ValueError):
    """A dataset option has a value the dataset does not know (a user error)."""


# Kept for code written against the earlier tuple of classes: ``except USER_ERRORS``.
USER_ERRORS = (UserError,)
