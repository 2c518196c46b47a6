"""Fixtures shared by the test files."""
import importlib.util
import os

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='session')
def cli():
    """scripts/main.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location('vireid_cli_main',
                                                  os.path.join(REPO, 'scripts', 'main.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope='module')
def one_thread():
    """Training runs in-process on 2 shared cores: intra-op threads oversubscribe them (a
    2-epoch run took 100 s with 2 threads next to another job, 3 s with 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
