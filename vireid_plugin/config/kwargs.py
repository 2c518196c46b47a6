"""Config -> keyword arguments of each component (one function per consumer)."""


def dataset_options(cfg):
    return dict(num_trials=cfg.test.num_trials,
                sysu_train_with_val=cfg.sysu.train_with_val,
                sysu_shots=cfg.sysu.shots,
                sysu_gallery_draw=cfg.sysu.gallery_draw,
                sysu_perm_file=cfg.sysu.perm_file,
                vcm_min_seq_len=cfg.vcm.min_seq_len,
                llcm_protocol=cfg.llcm.protocol,
                bupt_protocol=cfg.bupt.protocol,
                bupt_use_auxiliary=cfg.bupt.use_auxiliary)


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
                dataset_options=dataset_options(cfg), seed=cfg.train.seed)


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
    """Builder keywords of the ViT family (MIP/LSMRL add their own sections)."""
    return dict(loss=cfg.loss.name, pretrained=cfg.model.pretrained,
                use_gpu=cfg.use_gpu, img_size=(cfg.data.height, cfg.data.width),
                stride_size=cfg.vit.stride_size,
                num_cameras=num_cameras if cfg.vit.camera_embedding else 0,
                camera_coe=cfg.vit.camera_coe, drop_path_rate=cfg.vit.drop_path_rate,
                pretrained_path=cfg.model.pretrained_path,
                test_feature=cfg.vit.test_feature)


def optimizer_kwargs(cfg):
    return dict(optim=cfg.train.optim, lr=cfg.train.lr,
                weight_decay=cfg.train.weight_decay, momentum=cfg.sgd.momentum,
                sgd_dampening=cfg.sgd.dampening, sgd_nesterov=cfg.sgd.nesterov,
                rmsprop_alpha=cfg.rmsprop.alpha, adam_beta1=cfg.adam.beta1,
                adam_beta2=cfg.adam.beta2, staged_lr=cfg.train.staged_lr,
                new_layers=list(cfg.train.new_layers),
                base_lr_mult=cfg.train.base_lr_mult)


def loss_kwargs(cfg):
    """(names, weights, per-term options) for ``vireid_plugin.losses.build_loss``."""
    eps = cfg.loss.softmax.epsilon if cfg.loss.softmax.label_smooth else 0.0
    options = {'id': dict(label_smooth=eps),
               'triplet': dict(margin=cfg.loss.triplet.margin,
                               soft_margin=cfg.loss.triplet.soft_margin)}
    names = list(cfg.loss.terms)
    return names, list(cfg.loss.weights), {n: options[n] for n in names if n in options}


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
