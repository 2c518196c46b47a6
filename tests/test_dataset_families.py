"""Dataset families: their config sections, how options reach a dataset, module layering."""
import ast
import os

import pytest

from dataset_trees import write_sysu_tree
from vireid_plugin import compat
from vireid_plugin.config import ConfigError, get_default_config, load_config
from vireid_plugin.data import CrossModalImageDataManager
from vireid_plugin.data.datasets.options import (DatasetOptionError, dataset_option,
                                                 scoped_options)

PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                       'vireid_plugin')

# the dataset options as they were declared in config/defaults.py before the families
DATASET_SECTIONS = {
    'sysu': {'train_with_val': True, 'shots': 1, 'gallery_draw': 'seeded', 'perm_file': ''},
    'vcm': {'min_seq_len': 12},
    'llcm': {'protocol': 'corrected'},
    'bupt': {'protocol': 'auxnet', 'use_auxiliary': False},   # was 'corrected' (issue 29)
}


def test_dataset_sections_keep_their_keys_and_defaults():
    cfg = get_default_config()
    for name, keys in DATASET_SECTIONS.items():
        assert dict(cfg[name]) == keys, name
        for key, value in keys.items():   # same types: yacs refuses another type in a file
            assert type(cfg[name][key]) is type(value), (name, key)
    assert cfg.test.num_trials == 10


def test_config_load_checks_the_sections_rules():
    with pytest.raises(ConfigError, match=r"'llcm.protocol' must be one of .*'paper'"):
        load_config('', ['llcm.protocol', 'paper'])
    with pytest.raises(ConfigError, match=r"'sysu.gallery_draw' must be one of"):
        load_config('', ['sysu.gallery_draw', 'kit'])
    with pytest.raises(ConfigError, match=r'sysu.shots must be >= 1, got 0'):
        load_config('', ['sysu.shots', '0'])
    with pytest.raises(ConfigError, match='set sysu.train_with_val False'):
        load_config('', ['test.select_on', 'val'])
    cfg = load_config('', ['test.select_on', 'val', 'sysu.train_with_val', 'False',
                           'bupt.protocol', 'm3reid'])
    assert cfg.bupt.protocol == 'm3reid'


# ---------------------------------------------------------------- options reach a dataset

@pytest.fixture(scope='module')
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp('sysu_options')
    images = {(pid, cam): 3 for pid in (1, 2, 3, 4, 5, 6) for cam in (1, 3)}
    write_sysu_tree(str(root), images, {'train': [1, 2, 3], 'val': [4], 'test': [5, 6]})
    return str(root)


MANAGER = dict(sources='sysu_mm01', targets='sysu_mm01', height=32, width=16,
               batch_size_train=4, batch_size_test=8, workers=0, use_gpu=False)


def query_set(dm):
    return dm.test_loader['sysu_mm01']['query'].dataset


def test_options_reach_the_datasets_of_the_plugin_manager_and_end_with_it(root):
    dm = CrossModalImageDataManager(root=root, train_sampler='RandomSampler', **MANAGER,
                                    dataset_options={'sysu.shots': 10, 'test.num_trials': 2,
                                                     'sysu.train_with_val': False})
    q = query_set(dm)
    assert (q.shots, q.num_trials, q.train_with_val) == (10, 2, False)
    assert dm.num_train_pids == 3                     # val id 4 held out
    assert len(q.gallery) == 6                        # 3 images of cam1 for ids 5 and 6
    # nothing outlives the construction: a plain torchreid manager gets the defaults
    plain = compat.ImageDataManager(root=root, **MANAGER)
    q = query_set(plain)
    assert (q.shots, q.num_trials, q.train_with_val) == (1, 10, True)
    assert plain.num_train_pids == 4 and len(q.gallery) == 2
    assert dataset_option('sysu.shots') == 1


def test_a_failed_construction_leaves_no_options_behind(root):
    with pytest.raises(DatasetOptionError, match="'sysu.gallery_draw'.*'kit'"):
        CrossModalImageDataManager(root=root, train_sampler='RandomSampler', **MANAGER,
                                   dataset_options={'sysu.shots': 10,
                                                    'sysu.gallery_draw': 'kit'})
    assert dataset_option('sysu.shots') == 1 and dataset_option('sysu.gallery_draw') == 'seeded'


def test_scopes_nest_and_explicit_keywords_win():
    with scoped_options({'sysu.shots': 10}):
        assert dataset_option('sysu.shots') == 10
        assert dataset_option('sysu.shots', 3) == 3
        with scoped_options({'vcm.min_seq_len': 4}):
            assert dataset_option('vcm.min_seq_len') == 4
            assert dataset_option('sysu.shots') == 1   # an inner scope replaces the outer
        assert dataset_option('sysu.shots') == 10
    assert dataset_option('sysu.shots') == 1
    with pytest.raises(KeyError, match='sysu.shot'):
        with scoped_options({'sysu.shot': 10}):
            pass


# ---------------------------------------------------------------- layering

def imports_of(path):
    """Absolute names of the package modules a file imports (relative imports resolved)."""
    rel = os.path.relpath(path, os.path.dirname(PACKAGE))
    parts = rel[:-3].split(os.sep)
    package = parts[:-1]   # a module's package; an __init__'s is its own folder
    names = []
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = '.'.join(base + ([node.module] if node.module else []))
            names.append(module)
            names += ['{}.{}'.format(module, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            names += [a.name for a in node.names]
    return names


def package_files(sub):
    folder = os.path.join(PACKAGE, sub)
    return [os.path.join(d, f) for d, _, files in os.walk(folder) for f in files
            if f.endswith('.py')]


def test_config_never_imports_data_and_data_never_imports_config_loading():
    for path in package_files('config'):
        bad = [n for n in imports_of(path) if n.startswith('vireid_plugin.data')]
        assert not bad, (path, bad)
    for path in package_files('data'):
        bad = [n for n in imports_of(path) if n.startswith('vireid_plugin.config.loading')]
        assert not bad, (path, bad)


def test_the_layering_check_sees_relative_imports():
    here = os.path.join(PACKAGE, 'data', 'datasets', 'sysu_mm01', 'config.py')
    assert 'vireid_plugin.config.sections' in imports_of(here)
    assert 'vireid_plugin.data.datasets.sysu_mm01.dataset' in imports_of(here)
