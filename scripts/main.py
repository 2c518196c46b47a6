#!/usr/bin/env python
"""Train and evaluate visible-infrared ReID models with torchreid.

    python scripts/main.py --config-file configs/vit_sysu.yaml [-s ...] [-t ...]
        [--root DIR] [--transforms ...] [KEY VALUE ...]

Same command line as torchreid's scripts/main.py; trailing KEY VALUE pairs
override config keys (e.g. ``train.max_epoch 10 test.protocol_matrix True``).
Several GPUs (or CPU processes): ``torchrun --nproc_per_node N scripts/main.py ...``
(README, "Multi-GPU"); rank 0 prints, logs and writes checkpoints.
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

import vireid_plugin  # noqa: E402,F401  (registers datasets and models)
from vireid_plugin import compat, distributed  # noqa: E402
from vireid_plugin.checkpoint_io import atomic_write  # noqa: E402
from vireid_plugin.visualize import CONFIG_FILE  # noqa: E402
from vireid_plugin.config import (ConfigError, engine_kwargs, engine_run_kwargs,  # noqa: E402
                                  imagedata_kwargs, load_config, loss_kwargs, model_kwargs,
                                  optimizer_kwargs, schedule_settings, scheduler_kwargs,
                                  videodata_kwargs)
from vireid_plugin.data import (CrossModalImageDataManager, CrossModalVideoDataManager,  # noqa: E402
                                num_cameras)
from vireid_plugin.data.prepare import prepare_datasets  # noqa: E402
from vireid_plugin.engine import (PREEMPTED_EXIT_STATUS, CrossModalEngine, Precision,  # noqa: E402
                                  Preempted, resume_target, run_prompt_stage)
from vireid_plugin.errors import USER_ERRORS  # noqa: E402
from vireid_plugin.losses import build_loss  # noqa: E402
from vireid_plugin.models import build_model, load_weights  # noqa: E402
from vireid_plugin.optim import build_lr_scheduler, build_optimizer  # noqa: E402


def build_parser():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--config-file', type=str, default='', help='path to a config file')
    p.add_argument('-s', '--sources', type=str, nargs='+', help='source datasets')
    p.add_argument('-t', '--targets', type=str, nargs='+', help='target datasets')
    p.add_argument('--transforms', type=str, nargs='+', help='data augmentation')
    p.add_argument('--root', type=str, default='', help='root path to data directory')
    p.add_argument('--resume', nargs='?', const='auto', default=None, metavar='PATH',
                   help='continue a run: from PATH, or (no PATH) from the newest good '
                        'checkpoint in data.save_dir (= model.resume PATH|auto)')
    vireid_plugin.plugins.add_argument(p)   # --plugin MODULE: datasets of your own
    p.add_argument('opts', default=None, nargs=argparse.REMAINDER,
                   help='modify config options using the command line (KEY VALUE ...)')
    return p


class TeeLogger(compat.utils.Logger):
    """torchreid's console + file logger, except that closing it leaves the console open."""

    def close(self):
        if self.file is not None:
            self.file.close()
            self.file = None


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


def user_message(exc):
    """One line for the user: an error re-raised from a DataLoader worker carries the
    worker's whole traceback in its message; its last line is the original message."""
    msg = str(exc)
    if 'Original Traceback' in msg:
        last = [line for line in msg.splitlines() if line.strip()][-1]
        msg = last.split(': ', 1)[-1] if last.startswith(type(exc).__name__) else last
    return msg


def check_writable(folder):
    """data.save_dir must take files: found before training, not at the first checkpoint."""
    try:
        os.makedirs(folder, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=folder, prefix='.write-test-')
        probe.close()
    except OSError as exc:
        raise ConfigError('data.save_dir {} is not writable ({}); choose another folder'.format(
            folder, exc.strerror or exc)) from None


def run(cfg):
    # torchrun's variables -> process group (a plain run stays one process)
    dist_info = distributed.init_distributed(cfg.use_gpu)
    main_rank = dist_info.rank == 0
    check_writable(cfg.data.save_dir)
    if main_rank:
        # the run's config beside its results: scripts/visualize.py rebuilds the model from it
        atomic_write(os.path.join(cfg.data.save_dir, CONFIG_FILE),
                     lambda f: f.write(cfg.dump()), mode='w')
    compat.utils.set_random_seed(cfg.train.seed)   # the same on every rank
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
    data_kwargs = videodata_kwargs(cfg) if cfg.data.type == 'video' else imagedata_kwargs(cfg)
    data_kwargs.update(num_replicas=dist_info.world_size, rank=dist_info.rank)
    if cfg.data.type == 'video':
        datamanager = CrossModalVideoDataManager(**data_kwargs)
    else:
        datamanager = CrossModalImageDataManager(**data_kwargs)

    model = build_model(cfg.model.name, datamanager.num_train_pids,
                        **model_kwargs(cfg, num_cameras(datamanager)))
    print('Model: {} ({:.2f}M parameters)'.format(
        cfg.model.name, sum(p.numel() for p in model.parameters()) / 1e6))
    if cfg.model.load_weights:
        print(load_weights(model, cfg.model.load_weights,
                           strict=cfg.model.load_weights_strict).summary())
    model = model.to(device)  # optimizer state follows the params
    resume = resume_target(cfg.model.resume, cfg.data.save_dir)
    if not cfg.test.evaluate and not resume:
        # a model with learnable prompts may ask for a prompt-only first stage (LSMRL)
        run_prompt_stage(model, datamanager, device, Precision(cfg.train.amp, device).autocast,
                         workers=cfg.data.workers, seed=cfg.train.seed)

    # loss terms may own parameters (IAEL's heads): built before the optimizer
    names, weights, options = loss_kwargs(cfg)
    criterion = build_loss(names, weights, options, num_classes=datamanager.num_train_pids,
                           model=model).to(device)
    optimizer = build_optimizer([model, criterion], device=device, **optimizer_kwargs(cfg))
    scheduler = build_lr_scheduler(optimizer, len(datamanager.train_loader),
                                   **scheduler_kwargs(cfg))
    engine = CrossModalEngine(
        datamanager, model, optimizer, criterion, scheduler=scheduler, use_gpu=use_gpu,
        schedule=schedule_settings(cfg, len(datamanager.train_loader)), **engine_kwargs(cfg))
    run_kwargs = engine_run_kwargs(cfg)
    if resume:
        run_kwargs['start_epoch'] = engine.resume(resume, cfg.data.save_dir,
                                                  cfg.train.resume_rebuild_schedule)
    engine.run(**run_kwargs)
    return engine


def main(argv=None):
    args = build_parser().parse_args(argv)
    stdout = sys.stdout
    try:
        opts, resume_flag = split_resume(list(args.opts or ()))
        resume_flag = resume_flag or args.resume
        if resume_flag:
            opts += ['model.resume', resume_flag]
        vireid_plugin.plugins.load(args.plugin)   # before the config: their sections' keys
        cfg = load_config(args.config_file, opts, sources=args.sources,
                          targets=args.targets, root=args.root, transforms=args.transforms)
        run(cfg)
    except Preempted as exc:   # a resumable checkpoint is written: the scheduler requeues
        print('=> {}'.format(exc), file=sys.stderr)
        return PREEMPTED_EXIT_STATUS
    except USER_ERRORS as exc:
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
