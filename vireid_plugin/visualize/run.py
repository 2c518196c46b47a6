"""Every figure of a finished run, from its saved features, results and checkpoint.

``visualize_run(run_dir)`` reads what ``scripts/main.py`` left in ``data.save_dir``:

- ``features.safetensors`` (and ``features-untrained.safetensors`` when the run had
  ``test.eval_before_train``): ranked lists of every mode, t-SNE before/after;
- ``results.json`` (of this run and of the runs to compare): CMC curves;
- ``config.yaml`` and the newest checkpoint in ``model/`` (or the config's
  ``model.load_weights`` for an evaluation-only run): attention maps and, for MIP,
  the t-SNE of the generated instance prompts.

Each figure becomes ``<run_dir>/figures/<name>.png`` and an image in the run's
TensorBoard log (tag ``Figures/...``). Names made from the run's files (target and mode
names) are reduced to one safe file-name component and every PNG path is checked to
resolve inside the figures folder (``safe_paths``): a run folder someone sent cannot
make this write elsewhere. Figures whose inputs are missing are skipped
with a line saying what is missing.
"""
import argparse
import contextlib
import io
import os
import sys

import numpy as np
import torch

from .. import compat
from ..checkpoint_io import load_checkpoint, state_dict_of
from ..data.frames import sample_frame_indices
from ..data.io import read_image
from ..engine.checkpoint import CheckpointManager
from ..engine.evaluation import RESULTS_FILE, recorded_distance, tag_safe
from ..engine.saved_features import FEATURES_FILE, UNTRAINED_FEATURES_FILE, load_features
from ..errors import UserError
from ..metrics.distance import DISTANCES
from ..models import load_weights
from ..runner import CONFIG_FILE, build_reid_model
from ..safe_paths import path_under, safe_component
from . import FIGURES_DIR
from .attention import attention_figure, attention_maps, has_attention_layout
from .cmc import cmc_figure
from .common import pyplot, save_png, thumbnail
from .prompts import has_instance_prompts, instance_prompt_vectors
from .ranked import ranked_list_figure
from .tsne import select_identities, tsne_figure

__all__ = ['CONFIG_FILE', 'FIGURES_DIR', 'visualize_run', 'load_run_model', 'read_run_config',
           'main']


def read_run_config(run_dir, config_file=''):
    """The run's config (``config_file`` or ``<run_dir>/config.yaml``), or None."""
    from ..config import load_config
    path = config_file or os.path.join(run_dir, CONFIG_FILE)
    if not os.path.isfile(path):
        if config_file:
            raise ValueError('config file not found: {}'.format(config_file))
        return None
    return load_config(path)


def run_checkpoint(run_dir, cfg):
    """The newest good checkpoint of the run, else the config's ``model.load_weights``."""
    path, _ = CheckpointManager(run_dir).latest_good()
    if path is None and cfg is not None and cfg.model.load_weights:
        path = cfg.model.load_weights
    return path


def load_run_model(cfg, checkpoint, device='cpu'):
    """Build ``cfg.model.name`` with the class and camera counts of ``checkpoint`` and
    load it strictly (no ImageNet download: the checkpoint holds every weight)."""
    state = state_dict_of(load_checkpoint(checkpoint), checkpoint)
    classes = [v.shape[0] for k, v in state.items() if k.endswith('classifier.weight')]
    if not classes:
        raise ValueError('{} holds no classifier weights: not a checkpoint of this '
                         'plugin\'s models'.format(checkpoint))
    sie = state.get('backbone.sie_embed')
    model = build_reid_model(cfg, max(classes), int(sie.shape[0]) if sie is not None else 0,
                             pretrained=False, pretrained_path='')
    load_weights(model, checkpoint)
    return model.to(device).eval()


def _test_transform(cfg):
    with contextlib.redirect_stdout(io.StringIO()):   # torchreid lists its transforms
        _, transform_te = compat.transforms.build_transforms(
            cfg.data.height, cfg.data.width, transforms=None,
            norm_mean=list(cfg.data.norm_mean), norm_std=list(cfg.data.norm_std))
    return transform_te


def load_inputs(pool, indices, cfg):
    """Model inputs (B, C, H, W) or (B, T, C, H, W) of pool items, as the test reads them,
    and their frames as (H, W, 3) uint8 lists for drawing."""
    transform = _test_transform(cfg)
    size = (cfg.data.height, cfg.data.width)
    tensors, frames = [], []
    for i in indices:
        path = pool.paths[i]
        if isinstance(path, (tuple, list)):
            rule = pool.reader.get('frame_rule', 'chunk')
            seq_len = int(pool.reader.get('seq_len', cfg.video.seq_len))
            chosen = [path[int(j)] for j in sample_frame_indices(len(path), seq_len,
                                                                 train=False, rule=rule)]
            tensors.append(torch.stack([transform(read_image(p)) for p in chosen]))
            frames.append([thumbnail(p, size) for p in chosen])
        else:
            tensors.append(transform(read_image(path)))
            frames.append([thumbnail(path, size)])
    return torch.stack(tensors), frames


