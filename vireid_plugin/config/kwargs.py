"""Config -> keyword arguments of each component (one function per consumer)."""
from ..registry import IMAGE_DATASETS, LOSSES, MODELS, VIDEO_DATASETS
from .sections import loss_section_name


def dataset_options(cfg):
    """{config key: value} of every key a registered dataset reads (its ``config_keys``):
    the data managers hand them to the datasets they build (``data/datasets/options.py``),
    with ``data.synthetic`` (a run for real data refuses a synthetic tree)."""
    out = {'data.synthetic': bool(cfg.data.synthetic)}
    for registry in (IMAGE_DATASETS, VIDEO_DATASETS):
        for _, cls in registry.items():
            for key in getattr(cls, 'config_keys', ()):
                value = cfg
                for part in key.split('.'):
                    value = value[part]
                out[key] = list(value) if isinstance(value, (list, tuple)) else value
    return out


def _common_data_kwargs(cfg):
    return dict(root=cfg.data.root, sources=list(cfg.data.sources),
                targets=list(cfg.data.targets), height=cfg.data.height,
                width=cfg.data.width, transforms=list(cfg.data.transforms),
                norm_mean=list(cfg.data.norm_mean), norm_std=list(cfg.data.norm_std),
                use_gpu=cfg.use_gpu, split_id=cfg.data.split_id,
                combineall=cfg.data.combineall, batch_size_train=cfg.train.batch_size,
                batch_size_test=cfg.test.batch_size, workers=cfg.data.workers,
                num_instances=cfg.sampler.num_instances, num_cams=cfg.sampler.num_cams,
                num_datasets=cfg.sampler.num_datasets,
                train_sampler=cfg.sampler.train_sampler,
                dataset_options=dataset_options(cfg), seed=cfg.train.seed,
                data_cache=dict(cfg.data_cache), on_bad_image=cfg.data.on_bad_image,
                max_bad_fraction=cfg.data.max_bad_fraction,
                modality_padding=cfg.sampler.modality_padding,
                resize_interpolation=cfg.data.resize_interpolation,
                erase_fill=cfg.data.erase_fill,
                grayscale_after_erase=cfg.data.grayscale_after_erase)


def imagedata_kwargs(cfg):
    kw = _common_data_kwargs(cfg)
    kw.update(k_tfm=cfg.data.k_tfm, load_train_targets=cfg.data.load_train_targets,
              train_sampler_t=cfg.sampler.train_sampler_t,
              cuhk03_labeled=cfg.cuhk03.labeled_images,
              cuhk03_classic_split=cfg.cuhk03.classic_split,
              market1501_500k=cfg.market1501.use_500k_distractors)
    return kw


def videodata_kwargs(cfg):
    kw = _common_data_kwargs(cfg)
    kw.update(seq_len=cfg.video.seq_len, sample_method=cfg.video.sample_method)
    return kw


def model_kwargs(cfg, num_cameras):
    """Builder keywords: the common ones plus the model's own config section."""
    kw = dict(pretrained=cfg.model.pretrained, pretrained_path=cfg.model.pretrained_path,
              img_size=(cfg.data.height, cfg.data.width), num_cameras=num_cameras)
    section = getattr(MODELS.get(cfg.model.name), 'config_section', None)
    if section:
        kw.update({k: list(v) if isinstance(v, (list, tuple)) else v
                   for k, v in cfg[section].items()})
    return kw


def optimizer_kwargs(cfg):
    """Keywords of ``vireid_plugin.optim.build_optimizer``."""
    return dict(optim=cfg.train.optim, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay,
                momentum=cfg.sgd.momentum, sgd_dampening=cfg.sgd.dampening,
                sgd_nesterov=cfg.sgd.nesterov, rmsprop_alpha=cfg.rmsprop.alpha,
                adam_beta1=cfg.adam.beta1, adam_beta2=cfg.adam.beta2,
                staged_lr=cfg.train.staged_lr, new_layers=list(cfg.train.new_layers),
                base_lr_mult=cfg.train.base_lr_mult, bias_lr_factor=cfg.train.bias_lr_factor,
                exempt_from_decay=cfg.train.exempt_from_decay)


