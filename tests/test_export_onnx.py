"""ONNX export: parity with PyTorch in onnxruntime for the tiny variant of every registered
model (the CPU-sized ones, names containing 'tiny'), and scripts/export_onnx.py end to end."""

import numpy as np
import pytest
import torch

pytest.importorskip('onnxruntime')
pytest.importorskip('onnxscript')

from vireid_plugin.config import load_config  # noqa: E402
from vireid_plugin.data import num_cameras  # noqa: E402
from vireid_plugin.data.synthetic import make_buptcampus, make_llcm  # noqa: E402
from vireid_plugin.export import export_onnx, max_abs_difference, run_onnx  # noqa: E402
from vireid_plugin.models import build_model, model_names  # noqa: E402
from vireid_plugin.runner import build_data_manager, build_reid_model  # noqa: E402

from tests.helpers import config_file

ATOL = 1e-4
TINY = [n for n in model_names() if 'tiny' in n]
SIZES = [(128, 64), (256, 128), (224, 224), (288, 144), (96, 48)]


def build_tiny(name):
    """The model with SIE cameras when its builder takes them (MIP/LSMRL builders may not)."""
    torch.manual_seed(0)
    try:
        model = build_model(name, 5, pretrained=False, num_cameras=6)
    except TypeError:
        model = build_model(name, 5, pretrained=False)
    return model.eval()


def input_sizes(model):
    """(H, W) the model says it takes (timm's img_size, open_clip's image_size), then guesses."""
    said = []
    for module in model.modules():
        for attr in ('img_size', 'image_size'):
            value = getattr(module, attr, None)
            if isinstance(value, int):
                value = (value, value)
            if isinstance(value, (tuple, list)) and len(value) == 2 and tuple(value) not in said:
                said.append(tuple(int(v) for v in value))
    return said + [s for s in SIZES if s not in said]


@torch.no_grad()
def probe(model, batch=2, frames=3, first='image'):
    """('image' | 'video', input shape) of the first input the eval forward accepts, trying
    ``first`` first (a video model also takes frames: torchreid's video engines feed them)."""
    for size in input_sizes(model):
        candidates = [('image', (batch, 3) + size), ('video', (batch, frames, 3) + size)]
        for kind, shape in sorted(candidates, key=lambda c: c[0] != first):
            try:
                out = model(torch.randn(shape), modality=torch.zeros(batch, dtype=torch.long),
                            camid=torch.zeros(batch, dtype=torch.long))
            except Exception:   # wrong rank or size: try the next candidate
                continue
            if torch.is_tensor(out) and out.dim() == 2 and out.shape[0] == batch:
                return kind, shape
    raise AssertionError('no input shape found for the eval forward')


