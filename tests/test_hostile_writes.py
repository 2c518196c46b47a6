"""Every file a command writes stays under the folder it was given, whatever names the
files it reads hold: a crafted features.safetensors (scripts/visualize.py of a run folder
someone sent), planted links, and test.visrank's per-query images."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from vireid_plugin.data.eval_split import EvalMode
from vireid_plugin.engine.saved_features import FEATURES_FILE, save_features
from vireid_plugin.safe_paths import UnsafePathError, path_under, safe_component
from vireid_plugin.visualize.run import main, visualize_run


def _files(folder):
    return sorted(os.path.relpath(os.path.join(r, f), folder)
                  for r, _, names in os.walk(folder) for f in names)


def _pool(images, n_ids=4, per=2):
    """Items of n_ids identities, ``per`` images in each modality, and their features."""
    images.mkdir(exist_ok=True)
    items, feats = [], []
    rng = np.random.default_rng(0)
    for pid in range(n_ids):
        for m in (0, 1):
            for k in range(per):
                path = images / '{}_{}_{}.png'.format(pid, m, k)
                Image.new('RGB', (16, 32), (40 * pid, 100 * m, 30 * k)).save(str(path))
                items.append((str(path), pid, m, 0, m))
                feats.append(rng.normal(size=8) + 3 * pid)
    q = np.array([i for i, it in enumerate(items) if it[4] == 1])
    g = np.array([i for i, it in enumerate(items) if it[4] == 0])
    return items, torch.tensor(np.array(feats), dtype=torch.float32), q, g


def _hostile_run(tmp_path, escape):
    """A run folder whose features file names targets and modes with path tricks."""
    run = tmp_path / 'sent_run'
    run.mkdir()
    items, feats, q, g = _pool(tmp_path / 'images')
    names = ['/../../../../{}/PWNED'.format(escape), '../up', '..', 'a/b\\c', 'new\nline',
             '.hidden', 'nul\x00byte']
    entries = {}
    for i, name in enumerate(names):
        mode = EvalMode('all/../../{}/mode'.format(escape) if i == 0 else 'm', 'regdb', q,
                        (g,))
        entries[name] = (feats + i, items, [mode])   # distinct tensors: one pool each
    save_features(str(run / FEATURES_FILE), entries)
    return run, names


def test_hostile_target_names_write_only_inside_the_figures_folder(tmp_path):
    escape = tmp_path / 'outside'
    escape.mkdir()
    run, names = _hostile_run(tmp_path, escape)
    before = set(_files(str(tmp_path)))
    written = visualize_run(str(run), num_queries=2, topk=3, num_ids=4, tensorboard=False,
                            log=lambda *a: None)
    new = set(_files(str(tmp_path))) - before
    figures = run / 'figures'
    assert new and all(f.startswith(os.path.join('sent_run', 'figures') + os.sep) for f in new)
    assert os.listdir(str(escape)) == []
    # one ranked list and one t-SNE per target, each a distinct plain file name
    pngs = sorted(os.listdir(str(figures)))
    assert len(pngs) == len(set(pngs)) == 2 * len(names) == len(written)
    for png in pngs:   # one plain file-name component each ('..' inside a name is harmless)
        assert png.endswith('.png') and png[:-4] == safe_component(png[:-4])
        assert not png.startswith('.') and len(png) <= 124
    assert all(os.path.dirname(os.path.realpath(p)) == os.path.realpath(str(figures))
               for p in written.values())


def test_a_planted_link_is_refused_never_written_through(tmp_path):
    run, _ = _hostile_run(tmp_path, tmp_path / 'unused')
    victim = tmp_path / 'victim.txt'
    victim.write_text('precious')
    figures = run / 'figures'
    figures.mkdir()
    name = safe_component('ranked_../up_m') + '.png'   # the figure of target '../up'
    os.symlink(str(victim), str(figures / name))
    with pytest.raises(UnsafePathError, match='outside the folder'):
        visualize_run(str(run), num_queries=2, topk=3, num_ids=4, tensorboard=False,
                      log=lambda *a: None)
    assert victim.read_text() == 'precious'


def test_a_figures_folder_linking_out_of_the_run_is_refused(tmp_path, capsys):
    run, _ = _hostile_run(tmp_path, tmp_path / 'unused')
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    os.symlink(str(elsewhere), str(run / 'figures'))
    assert main([str(run), '--no-tensorboard', '--queries', '2', '--topk', '3']) == 1
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'outside the folder' in err and 'figures' in err
    assert os.listdir(str(elsewhere)) == []
    # an explicit --out is the folder the user gave: used as is
    out = tmp_path / 'chosen'
    assert main([str(run), '--no-tensorboard', '--queries', '2', '--topk', '3',
                 '--out', str(out)]) == 0
    assert len(os.listdir(str(out))) == 14


def test_visrank_images_stay_in_their_folder(tmp_path, capsys):
    """test.visrank's folder is named after the target: one safe component too."""
    from types import SimpleNamespace
    from vireid_plugin.engine.testing import Testing
    items, feats, q, g = _pool(tmp_path / 'images', n_ids=2, per=1)
    dataset = SimpleNamespace(test_pool=items)
    save = tmp_path / 'log'
    Testing.visualize_first_trial(None, '../../../escaped', dataset, feats,
                                  EvalMode('m', 'regdb', q, (g,)), 'euclidean', False,
                                  str(save), 2)
    assert _files(str(save)) == [os.path.join('visrank__.._.._escaped',  # leading dots dropped
                                              '{:05d}_pid{}_cam2.jpg'.format(k, items[i][1]))
                                 for k, i in enumerate(q)]
    assert not (tmp_path / 'escaped').exists()


@pytest.mark.parametrize('text,expected', [
    ('sysu_mm01', 'sysu_mm01'), ('ranked_regdb_v_to_t.x', 'ranked_regdb_v_to_t.x'),
    ('../../etc/passwd', '_.._etc_passwd'), ('/abs', '_abs'), ('..', '_'), ('.bashrc', 'bashrc'),
    ('a\x00b\nc', 'a_b_c'), ('x' * 300, 'x' * 120)])
def test_safe_component(text, expected):
    assert safe_component(text) == expected


def test_path_under(tmp_path):
    assert path_under(str(tmp_path), 'a.png') == os.path.join(str(tmp_path), 'a.png')
    for bad in ('../a.png', '/etc/passwd', '.', ''):
        with pytest.raises(UnsafePathError):
            path_under(str(tmp_path), bad)
