"""The lines a run ends with name every direction it evaluated (issue 26): RegDB scored
visible->thermal and thermal->visible shows both, with the values of results.json, and says
which row model selection scores."""
import json
import os
import re

import pytest

from vireid_plugin.data.synthetic import make_regdb

from tests.helpers import config_file

CONFIG = config_file('demo_regdb.yaml')   # test.protocol_matrix True
LINE = re.compile(r'^regdb \((?P<mode>[^)]+)\): mAP before training (?P<m0>[\d.]+)% -> after '
                  r'training (?P<m1>[\d.]+)% \(R1 (?P<r0>[\d.]+)% -> (?P<r1>[\d.]+)%\)$')


@pytest.fixture(scope='module')
def regdb_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('regdb'))
    make_regdb(root, num_ids=12, images_per_id=4, num_trials=1, size=(64, 32))
    return root


def tiny(root, save_dir, *extra):
    return ['--config-file', CONFIG, '--root', root, 'data.save_dir', save_dir,
            'data.height', '64', 'data.width', '32', 'data.workers', '0',
            'data_cache.enabled', 'False', 'train.batch_size', '8', 'sampler.num_instances',
            '2', 'train.max_epoch', '1', 'train.print_freq', '1000', 'test.batch_size', '64'
            ] + [str(e) for e in extra]


def summary(out):
    """{mode: (mAP before, mAP after, R1 before, R1 after)} of the run's last lines."""
    found = {}
    for line in out.splitlines():
        m = LINE.match(line.strip())
        if m:
            found[m['mode']] = tuple(float(m[k]) for k in ('m0', 'm1', 'r0', 'r1'))
    return found


def rows_of(save_dir, stage):
    with open(os.path.join(str(save_dir), 'results.json')) as f:
        records = [r for r in json.load(f) if r['dataset'] == 'regdb' and r['stage'] == stage]
    return {row['mode']: row for row in records[-1]['rows']}


@pytest.mark.parametrize('select_on', ['last', 'test'])
def test_both_directions_end_the_run_with_the_values_of_results_json(run_main, regdb_root,
                                                                    tmp_path, select_on):
    save_dir = tmp_path / 'run'
    rc, out = run_main(tiny(regdb_root, save_dir, 'test.select_on', select_on))
    assert rc == 0, out.err
    lines = summary(out.out)
    assert sorted(lines) == ['thermal->visible', 'visible->thermal']   # both directions
    before = rows_of(save_dir, 'untrained')
    after = rows_of(save_dir, 'selected' if select_on == 'test' else 'evaluation')
    for mode, (m0, m1, r0, r1) in lines.items():   # the table's 2 decimals of each value
        assert (m0, r0) == (round(before[mode]['mAP'], 2), round(before[mode]['R1'], 2))
        assert (m1, r1) == (round(after[mode]['mAP'], 2), round(after[mode]['R1'], 2))
    if select_on == 'last':
        assert 'Model: the last epoch (test.select_on last)' in out.out
    else:   # selection keeps scoring the first row: RegDB's registered direction
        assert ("Model: best on the TEST set (optimistic: selected on the test data), scored "
                "by (R1 + mAP) / 2 of regdb 'visible->thermal'") in out.out
        assert "(R1 + mAP) / 2" in out.out and "of regdb 'visible->thermal')" in out.out
