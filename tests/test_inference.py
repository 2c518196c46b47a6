"""Inference on a user's own images (vireid_plugin.inference, scripts/search.py): features
equal to the run's evaluation, inputs of every kind, the gallery index and its search,
the command's outputs (checked in headless Chromium where installed), bad inputs, ONNX."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from vireid_plugin import compat
from vireid_plugin.checkpoint_io import save_checkpoint
from vireid_plugin.config import load_config
from vireid_plugin.engine.saved_features import load_features
from vireid_plugin.inference import (Extractor, FeatureExtractor, GalleryIndex,
                                     IndexMismatchError, InferenceInputError,
                                     MissingModalityError, NoCheckpointError, Preprocessing,
                                     run_distance)
from vireid_plugin.inference.index import exact_topk
from vireid_plugin.inference.inputs import ItemReader
from vireid_plugin.inference.search import main as search_main
from vireid_plugin.runner import build_reid_model

from tests.helpers import DEMO, REPO, config_file, synthetic_sysu

pytestmark = pytest.mark.usefixtures('one_thread')


@pytest.fixture(scope='module')
def root(tmp_path_factory):
    return synthetic_sysu(tmp_path_factory, 12, 2, 8)


@pytest.fixture(scope='module')
def run_dir(cli, root, tmp_path_factory):
    """A trained tiny ViT (camera embedding on, 0.5/0.5 normalisation as configs/demo.yaml)."""
    save_dir = str(tmp_path_factory.mktemp('run'))
    argv = ['--config-file', DEMO, '--root', root,
            'data.save_dir', save_dir, 'data.synthetic', 'True', 'data.workers', '0',
            'data.height', '64', 'data.width', '32', 'train.batch_size', '16',
            'train.max_epoch', '1', 'test.num_trials', '1', 'train.print_freq', '100',
            'test.batch_size', '32', 'test.eval_before_train', 'False']
    assert cli.main(argv) == 0
    return save_dir


@pytest.fixture(scope='module')
def extractor(run_dir):
    return Extractor.from_run(run_dir)


@pytest.fixture(scope='module')
def pool(run_dir):
    return load_features(os.path.join(run_dir, 'features.safetensors')).targets['sysu_mm01']


def _fake_run(folder, config, **opts):
    """A run folder (config.yaml + model/model.pth.tar-1) of an untrained model."""
    cfg = load_config(config_file(config),
                      [x for kv in opts.items() for x in kv])
    model = build_reid_model(cfg, 4, 6, pretrained=False, pretrained_path='')
    os.makedirs(os.path.join(folder, 'model'), exist_ok=True)
    with open(os.path.join(folder, 'config.yaml'), 'w') as f:
        f.write(cfg.dump())
    save_checkpoint({'state_dict': model.state_dict(), 'epoch': 1},
                    os.path.join(folder, 'model', 'model.pth.tar-1'))
    return folder


# ---- 1. features equal the evaluation's ---------------------------------------------------
def test_features_equal_the_runs_saved_pool_features(extractor, pool):
    out = extractor.extract(list(pool.paths), modality=pool.modalities.tolist(),
                            camid=pool.camids.tolist())
    assert out.indices == list(range(len(pool.paths))) and not out.skipped
    assert float((out.features - pool.features).abs().max()) < 1e-6
    # the camera embedding is part of the features: unknown cameras give other features
    unknown = extractor(list(pool.paths[:4]), modality=pool.modalities[:4].tolist())
    assert float((unknown - pool.features[:4]).abs().max()) > 1e-3


def test_the_run_preprocessing_is_torchreids_test_transform(extractor, pool):
    """The uint8 path (resize in the loader, normalise per batch) equals torchreid's own
    test transform (Resize, ToTensor, Normalize with the run's 0.5/0.5) bit for bit."""
    assert extractor.pre.norm_mean == (0.5, 0.5, 0.5) and (extractor.pre.height,
                                                            extractor.pre.width) == (64, 32)
    _, transform = compat.transforms.build_transforms(64, 32, transforms=None,
                                                      norm_mean=[0.5] * 3, norm_std=[0.5] * 3)
    img = Image.open(pool.paths[0]).convert('RGB').resize((50, 90))   # another size first
    ours = extractor.pre.normalize(extractor.pre.to_uint8(img)[None])[0]
    assert torch.equal(ours, transform(img))


def test_paths_pil_numpy_and_tensors_give_the_same_features(extractor, pool):
    paths = list(pool.paths[:3])
    labels = dict(modality=pool.modalities[:3].tolist(), camid=pool.camids[:3].tolist())
    ref = extractor(paths, **labels)
    pil = [Image.open(p) for p in paths]
    arrays = [np.asarray(Image.open(p).convert('RGB')) for p in paths]
    _, transform = compat.transforms.build_transforms(64, 32, transforms=None,
                                                      norm_mean=[0.5] * 3, norm_std=[0.5] * 3)
    tensors = [transform(Image.open(p).convert('RGB')) for p in paths]
    for inputs in (pil, arrays):
        assert torch.equal(extractor(inputs, **labels), ref)
    for inputs in (tensors, [paths[0], pil[1], tensors[2]]):
        # a tensor input runs in its own batch: other batch sizes reassociate float sums
        # (about 1e-6); the same batches give the same bits
        assert float((extractor(inputs, **labels) - ref).abs().max()) < 1e-5
    # one input alone, and a batched tensor
    one = extractor(paths[0], modality=labels['modality'][0], camid=labels['camid'][0])
    assert one.shape == (1, ref.shape[1]) and float((one - ref[:1]).abs().max()) < 1e-5
    batched = extractor(torch.stack(tensors))
    assert batched.shape == ref.shape


def test_threads_processes_and_batch_order_give_the_same_features(extractor, pool, tmp_path):
    """Decoding threads (the default), a loader process and batches of 5 (the last one
    short) give the rows in input order; an unreadable file in the middle is skipped and
    the rows around it keep their inputs."""
    paths = list(pool.paths[:12])
    labels = dict(modality=pool.modalities[:12].tolist(), camid=pool.camids[:12].tolist())
    ref = extractor(paths, batch_size=32, **labels)
    assert torch.equal(extractor(paths, workers=1, batch_size=32, **labels), ref)
    small = extractor(paths, batch_size=5, **labels)
    assert float((small - ref).abs().max()) < 1e-5
    broken = tmp_path / 'broken.jpg'
    broken.write_bytes(b'\xff\xd8 truncated')
    out = extractor.extract(paths[:6] + [str(broken)] + paths[6:], batch_size=5,
                            modality=labels['modality'][:6] + [0] + labels['modality'][6:],
                            camid=labels['camid'][:6] + [0] + labels['camid'][6:],
                            log=lambda *a: None)
    assert out.indices == list(range(6)) + list(range(7, 13))
    assert out.skipped[0][0] == str(broken)
    assert float((out.features - small).abs().max()) < 1e-5


def test_modality_names_and_codes(extractor, pool):
    a = extractor(list(pool.paths[:2]), modality='infrared')
    b = extractor(list(pool.paths[:2]), modality=[1, 1])
    assert torch.equal(a, b)
    with pytest.raises(InferenceInputError, match='daylight'):
        extractor(list(pool.paths[:2]), modality='daylight')
    with pytest.raises(InferenceInputError, match='2 values for 3 inputs'):
        extractor(list(pool.paths[:3]), modality=[0, 1])
    with pytest.raises(InferenceInputError, match='camid 99 out of range'):
        extractor(list(pool.paths[:1]), camid=99)


def test_featureextractor_has_torchreids_signature_and_the_runs_preprocessing(run_dir, pool):
    import inspect
    theirs = list(inspect.signature(compat.utils.FeatureExtractor.__init__).parameters)
    ours = list(inspect.signature(FeatureExtractor.__init__).parameters)
    assert ours[:len(theirs)] == theirs and 'modality' in ours
    ckpt = os.path.join(run_dir, 'model', 'model.pth.tar-1')
    fe = FeatureExtractor('vit_tiny_reid', ckpt, device='cuda', verbose=False)
    feats = fe(list(pool.paths), modality=pool.modalities.tolist(), camid=pool.camids.tolist())
    assert float((feats - pool.features).abs().max()) < 1e-6
    assert fe.extractor.pre.norm_mean == (0.5, 0.5, 0.5)   # the run's, not ImageNet's
    bigger = FeatureExtractor(model_path=run_dir, image_size=(128, 64), device='cpu',
                              verbose=False)
    assert (bigger.extractor.pre.height, bigger.extractor.pre.width) == (128, 64)
    with pytest.raises(InferenceInputError, match='trained as'):
        FeatureExtractor('mip_vit_tiny', ckpt, device='cpu', verbose=False)


def test_run_distance_takes_the_config_else_the_models_declaration(extractor):
    class Declares(torch.nn.Module):
        TEST_DISTANCE = 'dot'

    cfg = load_config(DEMO)
    assert cfg.test.dist_metric == 'auto'
    assert run_distance(cfg, Declares()) == 'dot'           # auto: the model's declaration
    # a model that declares none: the protocol of the first target (SYSU-MM01: AGW's cosine)
    assert run_distance(cfg, torch.nn.Module()) == 'cosine'
    cfg.defrost()
    cfg.data.targets = ['no_such_dataset']
    assert run_distance(cfg, torch.nn.Module()) == 'euclidean'
    cfg.test.dist_metric = 'euclidean'                       # the config names one
    assert run_distance(cfg, Declares()) == 'euclidean'
    assert extractor.dist_metric == 'cosine'                 # vit_tiny_reid: TransReID's


def test_checkpoint_choice_and_a_run_without_checkpoint(run_dir, tmp_path):
    from vireid_plugin.inference import run_checkpoint
    cfg = load_config(os.path.join(run_dir, 'config.yaml'))
    assert run_checkpoint(run_dir, cfg).endswith('model.pth.tar-1')
    copy = tmp_path / 'run'
    shutil.copytree(run_dir, copy)
    shutil.copy(copy / 'model' / 'model.pth.tar-1', copy / 'model' / 'model-best.pth.tar')
    cfg.defrost()
    cfg.test.select_on = 'val'
    assert run_checkpoint(str(copy), cfg).endswith('model-best.pth.tar')
    shutil.rmtree(copy / 'model')
    with pytest.raises(NoCheckpointError, match='no checkpoint in run folder'):
        Extractor.from_run(str(copy))


def test_clips_take_the_frames_the_evaluation_takes():
    """10 frames, 4 per clip, the 'chunk' rule: chunks of ceil(10/4) = 3 frames, the first
    of each: 0, 3, 6, 9; the 'uniform' rule: linspace(0, 10, 4, endpoint=False) = 0, 2, 5, 7."""
    frames = [Image.new('RGB', (8, 16), (20 * i, 0, 0)) for i in range(10)]
    for rule, expected in (('chunk', [0, 3, 6, 9]), ('uniform', [0, 2, 5, 7])):
        pre = Preprocessing(16, 8, kind='video', seq_len=4, frame_rule=rule)
        reader = ItemReader([frames], pre)
        reader._image = lambda im: pre.to_uint8(im)   # frames are PIL images here
        _, clip, err = reader[0]
        assert err is None and clip.shape == (4, 3, 16, 8)
        assert clip[:, 0, 0, 0].tolist() == [20 * i for i in expected]


def test_a_video_runs_clips_give_its_saved_pool_features(cli, tmp_path):
    """Clips as lists of frame paths and as tracklet folders: the frames the evaluation
    picks (video.seq_len, the dataset's frame rule), the features it saved."""
    from vireid_plugin.data.synthetic import make_hitsz_vcm
    from vireid_plugin.inference import list_clips
    root = str(tmp_path / 'data')
    make_hitsz_vcm(root, num_train=8, num_test=4, size=(64, 32))
    save_dir = str(tmp_path / 'vcm')
    assert cli.main(['--config-file', config_file('demo_vcm.yaml'), '--root',
                     root, 'data.save_dir', save_dir, 'data.synthetic', 'True',
                     'data.workers', '0', 'data.height', '64', 'data.width', '32',
                     'train.batch_size', '8', 'train.max_epoch', '1', 'video.seq_len', '3',
                     'test.eval_before_train', 'False', 'train.print_freq', '100']) == 0
    saved = load_features(os.path.join(save_dir, 'features.safetensors'))
    clips = next(iter(saved.targets.values()))
    ex = Extractor.from_run(save_dir)
    assert ex.pre.kind == 'video' and ex.pre.seq_len == 3
    got = ex([list(p) for p in clips.paths], modality=clips.modalities.tolist(),
             camid=clips.camids.tolist())
    assert float((got - clips.features).abs().max()) < 1e-6
    # a tracklet folder is a clip of its frames in natural order (2.jpg before 10.jpg), as
    # the dataset orders them
    folder = tmp_path / 'clips' / 'tracklet'
    folder.mkdir(parents=True)
    for p in clips.paths[0]:
        shutil.copy(p, folder / os.path.basename(p))
    assert list_clips(str(tmp_path / 'clips')) == [[str(folder / os.path.basename(p))
                                          for p in clips.paths[0]]]
    one = ex(str(folder), modality=int(clips.modalities[0]), camid=int(clips.camids[0]))
    assert float((one - clips.features[:1]).abs().max()) < 1e-5   # a batch of 1


def test_a_model_that_needs_the_modality_says_so(tmp_path, root):
    run = _fake_run(str(tmp_path / 'mip'), 'demo_mip.yaml')
    ex = Extractor.from_run(run)
    assert ex.needs_modality()
    img = os.path.join(root, 'SYSU-MM01', 'cam1')
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(img) for f in fs)[:2]
    with pytest.raises(MissingModalityError, match='modality'):
        ex(files)
    assert ex(files, modality='visible').shape[0] == 2
    out = tmp_path / 'r.json'
    rc = search_main([run, '--query', img, '--gallery', img, '--out', str(out)])
    assert rc == 1 and not out.exists()


