"""A dataset added from a module of one's own: loader, config section and synthetic writer.

The toy dataset (the example of docs/adding-a-dataset.md) is written to a temporary file,
outside the package; it reaches the CLI through ``--plugin`` and installed distributions
through the ``vireid_plugin.datasets`` entry points. Everything that imports it runs in a
fresh interpreter, so the registries of this test session never see it.
"""
import json
import os
import subprocess
import sys

from vireid_plugin.data.synthetic import SYNTHETIC_MARKER

from tests.helpers import REPO


def doc_example():
    """The example module of docs/adding-a-dataset.md (its first python block): the test
    runs what the guide shows."""
    with open(os.path.join(REPO, 'docs', 'adding-a-dataset.md')) as f:
        text = f.read()
    start = text.index('```python\n') + len('```python\n')
    return text[start:text.index('```', start)]


TOY_MODULE = doc_example()

def doc_config():
    """The config the guide saves as my.yaml (its yaml block after ``<!-- file: my.yaml
    -->``); the tests point its data root and save dir elsewhere."""
    with open(os.path.join(REPO, 'docs', 'adding-a-dataset.md')) as f:
        text = f.read()
    start = text.index('```yaml\n', text.index('<!-- file: my.yaml -->')) + len('```yaml\n')
    return text[start:text.index('```', start)]


TOY_CONFIG = doc_config()


def write_toy(folder):
    path = os.path.join(str(folder), 'toy_reid_ds.py')
    with open(path, 'w') as f:
        f.write(TOY_MODULE)
    return path


def run(args, pythonpath=(), timeout=600):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [REPO] + [str(p) for p in pythonpath] + [os.environ.get('PYTHONPATH', '')]),
        OMP_NUM_THREADS='1')
    return subprocess.run([sys.executable, '-W', 'ignore'] + [str(a) for a in args], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_cli_trains_and_evaluates_a_dataset_from_a_plugin_module(tmp_path):
    module = write_toy(tmp_path)
    root, save_dir = tmp_path / 'data', tmp_path / 'log'
    config = tmp_path / 'toy.yaml'
    config.write_text(TOY_CONFIG)
    out = run(['scripts/main.py', '--plugin', module, '--config-file', config,
               'data.root', root, 'data.save_dir', save_dir, 'train.print_freq', '1'])
    assert out.returncode == 0, out.stderr[-3000:]
    # data.synthetic: the plugin's writer made the tree the plugin's loader read
    assert sorted(os.listdir(root / 'Toy')) == [SYNTHETIC_MARKER, 'test', 'train',
                                                 'train_ids.txt']
    assert len(os.listdir(root / 'Toy' / 'test' / '7')) == 6
    with open(save_dir / 'results.json') as f:
        records = json.load(f)
    rows = records[-1]['rows']
    # toy.query_modality (the plugin's own section, set in the YAML) reached the dataset
    assert [r['mode'] for r in rows] == ['visible->infrared']
    assert records[-1]['dataset'] == 'toy' and records[-1]['stage'] == 'evaluation'
    assert rows[0]['queries'] == 4 * 3 and rows[0]['gallery'] == 4 * 3   # 4 test ids x 3
    assert 0 <= rows[0]['mAP'] <= 100
    log = ''.join(open(save_dir / name).read() for name in os.listdir(save_dir)
                  if name.startswith('train.log'))
    assert 'epoch: [2/2]' in log   # trained both epochs, then evaluated


def test_a_missing_plugin_module_is_one_config_error(tmp_path):
    out = run(['scripts/make_synthetic_data.py', '--root', tmp_path, '--plugin',
               'no_such_plugin_module_xyz'])
    assert out.returncode == 2
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and 'no_such_plugin_module_xyz' in lines[0]
    assert 'Traceback' not in out.stderr and os.listdir(tmp_path) == []


def test_make_synthetic_data_writes_a_plugin_dataset(tmp_path):
    module = write_toy(tmp_path)
    root = tmp_path / 'data'
    out = run(['scripts/make_synthetic_data.py', '--root', root, '--dataset', 'toy',
               '--plugin', module])
    assert out.returncode == 0, out.stderr
    assert 'wrote {}'.format(root / 'Toy') in out.stdout
    assert sorted(os.listdir(root)) == ['Toy']
    assert sorted(os.listdir(root / 'Toy' / 'train')) == ['1', '2', '3', '4', '5', '6']
    again = run(['scripts/make_synthetic_data.py', '--root', root, '--dataset', 'toy',
                 '--plugin', module])
    # a synthetic tree already there is kept (the command can be rerun)
    assert again.returncode == 0 and 'already holds synthetic toy: kept' in again.stdout


def test_entry_points_of_installed_distributions_are_imported(tmp_path):
    """A distribution declaring the module in ``vireid_plugin.datasets`` (a dist-info folder
    on the path is what an install leaves); a broken entry point only warns."""
    write_toy(tmp_path)
    for dist, entry in (('toy_reid-0.1', 'toy = toy_reid_ds'),
                        ('broken_reid-0.1', 'broken = no_such_module_for_vireid')):
        info = tmp_path / (dist + '.dist-info')
        info.mkdir()
        name, version = dist.split('-')
        (info / 'METADATA').write_text('Metadata-Version: 2.1\nName: {}\nVersion: {}\n'.format(
            name, version))
        (info / 'entry_points.txt').write_text('[vireid_plugin.datasets]\n{}\n'.format(entry))
    code = '''
import warnings
warnings.simplefilter('always')
with warnings.catch_warnings(record=True) as caught:
    import vireid_plugin
from torchreid.reid.data import datasets as D
from vireid_plugin.config import get_default_config
from vireid_plugin.registry import IMAGE_DATASETS, SYNTHETIC_WRITERS
print('toy' in IMAGE_DATASETS, 'toy' in SYNTHETIC_WRITERS, 'toy' in vars(D)['__image_datasets'])
print(get_default_config().toy.query_modality)
print([str(w.message) for w in caught if 'entry point' in str(w.message)])
'''
    out = run(['-c', code], pythonpath=[tmp_path])
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == 'True True True'
    assert lines[1] == 'infrared'
    assert "'broken'" in lines[2] and 'no_such_module_for_vireid' in lines[2]
    assert "'toy'" not in lines[2]


def test_the_plugin_dataset_trains_twice_with_the_image_cache(tmp_path):
    """The image cache lives beside the dataset folders (``data.root``), where the toy
    loader, which lists ``Toy/train``, never meets it: before, the first run put
    ``.vireid_cache`` in ``Toy/train`` and every later run failed with
    ``invalid literal for int() with base 10: '.vireid_cache'``."""
    module = write_toy(tmp_path)
    root = tmp_path / 'data'
    config = tmp_path / 'toy.yaml'
    config.write_text(TOY_CONFIG)
    for n in (1, 2):
        out = run(['scripts/main.py', '--plugin', module, '--config-file', config,
                   'data.root', root, 'data.save_dir', tmp_path / 'log{}'.format(n),
                   'train.max_epoch', '1', 'data_cache.enabled', 'True'])
        assert out.returncode == 0, out.stderr[-3000:]
        log = ''.join(open(tmp_path / 'log{}'.format(n) / name).read()
                      for name in os.listdir(tmp_path / 'log{}'.format(n))
                      if name.startswith('train.log'))
        assert ('building' if n == 1 else 'up to date') in log
        assert sorted(os.listdir(root)) == ['.vireid_cache', 'Toy']
        assert sorted(os.listdir(root / 'Toy' / 'train')) == [str(p) for p in range(1, 7)]
