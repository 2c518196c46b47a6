import json

import pytest

from vireid_plugin.engine.evaluation import append_results, average_runs


def run_file(tmp_path, name, r1, mAP):
    folder = tmp_path / name
    append_results(str(folder), {'dataset': 'regdb', 'epoch': 0, 'stage': 'untrained',
                                 'rows': [{'mode': 'visible->thermal', 'R1': 0.0, 'mAP': 0.0}]})
    append_results(str(folder), {'dataset': 'regdb', 'epoch': 9, 'stage': 'evaluation',
                                 'rows': [{'mode': 'visible->thermal', 'trials': 1,
                                           'R1': r1, 'mAP': mAP, 'mINP': 1.0}]})
    return str(folder / 'results.json')


def test_mean_and_std_over_runs_use_each_runs_last_trained_evaluation(tmp_path):
    paths = [run_file(tmp_path, 't1', 80.0, 70.0), run_file(tmp_path, 't2', 90.0, 74.0)]
    (row,) = average_runs(paths)
    assert row['runs'] == 2 and row['mode'] == 'visible->thermal'
    assert row['R1'] == pytest.approx(85.0) and row['R1_std'] == pytest.approx(5.0)
    assert row['mAP'] == pytest.approx(72.0) and row['mINP'] == pytest.approx(1.0)


def test_mismatched_runs_and_untrained_only_files_are_errors(tmp_path):
    a = run_file(tmp_path, 'a', 1.0, 1.0)
    other = tmp_path / 'b'
    append_results(str(other), {'dataset': 'sysu_mm01', 'epoch': 1, 'stage': 'evaluation',
                                'rows': [{'mode': 'all-search single-shot', 'R1': 1.0}]})
    with pytest.raises(ValueError, match='same datasets and modes'):
        average_runs([a, str(other / 'results.json')])
    only = tmp_path / 'c'
    append_results(str(only), {'dataset': 'regdb', 'epoch': 0, 'stage': 'untrained',
                               'rows': [{'mode': 'm', 'R1': 0.0}]})
    with pytest.raises(ValueError, match='no evaluation of a trained model'):
        average_runs([str(only / 'results.json')])


def test_cli_prints_the_table(tmp_path, capsys):
    from vireid_plugin import aggregate as module   # scripts/aggregate_results.py's command
    paths = [run_file(tmp_path, 't1', 80.0, 70.0), run_file(tmp_path, 't2', 90.0, 74.0)]
    out_json = tmp_path / 'avg.json'
    assert module.main(paths + ['--json', str(out_json)]) == 0
    assert '85.00 ± 5.00' in capsys.readouterr().out
    assert json.loads(out_json.read_text())[0]['mAP'] == pytest.approx(72.0)
    assert module.main([str(tmp_path / 'missing.json')]) == 1


def test_cli_takes_run_folders_as_visualize_does(tmp_path, capsys):
    from vireid_plugin import aggregate as module
    run_file(tmp_path, 't1', 80.0, 70.0), run_file(tmp_path, 't2', 90.0, 74.0)
    assert module.main([str(tmp_path / 't1'), str(tmp_path / 't2' / 'results.json')]) == 0
    assert '85.00 ± 5.00' in capsys.readouterr().out
