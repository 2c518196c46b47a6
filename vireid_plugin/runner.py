"""A run from a config: what ``scripts/main.py`` trains and evaluates, as library functions.

The pieces of a run, each built from the config (fast-reid's ``build_*(cfg)``):

- ``build_data_manager(cfg, rank, world_size)``: the image or video data manager;
- ``build_reid_model(cfg, num_classes, num_cameras)``: ``cfg.model.name`` with its options;
- ``build_criterion(cfg, model, num_classes)``: the weighted loss terms (some own
  parameters, so they are built before the optimizer);
- ``build_solver(cfg, modules, iters_per_epoch, device)``: optimizer and LR schedule;
- ``build_engine(cfg, datamanager, model, criterion, optimizer, scheduler, use_gpu)``.

``run(cfg)`` is one run of a loaded config (process group, ``config.yaml`` and the log
file in ``data.save_dir``, the datasets, the pieces above in this order, resume,
``engine.run``); ``main(argv)`` is its command line (``scripts/main.py``): the flags,
``--resume``, one ``error: ...`` line and exit status 2 (config) or 1 (data, files) for
the errors a user can cause. ``scripts/export_onnx.py``, the benchmark and the figures
build their data manager and model with the same functions.
"""
import argparse
import os
import re
import sys
import tempfile
import time

import torch

from . import compat, distributed, plugins
from .checkpoint_io import atomic_write
from .config.checks import check_device
from .config import (ConfigError, engine_kwargs, engine_run_kwargs, imagedata_kwargs,
                     load_config, loss_kwargs, model_kwargs, optimizer_kwargs,
                     schedule_settings, scheduler_kwargs, videodata_kwargs)
from .data import CrossModalImageDataManager, CrossModalVideoDataManager, num_cameras
from .data.prepare import check_real_data, prepare_datasets
from .data.seeded import seed_cuda
from .engine import (PREEMPTED_EXIT_STATUS, CheckpointError, CrossModalEngine, Preempted,
                     load_checkpoint, resume_target, run_prompt_stage)
from .engine.checkpoint import CheckpointManager, check_training_checkpoint
from .engine.precision import prompt_stage_precision
from .engine.save_dir import check_save_dir
from .errors import UserError
from .losses import build_loss
from .models import build_model, load_weights
from .models.build import check_pretrained
from .models.load import STRICT_HINT, check_weights_fit
from .optim import build_lr_scheduler, build_optimizer

#: the run's config, written beside its results (scripts/visualize.py rebuilds the model from it)
CONFIG_FILE = 'config.yaml'

__all__ = ['build_data_manager', 'build_reid_model', 'build_criterion', 'build_solver',
           'build_engine', 'run', 'main', 'build_parser', 'split_resume', 'user_message']

DESCRIPTION = 'Train and evaluate visible-infrared ReID models with torchreid.'


# ---- the pieces of a run ---------------------------------------------------------------
def build_data_manager(cfg, rank=0, world_size=1):
    """The data manager of ``cfg.data.type`` (image or video); ``rank``/``world_size``:
    this process's share of each training batch under torchrun."""
    video = cfg.data.type == 'video'
    kwargs = videodata_kwargs(cfg) if video else imagedata_kwargs(cfg)
    kwargs.update(num_replicas=world_size, rank=rank)
    return (CrossModalVideoDataManager if video else CrossModalImageDataManager)(**kwargs)


def build_reid_model(cfg, num_classes, num_cameras, **overrides):
    """``cfg.model.name`` for ``num_classes`` training ids and ``num_cameras`` cameras (SIE);
    ``overrides`` replace builder keywords (e.g. ``pretrained=False``)."""
    kwargs = model_kwargs(cfg, num_cameras)
    kwargs.update(overrides)
    return build_model(cfg.model.name, num_classes, **kwargs)


def build_criterion(cfg, model, num_classes):
    """The weighted loss terms of ``loss.terms`` (a module: terms may own parameters)."""
    names, weights, options = loss_kwargs(cfg)
    return build_loss(names, weights, options, num_classes=num_classes, model=model)


def build_solver(cfg, modules, iters_per_epoch, device=None):
    """(optimizer, LR scheduler) over the trainable parameters of ``modules`` (model and
    loss terms, already on ``device``)."""
    optimizer = build_optimizer(list(modules), device=device, **optimizer_kwargs(cfg))
    return optimizer, build_lr_scheduler(optimizer, iters_per_epoch, **scheduler_kwargs(cfg))