def _labels(pool, indices):
    return torch.as_tensor(pool.modalities[indices]), torch.as_tensor(pool.camids[indices])


def _distinct_pools(features):
    """(target name, pool) once per stored pool (targets sharing a pool are drawn once)."""
    seen, out = set(), []
    for name, pool in features.targets.items():
        if id(pool.features) not in seen:
            seen.add(id(pool.features))
            out.append((name, pool))
    return out


def _attention_samples(pool, per_modality, seed):
    """``per_modality`` items of each modality, of distinct identities where possible."""
    rng = np.random.default_rng(seed)
    chosen = []
    for m in (0, 1):
        idx = np.flatnonzero(pool.modalities == m)
        if len(idx) == 0:
            continue
        _, first = np.unique(pool.pids[idx], return_index=True)
        distinct = idx[first]
        pick = distinct if len(distinct) >= per_modality else idx
        chosen.extend(np.sort(rng.choice(pick, size=min(per_modality, len(pick)),
                                         replace=False)).tolist())
    return np.asarray(chosen, dtype=np.int64)


def visualize_run(run_dir, compare=(), config_file='', checkpoint='', out_dir='',
                  num_queries=6, topk=10, num_ids=10, attention_per_modality=3, seed=0,
                  device='cpu', tensorboard=True, log=print):
    """Draw every figure of ``run_dir``; returns {TensorBoard tag: PNG path}.

    compare: other run directories (or results.json files) whose CMC curves join this
    run's on one plot.
    """
    if not os.path.isdir(run_dir):
        raise ValueError('run directory not found: {}'.format(run_dir))
    # the folder given (--out), or the run's figures/ folder, which must not be a link
    # leading out of the run folder (a run folder may come from someone else)
    out_dir = out_dir or path_under(run_dir, FIGURES_DIR)
    cfg = read_run_config(run_dir, config_file)
    configured = cfg.test.dist_metric if cfg is not None else 'euclidean'
    written, figures = {}, []

    def emit(tag, fig, name, step=0):
        # names hold target and mode names read from the run's files: one safe component
        written[tag] = save_png(fig, path_under(out_dir, safe_component(name) + '.png'))
        figures.append((tag, fig, step))

    # ---- ranked lists and t-SNE: the saved features ----------------------------------
    feats_path = os.path.join(run_dir, FEATURES_FILE)
    features = load_features(feats_path) if os.path.isfile(feats_path) else None
    untrained_path = os.path.join(run_dir, UNTRAINED_FEATURES_FILE)
    untrained = load_features(untrained_path) if os.path.isfile(untrained_path) else None
    if features is None:
        log('=> No {} in {}: ranked lists, t-SNE and attention maps need an evaluation by '
            'this version of the engine'.format(FEATURES_FILE, run_dir))
    else:
        for name, pool in features.targets.items():
            # rank as the run's evaluation did: the distance its results name (runs older
            # than that record: the configured one; Euclidean was 'auto''s only meaning)
            dist_metric = recorded_distance(run_dir, name) or (
                configured if configured in DISTANCES else 'euclidean')
            for mode in pool.modes:
                fig, _ = ranked_list_figure(pool.features, pool.pids, pool.camids, pool.paths,
                                            mode, num_queries, topk, seed, dist_metric,
                                            thumb=(128, 64),
                                            title='{}: {} (trial 0)'.format(name, mode.name))
                emit('Figures/{}/ranked/{}'.format(name, tag_safe(mode.name)), fig,
                     'ranked_{}_{}'.format(name, tag_safe(mode.name)), features.epoch)
        for name, pool in _distinct_pools(features):
            chosen = select_identities(pool.pids, pool.modalities, num_ids, seed)
            panels = []
            before = untrained.targets.get(name) if untrained is not None else None
            if before is not None and len(before.features) == len(pool.features):
                panels.append(('before training', before.features[chosen].numpy()))
            panels.append(('after training' if features.stage != 'untrained' else 'features',
                           pool.features[chosen].numpy()))
            fig = tsne_figure(panels, pool.pids[chosen], pool.modalities[chosen], seed,
                              title='{}: t-SNE of test features ({} identities)'.format(
                                  name, len(set(pool.pids[chosen].tolist()))))
            emit('Figures/{}/tsne'.format(name), fig, 'tsne_{}'.format(name), features.epoch)

    # ---- CMC curves: results.json of this run and the compared ones ------------------
    runs = []
    for d in (run_dir,) + tuple(compare):
        path = d if d.endswith('.json') else os.path.join(d, RESULTS_FILE)
        if os.path.isfile(path):
            runs.append((os.path.basename(os.path.normpath(d if not d.endswith('.json')
                                                           else os.path.dirname(d))), path))
        else:
            log('=> No {} for the CMC curves'.format(path))
    if runs:
        try:
            fig, _ = cmc_figure(runs)
            emit('Figures/cmc', fig, 'cmc')
        except ValueError as exc:   # no trained-model evaluation in a file
            log('=> CMC curves skipped: {}'.format(exc))

    # ---- attention maps and MIP's instance prompts: the model ------------------------
    ckpt = checkpoint or run_checkpoint(run_dir, cfg)
    model = None
    if cfg is None or not ckpt or features is None:
        log('=> Attention maps skipped: they need {}, a checkpoint and {} in {}'.format(
            CONFIG_FILE, FEATURES_FILE, run_dir))
    else:
        model = load_run_model(cfg, ckpt, device)
        if not has_attention_layout(model):
            log('=> Attention maps skipped: {} declares no attention_spec()'.format(
                cfg.model.name))
            model = None
    if model is not None:
        for name, pool in _distinct_pools(features):
            idx = _attention_samples(pool, attention_per_modality, seed)
            inputs, frames = load_inputs(pool, idx, cfg)
            modality, camid = _labels(pool, idx)
            maps, shares = attention_maps(model, inputs.to(device), modality.to(device),
                                          camid.to(device))
            prompt_shares = {g: v for g, v in shares.items() if 'prompts' in g}
            labels = ['{} id {}'.format('IR' if m else 'VIS', int(p))
                      for m, p in zip(pool.modalities[idx], pool.pids[idx])]
            fig = attention_figure(frames, maps, labels, prompt_shares or None,
                                   title='{}: CLS attention, last block ({})'.format(
                                       name, cfg.model.name))
            emit('Figures/{}/attention'.format(name), fig, 'attention_{}'.format(name),
                 features.epoch)
            if has_instance_prompts(model):
                chosen = select_identities(pool.pids, pool.modalities, num_ids, seed)
                vectors = []
                for start in range(0, len(chosen), 64):
                    part = chosen[start:start + 64]
                    x, _ = load_inputs(pool, part, cfg)
                    m, c = _labels(pool, part)
                    vectors.append(instance_prompt_vectors(model, x.to(device), m.to(device),
                                                           c.to(device)))
                fig = tsne_figure([('instance prompts (last prompted layer)',
                                    torch.cat(vectors).numpy())],
                                  pool.pids[chosen], pool.modalities[chosen], seed,
                                  title='{}: t-SNE of generated instance prompts'.format(name))
                emit('Figures/{}/tsne_instance_prompts'.format(name), fig,
                     'tsne_instance_prompts_{}'.format(name), features.epoch)

    if tensorboard and figures:
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(log_dir=run_dir, filename_suffix='.figures')
        for tag, fig, step in figures:
            writer.add_figure(tag, fig, global_step=step, close=True)
        writer.close()
    else:
        for _, fig, _ in figures:
            pyplot().close(fig)
    return written