# ---- 2. the gallery index ------------------------------------------------------------------
def test_index_saved_reopened_extended_and_refused_for_another_model(extractor, pool, tmp_path,
                                                                     run_dir):
    paths = list(pool.paths)
    index, skipped = GalleryIndex.build(extractor, paths[:40], pool.modalities[:40].tolist(),
                                        pool.camids[:40].tolist())
    path = str(tmp_path / 'g.index')
    index.save(path)
    again = GalleryIndex.open(path, extractor)
    assert again.paths == paths[:40] and torch.equal(again.features, pool.features[:40])
    assert again.modality.tolist() == pool.modalities[:40].tolist()
    again.add(extractor, paths[40:], pool.modalities[40:].tolist(), pool.camids[40:].tolist())
    again.save(path)
    assert float((GalleryIndex.open(path).features - pool.features).abs().max()) < 1e-6
    # another model (other weights) and another preprocessing: one message each
    other = _fake_run(str(tmp_path / 'other'), 'demo.yaml', **{'data.height': '64',
                                                                'data.width': '32'})
    with pytest.raises(IndexMismatchError, match='weights fingerprint differs'):
        GalleryIndex.open(path, Extractor.from_run(other))
    resized = Extractor.from_run(run_dir, preprocessing=Preprocessing(
        128, 64, norm_mean=(0.5,) * 3, norm_std=(0.5,) * 3))
    with pytest.raises(IndexMismatchError, match='preprocessing differs'):
        GalleryIndex.open(path, resized)
    with open(tmp_path / 'junk.index', 'wb') as f:
        f.write(b'not an index')
    with pytest.raises(InferenceInputError, match='not a gallery index'):
        GalleryIndex.open(str(tmp_path / 'junk.index'))


