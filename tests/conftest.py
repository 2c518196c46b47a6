"""Fixtures shared by the test files."""
import sys

import pytest
import torch


@pytest.fixture(scope='session')
def cli():
    """The command line of scripts/main.py, in-process: ``vireid_plugin.runner`` (``main(argv)``
    and the names it builds a run with, for tests that wrap them)."""
    from vireid_plugin import runner
    return runner


@pytest.fixture
def run_main(cli, capfd):
    """Run ``main(argv)`` in-process; returns (exit status, captured ``.out`` / ``.err``).
    Errors go to ``sys.__stderr__`` (fd 2, hence ``capfd``)."""
    def call(argv):
        capfd.readouterr()
        rc = cli.main([str(a) for a in argv])
        sys.__stderr__.flush()
        return rc, capfd.readouterr()
    return call


@pytest.fixture
def run_cli(run_main):
    """``run_main`` that returns (exit status, stderr text)."""
    def call(argv):
        rc, captured = run_main(argv)
        return rc, captured.err
    return call


@pytest.fixture(scope='module')
def one_thread():
    """Training runs in-process on 2 shared cores: intra-op threads oversubscribe them (a
    2-epoch run took 100 s with 2 threads next to another job, 3 s with 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
