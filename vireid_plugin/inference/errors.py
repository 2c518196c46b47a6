"""The user errors of inference: each one line naming the file or argument at fault."""
from ..errors import UserError

__all__ = ['InferenceInputError', 'MissingModalityError', 'NoCheckpointError',
           'IndexMismatchError']


class InferenceInputError(UserError, ValueError):
    """An input (file, folder, modality or camera id) cannot be used."""


class MissingModalityError(UserError, ValueError):
    """The model selects by modality (MIP's prompts) and an input has none."""


class NoCheckpointError(UserError, FileNotFoundError):
    """A run folder without a usable checkpoint (nor ``model.load_weights``)."""


class IndexMismatchError(UserError, ValueError):
    """A gallery index built by another model, preprocessing or metric."""