def _brute_force(q, g, k, metric):
    """Independent: float64 distances, a full stable sort."""
    q64, g64 = q.double(), g.double()
    if metric == 'cosine':
        d = 1 - torch.nn.functional.normalize(q64, dim=1) @ \
            torch.nn.functional.normalize(g64, dim=1).t()
    else:
        d = torch.cdist(q64, g64)
    order = torch.sort(d, dim=1, stable=True).indices[:, :k]
    return d.gather(1, order), order


@pytest.mark.parametrize('metric', ['euclidean', 'cosine'])
def test_exact_search_in_small_chunks_equals_a_full_sort(metric):
    g = torch.randn(103, 16, generator=torch.Generator().manual_seed(0))
    q = torch.randn(11, 16, generator=torch.Generator().manual_seed(1))
    d, i = exact_topk(q, g, 7, metric, query_chunk=4, gallery_chunk=10)
    ref_d, ref_i = _brute_force(q, g, 7, metric)
    assert torch.equal(i, ref_i)
    assert float((d.double() - ref_d).abs().max()) < 1e-5


@pytest.mark.parametrize('metric', ['euclidean', 'cosine'])
def test_search_by_modality_either_direction_faiss_and_reranking(extractor, pool, metric):
    index = GalleryIndex.for_extractor(extractor)
    index.dist_metric = metric   # the run's is cosine (vit_tiny_reid); both are searched
    index.add_features(pool.features, list(pool.paths), pool.modalities.tolist(),
                       pool.camids.tolist())
    q = pool.features[:5]
    for modality in (0, 1):
        rows = torch.nonzero(torch.as_tensor(pool.modalities) == modality).flatten()
        d, i = index.search(q, 6, modality=modality)
        ref_d, ref_i = _brute_force(q, pool.features[rows], 6, metric)
        # the same ranking up to float32 near-ties: each rank's distance is the reference's,
        # and the items agree wherever the reference's neighbouring distances are apart
        # (euclidean: squared, as sqrt magnifies the float32 expansion's rounding near 0,
        # e.g. a query that is also in the gallery)
        sq = (lambda x: x ** 2) if metric == 'euclidean' else (lambda x: x)
        assert float((sq(d.double()) - sq(ref_d)).abs().max()) < 1e-4
        apart = torch.ones_like(ref_d, dtype=torch.bool)
        gaps = (ref_d[:, 1:] - ref_d[:, :-1]) > 1e-4
        apart[:, 1:] &= gaps
        apart[:, :-1] &= gaps
        assert torch.equal(i[apart], rows[ref_i][apart])
        assert bool((torch.as_tensor(pool.modalities)[i] == modality).all())
        if _has_faiss():   # (squared: sqrt magnifies faiss's rounding near 0)
            fd, fi = index.search(q, 6, modality=modality, engine='faiss')
            assert torch.equal(fi[apart], i[apart])
            assert float((fd ** 2 - d ** 2).abs().max()) < 1e-4
    # re-ranking: torchreid's re_ranking on the full matrices, then a stable sort
    rows = torch.nonzero(torch.as_tensor(pool.modalities) == 0).flatten()
    g = pool.features[rows]

    def dist(a, b):
        return _brute_force(a, b, len(b), metric)[0].float().gather(
            1, torch.argsort(_brute_force(a, b, len(b), metric)[1], dim=1)).numpy()
    full = compat.utils.re_ranking(dist(q, g), dist(q, q), dist(g, g))
    d, i = index.search(q, 4, modality=0, rerank=True)
    ref = torch.sort(torch.as_tensor(full), dim=1, stable=True).indices[:, :4]
    assert torch.equal(i, rows[ref])
    with pytest.raises(InferenceInputError, match='over 10'):
        index.search(q, 4, modality=0, rerank=True, rerank_max_items=10)


