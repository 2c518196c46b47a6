"""Registration into torchreid, checked through torchreid's own API in fresh interpreters."""
import importlib
import os
import subprocess
import sys
import types

import pytest

from vireid_plugin import compat

from tests.helpers import REPO


def run_python(code):
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get('PYTHONPATH', ''))
    out = subprocess.run([sys.executable, '-W', 'ignore', '-c', code], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_import_registers_into_torchreid_and_is_idempotent():
    out = run_python('''
import importlib
import torchreid
import vireid_plugin
importlib.reload(vireid_plugin)          # a reload must not raise
import vireid_plugin                     # nor a second import
# nor reloading modules that register a model family (+ its config section), a loss
# term and a dataset: the same definitions again replace their entries
import vireid_plugin.models.vit_reid, vireid_plugin.losses.triplet
import vireid_plugin.data.datasets.sysu_mm01
for module in (vireid_plugin.models.vit_reid, vireid_plugin.losses.triplet,
               vireid_plugin.data.datasets.sysu_mm01):
    importlib.reload(module)
vireid_plugin.register_all()
assert vireid_plugin.MODELS.get('vit_tiny_reid').__module__ == 'vireid_plugin.models.vit_reid'
from torchreid.reid.data import datasets as D
from torchreid.reid import models as M
img = vars(D)['__image_datasets']; vid = vars(D)['__video_datasets']
fac = vars(M)['__model_factory']
for n in ('sysu_mm01', 'sysu_mm01_indoor', 'regdb', 'regdb_t2v', 'llcm', 'llcm_v2i'):
    assert n in img, n
for n in ('hitsz_vcm', 'hitsz_vcm_v2i', 'buptcampus', 'buptcampus_i2v'):
    assert n in vid, n
for n in ('vit_base_reid', 'vit_tiny_reid', 'vit_tiny_video_avg'):
    assert n in fac, n
assert 'market1501' in img and 'resnet50' in fac   # torchreid's own entries untouched
m = M.build_model('vit_tiny_reid', num_classes=7, loss='softmax', pretrained=False)
print(type(m).__name__, m.training)
''')
    assert 'ViTReID True' in out


def test_torchreid_data_manager_accepts_plugin_dataset(tmp_path):
    from dataset_trees import write_sysu_tree
    root = tmp_path / 'data'
    images = {(pid, cam): 3 for pid in (1, 2, 3, 4, 5, 6) for cam in (1, 3)}
    write_sysu_tree(str(root), images, {'train': [1, 2, 3], 'val': [4], 'test': [5, 6]})
    out = run_python('''
import vireid_plugin
from torchreid.reid.data import ImageDataManager
dm = ImageDataManager(root={!r}, sources='sysu_mm01', height=32, width=16,
                      batch_size_train=4, workers=0, use_gpu=False)
batch = next(iter(dm.train_loader))
print('modality' in batch, dm.num_train_pids > 0)
'''.format(str(root)))
    assert 'True True' in out


def test_registry_refuses_another_definition_under_a_taken_name():
    from vireid_plugin.registry import Registry

    def first(num_classes):
        return num_classes

    def second(num_classes):
        return -num_classes

    table = Registry('toy model')
    table.register('toy', first)
    table.register('toy', first)          # the same object again: fine
    with pytest.raises(ValueError) as info:
        table.register('toy', second)
    message = str(info.value)
    assert "toy model name 'toy' is already taken by" in message
    assert message.count('test_registration.test_registry_refuses_another_definition_under_a_'
                         'taken_name.<locals>.') == 2   # both definitions named
    assert '<locals>.first;' in message and '<locals>.second cannot' in message
    assert table.get('toy') is first      # nothing replaced


def test_registry_takes_the_same_definition_again():
    """What a reload produces: a new object of the same module and qualified name (a
    function, a class) or an equal instance (a config section)."""
    from vireid_plugin.config.sections import ConfigSection
    from vireid_plugin.registry import Registry, same_definition

    def builder():
        return 1

    def builder_again():
        return 2
    builder_again.__qualname__ = builder.__qualname__   # same module, same name
    assert same_definition(builder, builder_again)
    table = Registry('model')
    table.register('m', builder)
    table.register('m', builder_again)
    assert table.get('m') is builder_again
    sections = Registry('config section')
    sections.register('s', ConfigSection('s', {'a': 1}))
    sections.register('s', ConfigSection('s', {'a': 1}))
    with pytest.raises(ValueError, match="config section name 's' is already taken"):
        sections.register('s', ConfigSection('s', {'a': 2}))


@pytest.mark.parametrize('registry,name,table_of', [
    ('MODELS', 'resnet50', lambda: vars(compat.models)['__model_factory']),
    ('IMAGE_DATASETS', 'market1501', lambda: vars(compat.datasets)['__image_datasets']),
])
def test_register_all_never_replaces_a_torchreid_name(registry, name, table_of):
    import vireid_plugin
    from vireid_plugin import registry as registries

    def impostor(num_classes=1, **kwargs):
        return num_classes

    table = getattr(registries, registry)
    original = table_of()[name]
    # registering mirrors into torchreid at once (issue 26): the registration is refused
    with pytest.raises(ValueError) as info:
        table.register(name, impostor)
    assert name not in table
    # an entry that reached the plugin's table another way is refused by register_all
    table._table[name] = impostor
    try:
        with pytest.raises(ValueError) as again:
            vireid_plugin.register_all()
    finally:
        table._table.pop(name)
    assert str(again.value) == str(info.value)
    vireid_plugin.register_all()
    message = str(info.value)
    assert "name {!r} is already registered in torchreid by {}".format(
        name, original.__module__) in message
    assert 'impostor' in message and 'another name' in message
    assert table_of()[name] is original


def test_foreign_name_is_not_overwritten():
    table = vars(compat.datasets)['__image_datasets']
    with pytest.raises(ValueError, match="'market1501' is already registered"):
        compat.register_image_dataset('market1501', object)
    assert table['market1501'].__module__.startswith('torchreid')


def test_compat_resolves_the_upstream_layout():
    # Upstream deep-person-reid has torchreid.data, torchreid.models, ...; emulate it by
    # serving the real modules under upstream names and failing the PyPI names.
    def fake_import(name):
        if name.startswith('torchreid.reid'):
            raise ImportError('No module named ' + name)
        real = importlib.import_module(name.replace('torchreid.', 'torchreid.reid.', 1))
        return types.SimpleNamespace(__name__=name, real=real)

    layout, mods = compat.resolve(fake_import)
    assert layout == 'upstream'
    assert mods['data.datasets'].__name__ == 'torchreid.data.datasets'
    assert compat.layout == 'pypi'  # what this machine has


def test_compat_reports_missing_torchreid():
    def nothing(name):
        raise ImportError('No module named ' + name)

    with pytest.raises(ImportError, match='torchreid==0.2.5'):
        compat.resolve(nothing)


def test_whole_plugin_on_the_upstream_layout(tmp_path):
    """Upstream deep-person-reid serves torchreid.data, torchreid.models, ... and has no
    torchreid.reid. Emulate it in a fresh interpreter: load the real modules, then hide
    every torchreid.reid name and serve the same module objects under upstream names."""
    from dataset_trees import write_sysu_tree
    images = {(pid, cam): 2 for pid in (1, 2, 3, 4, 5, 6) for cam in (1, 3)}
    write_sysu_tree(str(tmp_path), images, {'train': [1, 2, 3], 'val': [4], 'test': [5, 6]})
    out = run_python('''
import importlib, sys
import sys, types
import torchreid.reid  # the real code, imported under its PyPI names first
real = {{n: m for n, m in sys.modules.items() if n.startswith('torchreid')}}
for name in real:
    del sys.modules[name]
for name, module in real.items():
    if name.startswith('torchreid.reid.'):  # torchreid.reid.data -> torchreid.data
        sys.modules['torchreid.' + name[len('torchreid.reid.'):]] = module

class HidePyPI:
    def find_spec(self, name, path=None, target=None):
        if name.startswith('torchreid.reid'):
            raise ImportError('upstream layout has no ' + name)
sys.meta_path.insert(0, HidePyPI())
top = types.ModuleType('torchreid')
top.data, top.models = sys.modules['torchreid.data'], sys.modules['torchreid.models']
sys.modules['torchreid'] = top

import vireid_plugin
from vireid_plugin import compat
import torchreid.data, torchreid.models
dm = torchreid.data.ImageDataManager(root={root!r}, sources='sysu_mm01', height=32, width=16,
                                     batch_size_train=4, workers=0, use_gpu=False)
m = torchreid.models.build_model('vit_tiny_reid', dm.num_train_pids, pretrained=False)
print(compat.layout, 'modality' in next(iter(dm.train_loader)), type(m).__name__)
'''.format(root=str(tmp_path)))
    assert out.strip().splitlines()[-1] == 'upstream True ViTReID'