def inputs(shape, batch, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((batch,) + tuple(shape[1:]), generator=g)
    return x, torch.arange(batch) % 2, torch.arange(batch) % 6


def test_every_registered_model_family_has_a_tiny_variant():
    assert {'vit_tiny_reid', 'vit_tiny_video_avg'} <= set(TINY)


@pytest.mark.parametrize('name', TINY)
def test_tiny_model_export_parity(name, tmp_path):
    model = build_tiny(name)
    kind, shape = probe(model, first='video' if 'video' in name else 'image')
    assert kind == ('video' if 'video' in name else kind)
    path = export_onnx(model, str(tmp_path / 'model.onnx'), inputs(shape, 2, 0), kind=kind)
    # the batch axis is dynamic: score a batch of another size
    diff, scale = max_abs_difference(model, path, inputs(shape, 5, 1))
    print('{}: max |onnxruntime - PyTorch| = {:.3g} (features up to {:.3g})'.format(
        name, diff, scale))
    assert diff <= ATOL and scale > 0
    # modality and camera ids are real inputs of the graph, not constants
    x, modality, camid = inputs(shape, 3, 2)
    got = run_onnx(path, x, modality, camid)
    ref = model(x, modality=modality, camid=camid).detach().numpy()
    np.testing.assert_allclose(got, ref, atol=ATOL, rtol=0)
    if hasattr(model, 'backbone') and getattr(model.backbone, 'sie_embed', None) is not None:
        other = run_onnx(path, x, modality, (camid + 1) % 6)
        assert np.abs(other - got).max() > 1e-3


def test_export_rejects_a_batch_of_one_and_the_wrong_rank(tmp_path):
    model = build_tiny('vit_tiny_reid')
    x, m, c = inputs((2, 3, 128, 64), 1, 0)
    with pytest.raises(ValueError, match='B >= 2'):
        export_onnx(model, str(tmp_path / 'a.onnx'), (x, m, c))
    x, m, c = inputs((2, 3, 128, 64), 2, 0)
    with pytest.raises(ValueError, match=r'\(B, T, C, H, W\)'):
        export_onnx(model, str(tmp_path / 'a.onnx'), (x, m, c), kind='video')


# ---------------------------------------------------------------- the script

@pytest.fixture(scope='module')
def export_cli():
    """scripts/export_onnx.py's command, in-process (``main(argv)``)."""
    from vireid_plugin.export import run
    return run


def cheap(root, tmp_path):
    return ['--root', str(root), 'data.save_dir', str(tmp_path / 'log'), 'data.workers', '0',
            'data.synthetic', 'True']


def test_script_exports_an_image_model_and_checks_it_on_dataset_images(
        export_cli, tmp_path, capsys):
    root = tmp_path / 'data'
    make_llcm(str(root), num_train=4, num_test=3, images=(1, 1), size=(128, 64))
    config = config_file('demo_llcm.yaml')
    cfg = load_config(config, cheap(root, tmp_path)[2:], root=str(root))
    dm = build_data_manager(cfg)
    model = build_reid_model(cfg, dm.num_train_pids, num_cameras(dm))
    torch.save({'state_dict': model.state_dict()}, str(tmp_path / 'ckpt.pth'))
    out = tmp_path / 'llcm.onnx'
    argv = ['--config-file', config, '--weights', str(tmp_path / 'ckpt.pth'), '--out', str(out),
            '--num-inputs', '5'] + cheap(root, tmp_path)
    assert export_cli.main(argv) == 0
    text = capsys.readouterr().out
    assert out.is_file() and 'images (B, C, H, W), modality, camid' in text
    assert 'on 5 llcm test items' in text and ': OK' in text
    # a tolerance no difference meets: reported, exit status 1
    flags = argv[:-len(cheap(root, tmp_path))]
    assert export_cli.main(flags + ['--atol', '-1'] + cheap(root, tmp_path)) == 1
    assert 'tolerance --atol -1: FAILED' in capsys.readouterr().out


def test_script_exports_a_video_model(export_cli, tmp_path, capsys):
    root = tmp_path / 'data'
    make_buptcampus(str(root), num_train=3, num_aux=0, num_test=4, lengths=(2, 3),
                    size=(128, 64))
    config = config_file('demo_bupt.yaml')
    model = build_model('vit_tiny_video_avg', 3, pretrained=False, num_cameras=6,
                        img_size=(128, 64), drop_path_rate=0.0)
    torch.save({'state_dict': model.state_dict()}, str(tmp_path / 'ckpt.pth'))
    argv = ['--config-file', config, '--weights', str(tmp_path / 'ckpt.pth'), '--out',
            str(tmp_path / 'bupt.onnx'), '--num-inputs', '3'] + cheap(root, tmp_path) + [
        'bupt.use_auxiliary', 'False']
    assert export_cli.main(argv) == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    assert 'clips (B, T, C, H, W), modality, camid' in text and ': OK' in text


def test_script_refuses_a_checkpoint_of_another_model(export_cli, tmp_path, capfd):
    root = tmp_path / 'data'
    make_llcm(str(root), num_train=4, num_test=3, images=(1, 1), size=(128, 64))
    other = build_model('vit_tiny_reid', 3, pretrained=False, num_cameras=2)
    torch.save({'state_dict': other.state_dict()}, str(tmp_path / 'ckpt.pth'))
    rc = export_cli.main(['--config-file', config_file('demo_llcm.yaml'),
                          '--weights', str(tmp_path / 'ckpt.pth'), '--out',
                          str(tmp_path / 'x.onnx')] + cheap(root, tmp_path))
    err = capfd.readouterr().err
    assert rc == 1 and 'does not fit model vit_tiny_reid' in err and 'sie_embed' in err
    assert not (tmp_path / 'x.onnx').exists()