def _has_faiss():
    try:
        import faiss  # noqa: F401
        return True
    except ImportError:
        return False


@pytest.mark.skipif(not _has_faiss(), reason='faiss not installed (pip install .[faiss])')
def test_faiss_top_k_equals_exact_on_random_features():
    from vireid_plugin.inference.index import faiss_topk
    g = torch.randn(500, 32, generator=torch.Generator().manual_seed(2))
    q = torch.randn(20, 32, generator=torch.Generator().manual_seed(3))
    for metric in ('euclidean', 'cosine', 'dot'):
        d, i = exact_topk(q, g, 10, metric)
        fd, fi = faiss_topk(q, g, 10, metric)
        assert torch.equal(fi, i) and float((fd - d).abs().max()) < 1e-4


# ---- 3. the command -----------------------------------------------------------------------
@pytest.fixture(scope='module')
def folders(root, tmp_path_factory):
    """Infrared queries (cam3) and a visible gallery (cam1, cam2) copied into new folders,
    nested one level deeper (folders are read recursively)."""
    base = tmp_path_factory.mktemp('folders')
    sysu = os.path.join(root, 'SYSU-MM01')
    shutil.copytree(os.path.join(sysu, 'cam3'), base / 'query' / 'cam3')
    for cam in ('cam1', 'cam2'):
        shutil.copytree(os.path.join(sysu, cam), base / 'gallery' / 'site' / cam)
    return str(base / 'query'), str(base / 'gallery')