def build_engine(cfg, datamanager, model, criterion, optimizer, scheduler, use_gpu):
    """``CrossModalEngine`` with the config's training and evaluation settings."""
    return CrossModalEngine(
        datamanager, model, optimizer, criterion, scheduler=scheduler, use_gpu=use_gpu,
        schedule=schedule_settings(cfg, len(datamanager.train_loader)), **engine_kwargs(cfg))


# ---- one run -----------------------------------------------------------------------------
class TeeLogger(compat.utils.Logger):
    """torchreid's console + file logger, except that closing it leaves the console open."""

    def close(self):
        if self.file is not None:
            self.file.close()
            self.file = None


def check_writable(folder):
    """data.save_dir must take files: found before training, not at the first checkpoint."""
    try:
        os.makedirs(folder, exist_ok=True)
        # as long a name as the run's longest (log, checkpoint, features, temporaries): a
        # folder path too long for them is refused here, not when the log is opened
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix='.write-test-', suffix='-' * 60)
        probe.close()
    except OSError as exc:
        raise ConfigError('data.save_dir {} is not writable ({}); choose another folder'.format(
            folder, exc.strerror or exc)) from None


def preflight(cfg, main_rank=True):
    """What can be found wrong before any data is read or anything written (each one
    line): a checkpoint to load that is missing, unreadable or of another model (its keys
    and shapes against the model's, built bare on the CPU), pretrained weights that are
    neither at model.pretrained_path nor cached nor downloadable now, a synthetic tree
    where a run wants the real data, a save dir holding another run."""
    path = cfg.model.pretrained_path
    if cfg.model.pretrained and path and not os.path.isfile(os.path.expanduser(path)):
        raise CheckpointError('model.pretrained_path: file not found: {} (python '
                              'scripts/download_weights.py fetches the weights; '
                              'docs/data-and-weights.md)'.format(path))
    if cfg.model.pretrained and not path:
        check_pretrained(cfg.model.name, **model_kwargs(cfg, 0))
    for key, path, strict, hint in (
            ('model.load_weights', cfg.model.load_weights, cfg.model.load_weights_strict,
             STRICT_HINT),
            ('model.resume', cfg.model.resume, True,
             'a run resumes with the model.name and options of the run that wrote it '
             '(its config.yaml)')):
        if not path:
            continue
        try:   # read again where it is used; a bad or foreign file stops here
            if key == 'model.resume' and path == 'auto':
                # the newest good checkpoint, if any (the resume reports skipped ones)
                path, ckpt = CheckpointManager(cfg.data.save_dir).latest_good(
                    log=lambda message: None)
                if path is None:
                    continue
            else:   # keys and shapes are all this looks at: the tensors stay in the file
                ckpt = load_checkpoint(path, mmap=True)
            if key == 'model.resume':
                check_training_checkpoint(ckpt, path)
            check_weights_fit(lambda classes, cameras: build_reid_model(
                cfg, classes, cameras, pretrained=False, pretrained_path=''),
                path, strict=strict, hint=hint, name=cfg.model.name, ckpt=ckpt)
        except CheckpointError as exc:
            raise CheckpointError('{}: {}'.format(key, exc)) from None
    check_real_data(cfg)
    # a worker restarted by torchrun resumes by itself (resume_target)
    restarted = int(os.environ.get('TORCHELASTIC_RESTART_COUNT', '0') or 0) > 0
    check_save_dir(cfg.data.save_dir, resume=bool(cfg.model.resume) or restarted,
                   evaluate=cfg.test.evaluate, start_over=cfg.data.start_over, move=main_rank)


