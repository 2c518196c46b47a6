import os

from vireid_plugin.config import load_config
from vireid_plugin.data.prepare import prepare_datasets


def cfg_for(root, synthetic=True, sources=('regdb',)):
    return load_config('', ['data.synthetic', str(synthetic), 'data.root', str(root)],
                       sources=list(sources), targets=list(sources))


def test_missing_dataset_is_generated_once_and_then_left_alone(tmp_path):
    made = prepare_datasets(cfg_for(tmp_path))
    assert made == [os.path.join(str(tmp_path), 'RegDB')]
    idx = tmp_path / 'RegDB' / 'idx' / 'train_visible_1.txt'
    assert idx.is_file()
    stamp = idx.stat().st_mtime_ns
    assert prepare_datasets(cfg_for(tmp_path)) == []        # present: nothing written
    assert idx.stat().st_mtime_ns == stamp


def test_nothing_is_written_without_the_switch_or_when_root_is_the_dataset(tmp_path):
    assert prepare_datasets(cfg_for(tmp_path, synthetic=False)) == []
    assert os.listdir(tmp_path) == []
    inside = tmp_path / 'RegDB'
    inside.mkdir()
    # the user pointed data.root at the dataset folder itself: never nest another copy
    assert prepare_datasets(cfg_for(inside)) == []
    assert os.listdir(inside) == []


def test_torchreid_datasets_are_not_touched(tmp_path):
    assert prepare_datasets(cfg_for(tmp_path, sources=('market1501',))) == []
    assert os.listdir(tmp_path) == []
