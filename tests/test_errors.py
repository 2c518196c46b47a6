"""One family of user errors: every error a user can cause subclasses UserError, and
errors.py sits below every layer that raises one (it imports nothing)."""
import ast
import pathlib

import pytest

import vireid_plugin
from vireid_plugin import errors
from vireid_plugin.checkpoint_io import CheckpointError, WriteError
from vireid_plugin.data.bad_images import TooManyBadImages
from vireid_plugin.data.io import ImageReadError
from vireid_plugin.engine.checkpoint import NonFiniteError
from vireid_plugin.export import ExportError
from vireid_plugin.models.download import DownloadError
from vireid_plugin.models.weights import PretrainedFileNotFoundError, PretrainedWeightsError

PACKAGE = pathlib.Path(vireid_plugin.__file__).parent


def test_errors_module_imports_nothing():
    tree = ast.parse((PACKAGE / 'errors.py').read_text())
    imports = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert imports == []


@pytest.mark.parametrize('cls, builtin', [
    (errors.ConfigError, ValueError), (errors.DatasetNotFoundError, RuntimeError),
    (errors.DatasetOptionError, ValueError), (CheckpointError, RuntimeError),
    (WriteError, OSError), (ImageReadError, OSError), (TooManyBadImages, OSError),
    (NonFiniteError, RuntimeError), (ExportError, RuntimeError), (DownloadError, RuntimeError),
    (PretrainedWeightsError, RuntimeError), (PretrainedFileNotFoundError, FileNotFoundError),
])
def test_every_user_error_is_one_family(cls, builtin):
    # one except for a library user, and the builtin it refines still catches it
    assert issubclass(cls, errors.UserError)
    assert issubclass(cls, builtin)


def test_every_error_class_defined_in_the_package_is_a_user_error():
    # an Exception subclass defined anywhere in the package is a user error (the package
    # raises builtins for its own bugs); a new one that forgets the base fails here
    missing = []
    for path in PACKAGE.rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.ClassDef) and node.name != 'UserError'
                    and node.name.endswith(('Error', 'Images'))):
                bases = {getattr(b, 'id', getattr(b, 'attr', None)) for b in node.bases}
                if not bases & {'UserError', 'ConfigError', 'DatasetNotFoundError',
                                'DatasetOptionError', 'CheckpointError', 'WriteError',
                                'ImageReadError', 'PretrainedWeightsError', 'ExportError',
                                'DownloadError', 'NonFiniteError'}:
                    missing.append('{}:{}'.format(path.relative_to(PACKAGE), node.name))
    assert missing == []


def test_user_errors_tuple_still_catches_them():
    with pytest.raises(errors.USER_ERRORS):
        raise CheckpointError('x')