def _files(folder):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(folder) for f in fs)


def test_search_command_results_json(run_dir, folders, tmp_path, extractor):
    query, gallery = folders
    out, page, idx = tmp_path / 'results.json', tmp_path / 'results.html', tmp_path / 'g.index'
    rc = search_main([run_dir, '--query', query, '--query-modality', 'infrared', '--gallery',
                      gallery, '--gallery-modality', 'visible', '--topk', '5', '--out',
                      str(out), '--html', str(page), '--index', str(idx)])
    assert rc == 0
    results = json.loads(out.read_text())
    gallery_files = _files(gallery)
    assert [q['path'] for q in results['queries']] == _files(query)
    # independent: the features of the files, a float64 full sort
    qf = extractor(_files(query), modality=1)
    gf = extractor(gallery_files, modality=0)
    assert extractor.dist_metric == 'cosine'   # the run's ranking (vit_tiny_reid: TransReID's)
    ref_d, ref_i = _brute_force(qf, gf, 5, extractor.dist_metric)
    for q, row_d, row_i in zip(results['queries'], ref_d, ref_i):
        assert [m['path'] for m in q['matches']] == [gallery_files[j] for j in row_i]
        dists = [m['distance'] for m in q['matches']]
        assert dists == sorted(dists)
        assert np.allclose(dists, row_d.numpy(), atol=1e-4)   # float32 vs float64
    assert results['query_modality'] == 'infrared' and results['skipped'] == []
    # reopened without extracting the gallery again; new files only are added
    shutil.copy(gallery_files[0], os.path.join(gallery, 'site', 'new.jpg'))
    rc = search_main([run_dir, '--query', query, '--query-modality', 'infrared', '--gallery',
                      gallery, '--gallery-modality', 'visible', '--out', str(out), '--index',
                      str(idx)])
    assert rc == 0 and len(GalleryIndex.open(str(idx))) == len(gallery_files) + 1
    os.remove(os.path.join(gallery, 'site', 'new.jpg'))
    # the other direction from the same index: infrared items added, visible queries
    rc = search_main([run_dir, '--query', gallery, '--query-modality', 'visible', '--gallery',
                      query, '--gallery-modality', 'infrared', '--topk', '3', '--out', str(out),
                      '--index', str(idx)])
    assert rc == 0
    both = GalleryIndex.open(str(idx))
    assert sorted(both.modality.tolist()) == [0] * (len(gallery_files) + 1) + [1] * len(
        _files(query))
    reverse = json.loads(out.read_text())
    assert reverse['gallery_modality'] == 'infrared'
    assert {m['path'] for q in reverse['queries'] for m in q['matches']} <= set(_files(query))


