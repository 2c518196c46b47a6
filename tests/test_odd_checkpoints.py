"""Checkpoints edited or written by others, resumed: one ``error:`` line naming the file, and
a refusal message of bounded size whatever the file holds."""
import sys

import pytest
import torch

from vireid_plugin.data.synthetic import make_sysu_mm01
from vireid_plugin.engine.checkpoint import schedule_changes
from vireid_plugin.errors import bounded_repr

from tests.helpers import DEMO


pytestmark = pytest.mark.usefixtures('one_thread')


def shared_nest(depth):
    """A list whose repr has 2 ** depth leaves, stored in a few hundred bytes (each level
    holds the level below twice, and pickle writes a shared object once)."""
    value = [0]
    for _ in range(depth):
        value = [value, value]
    return value


def test_bounded_repr_of_a_huge_shared_structure():
    text = bounded_repr(shared_nest(60))   # 2 ** 60 leaves written out in full
    assert len(text) < 200
    assert bounded_repr([1, 2]) == '[1, 2]' and bounded_repr('x' * 10) == repr('x' * 10)


def test_schedule_refusal_names_the_key_and_stays_short():
    changes = schedule_changes({'train.max_epoch': shared_nest(60)}, {'train.max_epoch': 3})
    (line,) = changes
    assert line.startswith('train.max_epoch: checkpoint [') and line.endswith('config 3')
    assert len(line) < 250
    assert schedule_changes('not a dict', {'train.max_epoch': 3}) == []


def _args(root, save, *extra):
    return ['--config-file', DEMO, '--root', root, 'data.save_dir', save, 'data.synthetic',
            'True', 'data.workers', '0', 'data.height', '64', 'data.width', '32',
            'train.batch_size', '8', 'test.eval_before_train', 'False', 'test.num_trials', '1',
            'data_cache.enabled', 'False', 'train.max_epoch', '2'] + list(extra)


@pytest.fixture(scope='module')
def first_epoch(cli, tmp_path_factory):
    """A run stopped after epoch 1 of 2 (its checkpoint, the data root)."""
    base = tmp_path_factory.mktemp('odd_ckpt')
    root = str(base / 'data')
    make_sysu_mm01(root, num_train=4, num_val=1, num_test=2, images_per_cam=1, size=(64, 32))
    save = base / 'log'
    argv = _args(root, save, 'train.max_epoch', '1')
    assert cli.main([str(a) for a in argv]) == 0
    return root, torch.load(str(save / 'model' / 'model.pth.tar-1'), weights_only=True)


@pytest.fixture
def resume_with(cli, first_epoch, tmp_path, capfd):
    """Resume a copy of the epoch-1 checkpoint changed by ``edit``; (exit status, stderr)."""
    root, state = first_epoch

    def call(edit):
        ckpt = dict(state)
        edit(ckpt)
        path = tmp_path / 'edited.pth.tar'
        torch.save(ckpt, str(path))
        capfd.readouterr()
        # the first epoch's schedule said max_epoch 1: keep it, so only the edit differs
        rc = cli.main([str(a) for a in _args(root, tmp_path / 'log', 'train.max_epoch', '1',
                                             'model.resume', path)])
        sys.__stderr__.flush()
        return rc, capfd.readouterr().err, str(path)
    return call


@pytest.mark.parametrize('field,value', [('epoch', 'one'), ('epoch', -1), ('epoch', 1.5),
                                         ('epoch', float('nan')), ('iteration', [3])])
def test_malformed_epoch_or_iteration(resume_with, field, value):
    rc, err, path = resume_with(lambda c: c.__setitem__(field, value))
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 1 and len(lines) == 1 and 'Traceback' not in err, err
    assert path in lines[0] and field in lines[0]


@pytest.mark.parametrize('rng', [{'python': 'x'}, {'numpy': [1]}, [1, 2, 3],
                                 {'python': [3, [0] * 5, None], 'numpy': [], 'torch': 0}])
def test_malformed_rng(resume_with, rng):
    rc, err, path = resume_with(lambda c: c.__setitem__('rng', rng))
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 1 and len(lines) == 1 and 'Traceback' not in err, err
    assert path in lines[0] and 'rng' in lines[0]


def test_nested_shared_lists_in_the_schedule(resume_with):
    def edit(ckpt):
        ckpt['schedule'] = dict(ckpt['schedule'], **{'train.lr': shared_nest(60)})
    rc, err, path = resume_with(edit)
    lines = [line for line in err.splitlines() if line.strip()]
    assert rc == 1 and len(lines) == 1 and path in lines[0] and 'train.lr' in lines[0]
    assert len(lines[0]) < 1000


# ------------------------------------------------------- foreign MIP checkpoints
@pytest.mark.parametrize('key,shape', [
    ('base.sie_embed', ()), ('base.prompt_embeddings', (4,)),
    ('base.prompt_embeddings', (2, 4, 32, 1)), ('base.deep_prompt_embeddings', (2,)),
    ('base.deep_prompt_embeddings', (3, 4, 4, 32)), ('base.cls_token', (7,)),
])
def test_released_mip_checkpoint_with_odd_shapes(tmp_path, key, shape):
    from tests.test_mip import TINY_LAYOUT, released_state_dict, tiny
    from vireid_plugin.checkpoint_io import CheckpointError
    from vireid_plugin.models import load_weights
    state = released_state_dict(**TINY_LAYOUT)
    state[key] = torch.zeros(shape)
    path = str(tmp_path / 'odd.pth')
    torch.save(state, path)
    model = tiny(released_compat=True)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError) as err:
        load_weights(model, path)
    msg = str(err.value)
    assert path in msg and len(msg.splitlines()) == 1 and len(msg) < 2000
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
