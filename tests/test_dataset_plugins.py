"""A dataset added from a module of one's own: loader, config section and synthetic writer.

The toy dataset below lives in a temporary file, outside the package; it reaches the
CLI through ``--plugin`` and installed distributions through the ``vireid_plugin.datasets``
entry points. Everything that imports it runs in a fresh interpreter, so the registries
of this test session never see it.
"""
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TOY_MODULE = '''"""A toy visible-infrared dataset: <root>/Toy/<train|test>/<pid>/<v|i>_<k>.png."""
import os

from vireid_plugin.config.sections import register_config_section
from vireid_plugin.data.datasets import INFRARED, VISIBLE, CrossModalImageDataset
from vireid_plugin.data.datasets.options import dataset_option
from vireid_plugin.data.synthetic import (IDENT, IMAGE, random_identities, render_person,
                                          rng_stream, save_image, synthetic_writer,
                                          write_atomic, write_lines)
from vireid_plugin.registry import IMAGE_DATASETS

MODALITIES = ('visible', 'infrared')
register_config_section('toy', {'query_modality': 'infrared'}, doc='toy options',
                        choices={'query_modality': MODALITIES}, family=False)


@IMAGE_DATASETS.register('toy')
class Toy(CrossModalImageDataset):
    dataset_dir = 'Toy'
    protocol = 'regdb'        # the metric: no same-camera removal
    config_keys = ('toy.query_modality',)

    def __init__(self, root='', query_modality=None, **kwargs):
        self.query_modality = MODALITIES.index(
            dataset_option('toy.query_modality', query_modality))
        folder = os.path.join(os.path.abspath(root), self.dataset_dir)
        with open(os.path.join(folder, 'train_ids.txt')) as f:
            train_ids = [int(x) for x in f.read().split()]
        label = {pid: i for i, pid in enumerate(sorted(train_ids))}
        items = {'train': [], 'test': []}
        for split in items:
            for pid in sorted(int(p) for p in os.listdir(os.path.join(folder, split))):
                for name in sorted(os.listdir(os.path.join(folder, split, str(pid)))):
                    mod = VISIBLE if name.startswith('v_') else INFRARED
                    items[split].append((os.path.join(folder, split, str(pid), name),
                                         label[pid] if split == 'train' else pid, mod, 0, mod))
        self._test_pool = items['test']
        query = [it for it in self._test_pool if it[4] == self.query_modality]
        gallery = [it for it in self._test_pool if it[4] != self.query_modality]
        super().__init__(items['train'], query, gallery, **kwargs)

    def eval_modes(self, matrix=False):
        return self.direction_modes((VISIBLE, INFRARED) if matrix else (self.query_modality,))


@synthetic_writer('toy', Toy.dataset_dir)
def make_toy(root, seed=0, num_train=6, num_test=4, images=3, size=(64, 32), overwrite=False):
    people = random_identities(rng_stream(seed, 99, IDENT), num_train + num_test)

    def build(out):
        for pid, ident in enumerate(people, 1):
            split = 'train' if pid <= num_train else 'test'
            r = rng_stream(seed, 99, IMAGE, pid)
            for k in range(images):
                for letter, infrared in (('v', False), ('i', True)):
                    save_image(render_person(ident, infrared, r, size=size),
                               os.path.join(out, split, str(pid), '{}_{}.png'.format(letter, k)))
        write_lines(os.path.join(out, 'train_ids.txt'), [str(p) for p in range(1, num_train + 1)])
    return write_atomic(root, Toy.dataset_dir, build, overwrite, 'toy')
'''

TOY_CONFIG = '''model:
  name: vit_tiny_reid
  pretrained: False
vit:
  stride_size: 16
data:
  root: {root}
  sources: [toy]
  targets: [toy]
  synthetic: True
  height: 64
  width: 32
  workers: 0
  save_dir: {save_dir}
sampler:
  num_instances: 2
train:
  optim: adam
  lr: 0.001
  batch_size: 8
  max_epoch: 2
  warmup_epochs: 1
  print_freq: 1
  amp: 'off'
test:
  batch_size: 16
  eval_before_train: False
toy:
  query_modality: visible
'''


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
    config.write_text(TOY_CONFIG.format(root=root, save_dir=save_dir))
    out = run(['scripts/main.py', '--plugin', module, '--config-file', config])
    assert out.returncode == 0, out.stderr[-3000:]
    # data.synthetic: the plugin's writer made the tree the plugin's loader read
    assert sorted(os.listdir(root / 'Toy')) == ['test', 'train', 'train_ids.txt']
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
    assert again.returncode == 1 and 'already exists' in again.stderr


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
