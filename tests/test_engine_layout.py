"""The engine stays split by job (issue 15): no file of vireid_plugin/engine over 400 lines."""
import glob
import os

import vireid_plugin.engine

LIMIT = 400


def test_no_engine_file_is_over_400_lines():
    folder = os.path.dirname(vireid_plugin.engine.__file__)
    sizes = {}
    for path in glob.glob(os.path.join(folder, '*.py')):
        with open(path) as f:
            sizes[os.path.basename(path)] = sum(1 for _ in f)
    assert 'cross_modal.py' in sizes
    assert {name: n for name, n in sizes.items() if n > LIMIT} == {}
