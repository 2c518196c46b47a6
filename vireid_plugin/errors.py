"""Errors a user can cause; the CLI prints their message alone, without a traceback.

The config and dataset errors are defined here, in a module that imports nothing of the
package, so every layer (config, data, engine) can raise them without importing another
layer. ``USER_ERRORS`` (every user error class of the package) is assembled on first use:
its other members live with the code that raises them.
"""


class ConfigError(ValueError):
    """A config file or override the user wrote is wrong."""


class DatasetNotFoundError(RuntimeError):
    """A dataset's files are missing or malformed.

    The message is meant for the user as is (the CLI prints it without a
    traceback): what was looked at, what should be there, how to get it.
    """


class DatasetOptionError(ValueError):
    """A dataset option has a value the dataset does not know (a user error)."""


def _user_errors():
    from .checkpoint_io import CheckpointError, WriteError
    from .data.io import ImageReadError
    from .engine.checkpoint import NonFiniteError
    from .export import ExportError
    from .models.weights import PretrainedWeightsError
    return (ConfigError, DatasetNotFoundError, DatasetOptionError, ImageReadError,
            CheckpointError, PretrainedWeightsError, NonFiniteError, ExportError, WriteError)


def __getattr__(name):
    if name == 'USER_ERRORS':
        return _user_errors()
    raise AttributeError('module {!r} has no attribute {!r}'.format(__name__, name))