def scheduler_kwargs(cfg):
    """Keywords of ``vireid_plugin.optim.build_lr_scheduler`` (besides iters_per_epoch)."""
    return dict(name=cfg.train.lr_scheduler, lr=cfg.train.lr, max_epoch=cfg.train.max_epoch,
                warmup_epochs=cfg.train.warmup_epochs, warmup_factor=cfg.train.warmup_factor,
                min_lr_factor=cfg.train.min_lr_factor, cycle_epochs=cfg.train.cycle_epochs,
                cycle_decay=cfg.train.cycle_decay, stepsize=list(cfg.train.stepsize),
                gamma=cfg.train.gamma)


def loss_kwargs(cfg):
    """(names, weights, {name: constructor keywords}) for ``vireid_plugin.losses.build_loss``;
    each term's keywords come from its own section ``cfg.loss.<section>``."""
    names = list(cfg.loss.terms)
    options = {}
    for name in names:
        cls = LOSSES.get(name)
        if getattr(cls, 'config', None):
            options[name] = cls.from_config(cfg.loss[loss_section_name(name)])
    return names, list(cfg.loss.weights), options


def engine_run_kwargs(cfg):
    return dict(save_dir=cfg.data.save_dir, max_epoch=cfg.train.max_epoch,
                start_epoch=cfg.train.start_epoch, print_freq=cfg.train.print_freq,
                fixbase_epoch=cfg.train.fixbase_epoch,
                open_layers=list(cfg.train.open_layers), start_eval=cfg.test.start_eval,
                eval_freq=cfg.test.eval_freq, test_only=cfg.test.evaluate,
                dist_metric=cfg.test.dist_metric,
                normalize_feature=cfg.test.normalize_feature, visrank=cfg.test.visrank,
                visrank_topk=cfg.test.visrank_topk,
                use_metric_cuhk03=cfg.cuhk03.use_metric_cuhk03,
                ranks=list(cfg.test.ranks), rerank=cfg.test.rerank)


def engine_kwargs(cfg):
    """Keywords of ``CrossModalEngine`` besides data manager, model, optimizer, loss, scheduler."""
    return dict(amp=cfg.train.amp, grad_clip=cfg.train.grad_clip,
                protocol_matrix=cfg.test.protocol_matrix,
                eval_before_train=cfg.test.eval_before_train, eval_autocast=cfg.test.autocast,
                eval_tf32=cfg.test.tf32,
                checkpoint_every=cfg.train.checkpoint_every,
                checkpoint_every_iters=cfg.train.checkpoint_every_iters,
                keep_checkpoints=cfg.train.keep_checkpoints, select_on=cfg.test.select_on,
                select_metric=cfg.test.select_metric, select_mode=cfg.test.select_mode,
                on_nonfinite=cfg.train.on_nonfinite,
                max_nonfinite_steps=cfg.train.max_nonfinite_steps, compile=cfg.train.compile,
                find_unused_parameters=cfg.train.ddp_find_unused_parameters,
                sync_bn=cfg.train.sync_bn, preempt_signals=list(cfg.train.preempt_signals),
                on_write_error=cfg.train.on_write_error,
                flip_average=cfg.test.flip_average)


#: the settings that define the LR schedule: a resume must not change them silently
SCHEDULE_KEYS = ('train.max_epoch', 'train.batch_size', 'train.lr', 'train.optim',
                 'train.lr_scheduler', 'train.warmup_epochs', 'train.warmup_factor',
                 'train.min_lr_factor', 'train.cycle_epochs', 'train.cycle_decay',
                 'train.stepsize', 'train.gamma')


def schedule_settings(cfg, iters_per_epoch):
    """{key: value} of ``SCHEDULE_KEYS`` plus the iterations per epoch."""
    out = {}
    for key in SCHEDULE_KEYS:
        sec, name = key.split('.')
        value = cfg[sec][name]
        out[key] = list(value) if isinstance(value, (list, tuple)) else value
    out['iterations per epoch'] = int(iters_per_epoch)
    return out