def test_bad_files_are_named_and_skipped_or_stop_the_command(run_dir, folders, tmp_path,
                                                             capsys):
    query, gallery = folders
    bad_gallery = tmp_path / 'gallery'
    shutil.copytree(gallery, bad_gallery)
    (bad_gallery / 'broken.jpg').write_bytes(b'not a jpeg')
    (bad_gallery / 'notes.txt').write_text('not an image: named and counted too')
    out = tmp_path / 'r.json'
    args = [run_dir, '--query', query, '--query-modality', 'ir', '--gallery', str(bad_gallery),
            '--gallery-modality', 'visible', '--out', str(out)]
    assert search_main(args) == 0
    err = capsys.readouterr().err
    assert 'broken.jpg' in err and 'notes.txt' in err and '2 file(s) skipped' in err
    results = json.loads(out.read_text())
    assert sorted(s['path'] for s in results['skipped']) == [
        str(bad_gallery / 'broken.jpg'), str(bad_gallery / 'notes.txt')]
    assert results['gallery_size'] == len(_files(gallery))
    out.unlink()
    assert search_main(args + ['--on-bad', 'stop']) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith('error: ') and 'broken.jpg' in err[-1] and not out.exists()


def test_user_errors_are_one_line_and_a_nonzero_exit(run_dir, folders, tmp_path, capsys):
    query, gallery = folders
    empty = tmp_path / 'empty'
    empty.mkdir()
    no_ckpt = tmp_path / 'no_ckpt'
    no_ckpt.mkdir()
    shutil.copy(os.path.join(run_dir, 'config.yaml'), no_ckpt / 'config.yaml')
    cases = [([run_dir, '--query', str(empty), '--gallery', gallery], 'no image files'),
             ([str(no_ckpt), '--query', query, '--gallery', gallery], 'no checkpoint'),
             ([run_dir, '--query', query, '--gallery', gallery, '--query-modality', 'uv'],
              "'uv'")]
    for argv, expected in cases:
        out = tmp_path / 'x.json'
        assert search_main(argv + ['--out', str(out)]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1].startswith('error: ') and expected in err[-1], err
        assert not out.exists()