def run(cfg):
    """Train and/or evaluate as ``cfg`` says; returns the engine. Replaces ``sys.stdout``
    with the run's log (``main`` puts it back)."""
    # torchrun's variables -> process group (a plain run stays one process)
    dist_info = distributed.init_distributed(cfg.use_gpu)
    main_rank = dist_info.rank == 0
    check_device(cfg, dist_info.device)   # fp16 on a CPU: refused before any data work
    preflight(cfg, main_rank)
    distributed.barrier()   # a run moved aside (--start-over) is gone for every rank
    check_writable(cfg.data.save_dir)
    if main_rank:
        # the run's config beside its results: scripts/visualize.py rebuilds the model from it
        atomic_write(os.path.join(cfg.data.save_dir, CONFIG_FILE),
                     lambda f: f.write(cfg.dump()), mode='w')
    compat.utils.set_random_seed(cfg.train.seed)   # the same on every rank
    # ... except the CUDA stream (dropout, drop path): seed + rank, rank 0 keeps the seed
    seed_cuda(cfg.train.seed, dist_info.rank, dist_info.device)
    if cfg.num_threads > 0:   # e.g. 1 on a small shared CPU: threads > free cores spin
        torch.set_num_threads(cfg.num_threads)
    log_name = 'test.log' if cfg.test.evaluate else 'train.log'
    if main_rank:
        sys.stdout = TeeLogger(os.path.join(
            cfg.data.save_dir, log_name + time.strftime('-%Y-%m-%d-%H-%M-%S')))
    else:   # one log: rank 0's (errors still reach stderr)
        sys.stdout = open(os.devnull, 'w')
    print('Config:\n{}'.format(cfg))
    device = dist_info.device
    use_gpu = device.type == 'cuda'
    print('torch {} | device: {}{}'.format(
        torch.__version__, torch.cuda.get_device_name(device) if use_gpu else 'cpu',
        ' | {} processes ({}), global batch {}'.format(
            dist_info.world_size, dist_info.backend, cfg.train.batch_size)
        if dist_info.world_size > 1 else ''))
    if use_gpu:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True

    if dist_info.local_rank == 0:   # one writer per node (synthetic data)
        prepare_datasets(cfg)
    distributed.barrier()
    datamanager = build_data_manager(cfg, dist_info.rank, dist_info.world_size)
    model = build_reid_model(cfg, datamanager.num_train_pids, num_cameras(datamanager))
    print('Model: {} ({:.2f}M parameters)'.format(
        cfg.model.name, sum(p.numel() for p in model.parameters()) / 1e6))
    if cfg.model.load_weights:
        print(load_weights(model, cfg.model.load_weights,
                           strict=cfg.model.load_weights_strict).summary())
    model = model.to(device)  # optimizer state follows the params
    resume = resume_target(cfg.model.resume, cfg.data.save_dir)
    if not cfg.test.evaluate and not resume:
        # a model with learnable prompts may ask for a prompt-only first stage (LSMRL)
        # fp16 without loss scaling would underflow the prompts' gradients: fp32 there
        run_prompt_stage(model, datamanager, device,
                         prompt_stage_precision(cfg.train.amp, device).autocast,
                         workers=cfg.data.workers, seed=cfg.train.seed)
    criterion = build_criterion(cfg, model, datamanager.num_train_pids).to(device)
    optimizer, scheduler = build_solver(cfg, [model, criterion], len(datamanager.train_loader),
                                        device)
    engine = build_engine(cfg, datamanager, model, criterion, optimizer, scheduler, use_gpu)
    run_kwargs = engine_run_kwargs(cfg)
    if resume:
        run_kwargs['start_epoch'] = engine.resume(
            resume, cfg.data.save_dir, cfg.train.resume_rebuild_schedule,
            fresh_optimizer=cfg.train.resume_fresh_optimizer)
        done = engine.start_epoch >= cfg.train.max_epoch and not engine._start_iteration
        if done and not cfg.test.evaluate:
            print('=> {} has trained all {} epochs of train.max_epoch: nothing to train '
                  '(raise train.max_epoch to train further; test.evaluate True '
                  'model.load_weights CHECKPOINT data.save_dir OTHER evaluates it)'.format(
                      cfg.data.save_dir, cfg.train.max_epoch))
            return engine
    engine.run(**run_kwargs)
    return engine


