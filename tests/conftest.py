"""Fixtures shared by the test files."""
import pytest
import torch


@pytest.fixture(scope='session')
def cli():
    """The command line of scripts/main.py, in-process: ``vireid_plugin.runner`` (``main(argv)``
    and the names it builds a run with, for tests that wrap them)."""
    from vireid_plugin import runner
    return runner


@pytest.fixture(scope='module')
def one_thread():
    """Training runs in-process on 2 shared cores: intra-op threads oversubscribe them (a
    2-epoch run took 100 s with 2 threads next to another job, 3 s with 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
