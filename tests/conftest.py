"""Fixtures shared by the test files."""
import importlib.util
import os

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='session')
def cli():
    """scripts/main.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location('vireid_cli_main',
                                                  os.path.join(REPO, 'scripts', 'main.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