# ---- the command line (scripts/visualize.py) ---------------------------------------------
def build_parser():
    p = argparse.ArgumentParser(
        description='Draw every figure of a finished run (PNG files and TensorBoard images).',
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('run_dir', help="a run's data.save_dir")
    p.add_argument('--compare', nargs='+', default=[], metavar='RUN',
                   help='other run directories (or results.json files) for the CMC plot')
    p.add_argument('--config-file', default='', help='config of the run (default '
                                                     'RUN_DIR/config.yaml)')
    p.add_argument('--checkpoint', default='', help='weights for the attention maps '
                                                    '(default: the newest in RUN_DIR/model)')
    p.add_argument('--out', default='', help='folder of the PNGs (default RUN_DIR/figures)')
    p.add_argument('--queries', type=int, default=6, help='queries per ranked-list figure')
    p.add_argument('--topk', type=int, default=10, help='gallery items per query')
    p.add_argument('--ids', type=int, default=10, help='identities in the t-SNE plots')
    p.add_argument('--seed', type=int, default=0, help='sampling of queries and identities')
    p.add_argument('--device', default='cpu', help='device of the attention forward')
    p.add_argument('--no-tensorboard', action='store_true', help='PNG files only')
    return p


def main(argv=None):
    """``scripts/visualize.py``: prints each PNG written; exit status 1 on missing run files."""
    args = build_parser().parse_args(argv)
    try:
        written = visualize_run(args.run_dir, compare=args.compare,
                                config_file=args.config_file, checkpoint=args.checkpoint,
                                out_dir=args.out, num_queries=args.queries, topk=args.topk,
                                num_ids=args.ids, seed=args.seed, device=args.device,
                                tensorboard=not args.no_tensorboard)
    except (UserError, ValueError) as exc:   # missing run files: one message
        print('error: {}'.format(exc), file=sys.stderr)
        return 1
    for tag, path in written.items():
        print('{}  ({})'.format(path, tag))
    return 0


if __name__ == '__main__':
    sys.exit(main())
