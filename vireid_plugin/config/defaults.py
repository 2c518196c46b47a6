"""Default configuration: torchreid's keys (same names and meaning) plus the plugin's.

torchreid's scripts/default_config.py is not shipped by the PyPI release, so the
keys are declared here. Plugin additions are marked ``# plugin``. Sections owned
by a model family (``vit``, ``mip``, ...), by a dataset family (``sysu``, ``vcm``,
``llcm``, ``bupt``) and loss-term options (``loss.<term>``) are declared by the
family / term itself and added by ``add_registered_sections``.
"""
from yacs.config import CfgNode as CN

from .sections import add_registered_sections


def get_default_config():
    cfg = CN()
    cfg.use_gpu = True  # use a GPU when one is available
    cfg.num_threads = 0  # plugin: torch's CPU threads (torch.set_num_threads); 0 keeps PyTorch's default (one per core)

    cfg.model = CN()
    cfg.model.name = 'vit_base_reid'
    cfg.model.pretrained = True
    cfg.model.load_weights = ''   # a full ReID checkpoint (weights only)
    cfg.model.load_weights_strict = True  # plugin: False loads what fits and reports the rest
    cfg.model.resume = ''         # a checkpoint to resume training from
    cfg.model.pretrained_path = ''  # plugin: local ImageNet/CLIP weights (.pth/.safetensors/.npz)

    cfg.data = CN()
    cfg.data.type = 'image'
    cfg.data.root = 'datasets'
    cfg.data.sources = ['sysu_mm01']
    cfg.data.targets = ['sysu_mm01']
    cfg.data.workers = 4
    cfg.data.split_id = 0         # SYSU gallery trial of the plain torchreid gallery; RegDB trial - 1
    cfg.data.height = 256
    cfg.data.width = 128
    cfg.data.combineall = False
    cfg.data.transforms = ['random_flip']
    cfg.data.resize_interpolation = 'bilinear'  # plugin: train resize, bilinear (torchreid) or bicubic (MIP's released code)
    cfg.data.erase_fill = 'mean'    # plugin: random_erase fills with norm_mean (torchreid) or random pixels (timm 'pixel' mode, MIP's released code)
    cfg.data.grayscale_after_erase = False  # plugin: random_grayscale on the normalised tensor after erasing (MIP's released code), not on the image
    cfg.data.k_tfm = 1
    cfg.data.norm_mean = [0.485, 0.456, 0.406]
    cfg.data.norm_std = [0.229, 0.224, 0.225]
    cfg.data.save_dir = 'log'
    cfg.data.start_over = False   # plugin: a save_dir holding another run is moved aside (<save_dir>.old-<time>) instead of refused (--start-over)
    cfg.data.load_train_targets = False
    cfg.data.synthetic = False    # plugin: generate synthetic data where a dataset folder is missing
    cfg.data.on_bad_image = 'stop'  # plugin: an unreadable training image: stop, or skip (replaced by another of its id and modality)
    cfg.data.max_bad_fraction = 0.01  # plugin: with skip, more unreadable training items than this fraction stop the run

    cfg.market1501 = CN()
    cfg.market1501.use_500k_distractors = False
    cfg.cuhk03 = CN()
    cfg.cuhk03.labeled_images = False
    cfg.cuhk03.classic_split = False
    cfg.cuhk03.use_metric_cuhk03 = False

    # plugin datasets' options (cfg.sysu, cfg.vcm, cfg.llcm, cfg.bupt, ...) are declared by
    # each dataset family (data/datasets/<family>/config.py) and added below

    cfg.sampler = CN()
    cfg.sampler.train_sampler = 'CrossModalIdentitySampler'  # plugin sampler; torchreid's names work too
    cfg.sampler.train_sampler_t = 'RandomSampler'
    cfg.sampler.num_instances = 4  # per identity; per modality for CrossModalIdentitySampler
    cfg.sampler.modality_padding = 'auto'  # plugin: RandomIdentityModalitySampler (MIP's released sampler) padding rule: auto (regdb for RegDB sources, else sysu), sysu, regdb
    cfg.sampler.num_cams = 1
    cfg.sampler.num_datasets = 1

    cfg.video = CN()
    cfg.video.seq_len = 6
    cfg.video.sample_method = 'evenly'
    cfg.video.pooling_method = 'avg'

    cfg.train = CN()
    cfg.train.optim = 'sgd'
    cfg.train.lr = 0.008
    cfg.train.weight_decay = 1e-4
    cfg.train.max_epoch = 60
    cfg.train.start_epoch = 0
    cfg.train.batch_size = 64
    cfg.train.fixbase_epoch = 0
    cfg.train.open_layers = ['head']  # plugin models: BNNeck + classifier (torchreid: classifier)
    cfg.train.staged_lr = False
    cfg.train.new_layers = ['head']
    cfg.train.base_lr_mult = 0.1
    cfg.train.lr_scheduler = 'warmup_cosine'  # plugin: warmup_cosine (per iteration), cosine_restarts; torchreid's: single_step, multi_step, cosine
    cfg.train.stepsize = [20]
    cfg.train.gamma = 0.1
    cfg.train.print_freq = 20
    cfg.train.seed = 1
    cfg.train.warmup_epochs = 5.0   # plugin: linear warmup length (epochs, fractional ok)
    cfg.train.warmup_factor = 0.01  # plugin: warmup starts at lr * this
    cfg.train.min_lr_factor = 0.01  # plugin: cosine ends at lr * this
    cfg.train.cycle_epochs = 0      # plugin: cosine_restarts cycle length (0 = one cycle of max_epoch)
    cfg.train.cycle_decay = 0.1     # plugin: cosine_restarts: each cycle's peak = previous * this
    cfg.train.bias_lr_factor = 1.0  # plugin: biases' LR multiplier (TransReID/MIP: 2) unless the model sets one
    cfg.train.exempt_from_decay = True  # plugin: no weight decay on norms, biases and the model's no_weight_decay()
    cfg.train.checkpoint_every = 1      # plugin: a checkpoint every N epochs (0: only the last), independent of evaluation
    cfg.train.checkpoint_every_iters = 0  # plugin: also every N iterations inside an epoch (0: off)
    cfg.train.keep_checkpoints = 3      # plugin: regular checkpoints kept (the best one is extra)
    cfg.train.on_nonfinite = 'skip'     # plugin: NaN/inf loss: skip the step, rollback to the last checkpoint, or stop
    cfg.train.max_nonfinite_steps = 10  # plugin: this many non-finite steps in a row stop the run
    cfg.train.preempt_signals = ['SIGTERM', 'SIGUSR1']  # plugin: stop at the next step with a resumable checkpoint (exit 75); [] keeps the default handlers
    cfg.train.on_write_error = 'stop'   # plugin: a checkpoint/results write fails (disk full, I/O error): stop, or retry at the next save point
    cfg.train.resume_rebuild_schedule = False  # plugin: resume with a changed schedule rebuilds it (else refused)
    cfg.train.resume_fresh_optimizer = False  # plugin: resume weights, schedule and position, but start the optimizer's state (moments) afresh: for a checkpoint whose optimizer state no longer fits
    cfg.train.amp = 'auto'          # plugin: auto (bf16 on a GPU with native bf16, compute capability 8.0+, else fp16 + GradScaler; off on CPU), bf16, fp16, off
    cfg.train.grad_clip = 0.0       # plugin: max grad norm, 0 = off
    cfg.train.compile = False       # plugin: train through torch.compile(model) (the loss terms stay eager)
    cfg.train.ddp_find_unused_parameters = 'auto'  # plugin: DDP (torchrun): allow parameters without a gradient in a step; auto: False for models that declare theirs (unused_parameters()), else True; true, false
    cfg.train.sync_bn = False       # plugin: DDP on GPUs: SyncBatchNorm (batch statistics over the global batch)

    cfg.sgd = CN()
    cfg.sgd.momentum = 0.9
    cfg.sgd.dampening = 0.0
    cfg.sgd.nesterov = False
    cfg.rmsprop = CN()
    cfg.rmsprop.alpha = 0.99
    cfg.adam = CN()
    cfg.adam.beta1 = 0.9
    cfg.adam.beta2 = 0.999

    cfg.loss = CN()
    cfg.loss.name = 'triplet'     # torchreid's; the plugin engine reads loss.terms
    cfg.loss.terms = ['id', 'triplet']  # plugin: loss registry names
    cfg.loss.weights = [1.0, 1.0]       # plugin: one weight per term
    # loss.<term>.* (loss.softmax, loss.triplet, ...) come from the terms' `config`

    cfg.test = CN()
    cfg.test.batch_size = 128
    cfg.test.dist_metric = 'auto'   # plugin: 'auto' ranks as the model's (else the protocol's) reference code; or euclidean, cosine, dot
    cfg.test.normalize_feature = False
    cfg.test.ranks = [1, 5, 10, 20]
    cfg.test.evaluate = False
    cfg.test.eval_freq = -1
    cfg.test.start_eval = 0
    cfg.test.rerank = False
    cfg.test.visrank = False
    cfg.test.visrank_topk = 10
    cfg.test.num_trials = 10        # plugin: SYSU gallery trials scored from one extraction
    cfg.test.protocol_matrix = False  # plugin: every mode of each target dataset
    cfg.test.eval_before_train = False  # plugin: also score the untrained model (demo)
    cfg.test.autocast = False       # plugin: extract test features under train.amp's autocast (False: fp32, as the MIP authors)
    cfg.test.tf32 = False           # plugin: fp32 test features may use TF32 matmuls on Ampere+ GPUs (recorded as tf32); False: true fp32
    cfg.test.flip_average = False   # plugin: features averaged with the flipped image's (CAJ's testa.py)
    cfg.test.select_on = 'last'     # plugin: reported model: last epoch, best on SYSU's val ids, or best on test (labelled)
    cfg.test.select_metric = 'r1_map'  # plugin: selection score: (R1 + mAP) / 2 (MIP's rule), mAP (MITML's) or R1 (VLD's)
    cfg.test.select_mode = ''       # plugin: the row (mode name) scored for selection; '' = the first target's first row

    return add_registered_sections(cfg)