# ---- the command line --------------------------------------------------------------------
def build_parser():
    p = argparse.ArgumentParser(description=DESCRIPTION,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config-file', type=str, default='', help='path to a config file')
    p.add_argument('-s', '--sources', type=str, nargs='+', help='source datasets')
    p.add_argument('-t', '--targets', type=str, nargs='+', help='target datasets')
    p.add_argument('--transforms', type=str, nargs='+', help='data augmentation')
    p.add_argument('--root', type=str, default='', help='root path to data directory')
    p.add_argument('--resume', nargs='?', const='auto', default=None, metavar='PATH',
                   help='continue a run: from PATH, or (no PATH) from the newest good '
                        'checkpoint in data.save_dir (= model.resume PATH|auto)')
    p.add_argument('--start-over', action='store_true',
                   help='data.save_dir holds another run: move it aside to '
                        '<save_dir>.old-<time> and start again (= data.start_over True)')
    plugins.add_argument(p)   # --plugin MODULE: datasets of your own
    p.add_argument('opts', default=None, nargs=argparse.REMAINDER,
                   help='modify config options using the command line (KEY VALUE ...)')
    return p


#: KEY VALUE overrides appended to every command line of ``main`` (the docs test runs each
#: documented command with tiny settings this way; docs/getting-started.md)
ENV_OPTS = 'VIREID_OPTS'


def env_overrides(env=None):
    """The words of ``$VIREID_OPTS`` (announced on stderr when set)."""
    words = (os.environ if env is None else env).get(ENV_OPTS, '').split()
    if words:
        print('=> {} adds: {}'.format(ENV_OPTS, ' '.join(words)), file=sys.stderr)
    return words


def split_resume(opts):
    """``--resume [PATH]`` written after the KEY VALUE overrides (argparse hands it over with
    them): (the overrides without it, 'auto' or PATH or None). The overrides come in pairs,
    so an odd count left means the word after the flag is its PATH."""
    if '--resume' not in opts:
        return opts, None
    i = opts.index('--resume')
    rest = opts[:i] + opts[i + 1:]
    if len(rest) % 2 and i < len(opts) - 1:
        return opts[:i] + opts[i + 2:], opts[i + 1]
    return rest, 'auto'


_KEY = re.compile(r'^[A-Za-z_]\w*(\.\w+)+$')


def split_list_overrides(args):
    """``-t regdb test.evaluate True``: argparse gives every word after ``-s``/``-t``/
    ``--transforms`` to that flag. A word shaped like a config key (``section.key``; no
    dataset or transform name has a dot) and what follows it are the KEY VALUE overrides:
    moved in front of ``args.opts``."""
    for attr in ('sources', 'targets', 'transforms'):
        values = getattr(args, attr) or []
        cut = next((i for i, v in enumerate(values) if _KEY.match(v)), None)
        if cut is not None:
            args.opts = values[cut:] + list(args.opts or [])
            setattr(args, attr, values[:cut] or None)
    return args


def user_message(exc):
    """One line for the user: an error re-raised from a DataLoader worker carries the
    worker's whole traceback in its message; its last line is the original message."""
    msg = str(exc)
    if 'Original Traceback' in msg:
        last = [line for line in msg.splitlines() if line.strip()][-1]
        msg = last.split(': ', 1)[-1] if last.startswith(type(exc).__name__) else last
    return msg


def main(argv=None):
    """``scripts/main.py``: returns the exit status (0; 1 data or files; 2 config;
    ``PREEMPTED_EXIT_STATUS`` when a pre-emption signal stopped the run after a checkpoint)."""
    args = split_list_overrides(build_parser().parse_args(argv))
    stdout = sys.stdout
    try:
        opts, resume_flag = split_resume(list(args.opts or ()) + env_overrides())
        resume_flag = resume_flag or args.resume
        if resume_flag:
            opts += ['model.resume', resume_flag]
        if args.start_over or '--start-over' in opts:   # also written after the overrides
            opts = [o for o in opts if o != '--start-over'] + ['data.start_over', 'True']
        plugins.load(args.plugin)   # before the config: their sections' keys
        cfg = load_config(args.config_file, opts, sources=args.sources,
                          targets=args.targets, root=args.root, transforms=args.transforms)
        run(cfg)
    except Preempted as exc:   # a resumable checkpoint is written: the scheduler requeues
        print('=> {}'.format(exc), file=sys.stderr)
        return PREEMPTED_EXIT_STATUS
    except UserError as exc:
        if not getattr(exc, 'quiet', False):   # quiet: another rank prints it
            print('error: {}'.format(user_message(exc)), file=sys.stderr)
        return 2 if isinstance(exc, ConfigError) else 1
    finally:
        if sys.stdout is not stdout:
            sys.stdout.close()
            sys.stdout = stdout
        distributed.shutdown()
    return 0


if __name__ == '__main__':
    sys.exit(main())
