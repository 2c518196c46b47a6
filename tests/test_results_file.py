"""results.json as a user may leave it (not a list, not UTF-8, malformed records): one line,
nothing destroyed, and the final checkpoint of a run written before its final test."""
import json

import pytest

from vireid_plugin.aggregate import main as aggregate_main
from vireid_plugin.engine.evaluation import (EPOCH_BASE, append_results, completed_epochs,
                                             final_rows)
from tests.helpers import DEMO, synthetic_sysu

ROW = {'mode': 'all-search single-shot', 'R1': 50.0, 'mAP': 40.0}


@pytest.mark.parametrize('content', [b'{"a": 1}', b'"text"', b'3', b'\xff\xfe[1, 2]'])
def test_a_file_that_is_not_a_list_is_moved_aside(tmp_path, capsys, content):
    (tmp_path / 'results.json').write_bytes(content)
    append_results(str(tmp_path), {'dataset': 'x', 'epoch': 1, 'rows': [ROW]})
    assert json.loads((tmp_path / 'results.json').read_text()) == [
        {'dataset': 'x', 'epoch': 1, 'rows': [ROW], 'epoch_base': 1}]
    (aside,) = [p for p in tmp_path.iterdir() if '.corrupt-' in p.name]
    assert aside.read_bytes() == content
    out = capsys.readouterr().out
    assert len(out.strip().splitlines()) == 1 and str(aside) in out


@pytest.mark.parametrize('content', ['{"a": 1}', '[1, 2]', '[{"stage": "evaluation"}]',
                                     '[{"dataset": "x", "stage": "e", "rows": [{"R1": 1}]}]'])
def test_readers_name_the_file_in_one_line(tmp_path, capsys, content):
    path = tmp_path / 'results.json'
    path.write_text(content)
    with pytest.raises(ValueError) as err:
        final_rows(str(path))
    assert str(path) in str(err.value) and '\n' not in str(err.value)
    assert aggregate_main([str(path)]) == 1   # scripts/aggregate_results.py: one error line
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert len(err_lines) == 1 and err_lines[0].startswith('error: ')


def test_non_utf8_results_file_is_one_line(tmp_path):
    path = tmp_path / 'results.json'
    path.write_bytes(b'[{"dataset": "\xff"}]')
    with pytest.raises(ValueError, match='cannot read results file'):
        final_rows(str(path))


@pytest.mark.parametrize('record,epochs', [
    # files written before epoch_base: evaluations were 0-based...
    ({'stage': 'evaluation', 'epoch': 0}, 1),
    ({'stage': 'evaluation', 'epoch': 9}, 10),
    ({'stage': 'selected', 'selection': 'val', 'epoch': 4}, 5),
    ({'stage': 'torchreid engine', 'epoch': 2}, 3),
    # ...validation, untrained and select_on test's record already counted whole epochs
    ({'stage': 'untrained', 'epoch': 0}, 0),
    ({'stage': 'validation', 'epoch': 2}, 2),
    ({'stage': 'selected', 'selection': 'test', 'epoch': 3}, 3),
    # new files say so and count as the tables do
    ({'stage': 'evaluation', 'epoch': 1, 'epoch_base': 1}, 1),
    ({'stage': 'untrained', 'epoch': 0, 'epoch_base': 1}, 0),
])
def test_completed_epochs_of_old_and_new_records(record, epochs):
    assert EPOCH_BASE == 1
    assert completed_epochs(record) == epochs


def test_old_files_still_aggregate(tmp_path, capsys):
    path = tmp_path / 'results.json'
    path.write_text(json.dumps([{'dataset': 'regdb', 'epoch': 0, 'stage': 'untrained',
                                 'rows': [dict(ROW, mode='v->t')]},
                                {'dataset': 'regdb', 'epoch': 9, 'stage': 'evaluation',
                                 'rows': [dict(ROW, mode='v->t')]}]))
    assert aggregate_main([str(path)]) == 0
    assert '50.00 ± 0.00' in capsys.readouterr().out


# ------------------------------------------------------------- a run, end to end
@pytest.fixture(scope='module')
def tiny_root(tmp_path_factory):
    return synthetic_sysu(tmp_path_factory, 4, 1, 2, 1)


def _args(root, save_dir, *extra):
    return ['--config-file', DEMO, '--root', root, 'data.save_dir', save_dir,
            'data.synthetic', 'True', 'data.workers', '0', 'data.height', '64',
            'data.width', '32', 'vit.stride_size', '16', 'train.batch_size', '8',
            'test.eval_before_train', 'False', 'test.num_trials', '1',
            'data_cache.enabled', 'False', 'train.max_epoch', '1'] + list(extra)


@pytest.mark.usefixtures('one_thread')
def test_a_run_into_a_folder_with_a_dict_results_file(cli, tiny_root, tmp_path, capfd):
    save = tmp_path / 'log'
    save.mkdir()
    (save / 'results.json').write_text('{"not": "a list"}')
    # a folder holding a results file holds a run (issue 26): one line, nothing touched
    assert cli.main([str(a) for a in _args(tiny_root, save)]) != 0
    err = capfd.readouterr().err
    assert 'Traceback' not in err and len(err.strip().splitlines()) == 1
    assert (save / 'results.json').read_text() == '{"not": "a list"}'
    # started over: the old folder is moved aside whole, the run writes a list of records
    assert cli.main([str(a) for a in _args(tiny_root, save)] + ['--start-over']) == 0
    assert (save / 'model' / 'model.pth.tar-1').is_file()
    records = json.loads((save / 'results.json').read_text())
    assert [(r['stage'], r['epoch']) for r in records] == [('evaluation', 1)]
    assert 'Traceback' not in capfd.readouterr().err


def test_a_dict_results_file_met_while_recording_is_set_aside(tmp_path, capsys):
    from vireid_plugin.engine.evaluation import append_results
    (tmp_path / 'results.json').write_text('{"not": "a list"}')
    append_results(str(tmp_path), {'dataset': 'x', 'epoch': 1, 'rows': []})
    assert json.loads((tmp_path / 'results.json').read_text()) == [
        {'dataset': 'x', 'epoch': 1, 'rows': [], 'epoch_base': 1}]
    aside = [p for p in tmp_path.iterdir() if p.name.startswith('results.json.corrupt-')]
    assert len(aside) == 1 and aside[0].read_text() == '{"not": "a list"}'


@pytest.mark.usefixtures('one_thread')
def test_final_checkpoint_is_written_before_the_final_test(cli, tiny_root, tmp_path,
                                                           monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError('the final test failed')
    monkeypatch.setattr(cli.CrossModalEngine, 'test', broken)
    save = tmp_path / 'log'
    with pytest.raises(RuntimeError, match='final test failed'):
        cli.main([str(a) for a in _args(tiny_root, save)])
    assert (save / 'model' / 'model.pth.tar-1').is_file()
