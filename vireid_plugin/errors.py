"""Errors a user can cause; the CLI prints their message alone, without a traceback."""
from .config.loading import ConfigError
from .data.datasets.common import DatasetNotFoundError
from .data.datasets.options import DatasetOptionError
from .data.io import ImageReadError
from .checkpoint_io import CheckpointError, WriteError
from .engine.checkpoint import NonFiniteError
from .export import ExportError
from .models.weights import PretrainedWeightsError

USER_ERRORS = (ConfigError, DatasetNotFoundError, DatasetOptionError, ImageReadError,
               CheckpointError, PretrainedWeightsError, NonFiniteError, ExportError, WriteError)