def _chromium():
    for name in ('chromium', 'chromium-browser', 'google-chrome'):
        if shutil.which(name):
            return shutil.which(name)
    return None


@pytest.mark.skipif(_chromium() is None, reason='no headless browser (apt-get install chromium)')
def test_results_html_shows_every_thumbnail_in_a_real_browser(run_dir, folders, tmp_path):
    query, gallery = folders
    page = tmp_path / 'results.html'
    assert search_main([run_dir, '--query', query, '--query-modality', 'infrared', '--gallery',
                        gallery, '--gallery-modality', 'visible', '--topk', '3', '--out',
                        str(tmp_path / 'r.json'), '--html', str(page)]) == 0
    text = page.read_text()
    assert 'src="data:image/jpeg;base64,' in text and 'file:' not in text   # self-contained
    moved = tmp_path / 'elsewhere' / 'results.html'   # nothing beside it is needed
    moved.parent.mkdir()
    shutil.move(str(page), moved)
    done = subprocess.run([_chromium(), '--headless', '--no-sandbox', '--disable-gpu',
                           '--virtual-time-budget=5000', '--dump-dom', moved.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    n = len(_files(query)) * (1 + 3)
    assert 'data-images-loaded="{}"'.format(n) in done.stdout
    assert 'data-images-total="{}"'.format(n) in done.stdout
    assert done.stdout.count('<tr>') == len(_files(query))


# ---- 4. ONNX Runtime ----------------------------------------------------------------------
def test_onnx_backend_within_the_exports_tolerance(run_dir, pool, tmp_path):
    pytest.importorskip('onnxscript')
    pytest.importorskip('onnxruntime')
    from vireid_plugin.export.onnx import export_onnx
    from vireid_plugin.export.run import DEFAULT_ATOL
    ex = Extractor.from_run(run_dir)
    path = str(tmp_path / 'model.onnx')
    example = (torch.randn(2, 3, 64, 32), torch.tensor([0, 1]), torch.tensor([0, 1]))
    export_onnx(ex.model, path, example)
    onnx = Extractor.from_run(run_dir, backend='onnx', onnx_file=path)
    labels = dict(modality=pool.modalities.tolist(), camid=pool.camids.tolist())
    got = onnx(list(pool.paths), **labels)
    assert float((got - pool.features).abs().max()) <= DEFAULT_ATOL
    with pytest.raises(InferenceInputError, match='camera embedding'):
        onnx(list(pool.paths[:2]), modality=0)


# ---- 5. the benchmark section -------------------------------------------------------------
def test_inference_benchmark_section_quick():
    from vireid_plugin.benchmark.inference import bench_inference
    from vireid_plugin.benchmark.report import format_report
    result = bench_inference(os.path.join(REPO, 'configs'), quick=True, log=lambda *a: None)
    row = result['extraction'][0]
    assert row['images'] > 0 and row['plugin_images_per_s'] > 0
    assert row['speedup'] == pytest.approx(row['plugin_images_per_s']
                                           / row['torchreid_images_per_s'])
    exact = result['search'][0]
    assert exact['engine'] == 'exact' and exact['seconds'] > 0
    if _has_faiss():
        assert result['search'][1]['same_topk'] is True
    text = format_report({'header': {'device': 'cpu', 'torch': '', 'threads': 1, 'date': '',
                                     'command': ''}, 'inference': result})
    assert 'gallery search' in text and 'torchreid_images_per_s' in text


def test_search_script_is_thin_and_runs(run_dir, folders, tmp_path):
    query, gallery = folders
    done = subprocess.run([sys.executable, os.path.join(REPO, 'scripts', 'search.py'), run_dir,
                           '--query', query, '--gallery', gallery, '--topk', '2', '--out',
                           str(tmp_path / 'r.json')], capture_output=True, text=True,
                          timeout=300, cwd=REPO, env=dict(os.environ, PYTHONPATH=REPO,
                                                          OMP_NUM_THREADS='1'))
    assert done.returncode == 0, done.stderr[-2000:]
    assert len(json.loads((tmp_path / 'r.json').read_text())['queries'][0]['matches']) == 2
