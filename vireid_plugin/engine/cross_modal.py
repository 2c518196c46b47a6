"""The plugin's torchreid Engine: cross-modal batches in, named losses out, runs that survive.

Extends torchreid's ``Engine`` through its hooks (``parse_data_for_train``,
``forward_backward``, ``extract_features``, ``test``, ``train``, ``run``) so its
logging and TensorBoard writing stay as torchreid users know them. The same
engine trains image models (B, C, H, W) and video models (B, T, C, H, W): the
model, not the engine, handles the time axis.

What it adds to torchreid's loop:
- checkpoints every ``checkpoint_every`` epochs and ``checkpoint_every_iters``
  iterations, independent of evaluation (``engine/checkpoint.py``), and an exact
  ``resume`` from any of them, mid-epoch included;
- a non-finite loss stops that step, names the term, then skips the step, rolls
  back to the last checkpoint or stops (``on_nonfinite``);
- model selection (``select_on``): the last epoch, the best on SYSU-MM01's
  validation ids, or the best on the test set (allowed, and labelled as such);
- evaluation never disturbs the training RNG, so evaluating or not does not change
  the trained weights;
- a fast path: autocast (``precision.py``), losses kept on the device and logged every
  ``print_freq`` steps (``train_log.py``), optional ``torch.compile`` of the model;
- several processes under torchrun (``vireid_plugin.distributed``): the model trains in
  DistributedDataParallel, evaluation extracts a shard of the pool per rank and gathers
  it, only rank 0 prints, writes checkpoints, results and TensorBoard.

``self.model`` always stays the plain module (checkpoints and evaluation use it, so
state_dict keys have no ``module.`` / ``_orig_mod.`` prefix); training steps run through
``self.train_model``, the same parameters wrapped in DDP and/or compiled.

One job per file; each is a mixin whose methods are the engine's (override any of them
in a subclass, as with torchreid's engines):

- ``train_loop.py``    ``train``, ``parse_data_for_train``, ``forward_backward``, the log
  lines, the non-finite guard;
- ``checkpointing.py`` ``training_state``, ``save_training_checkpoint``, ``save_model``,
  ``resume``;
- ``run_loop.py``      ``run``: epochs, evaluation schedule, model selection;
- ``testing.py``       ``test``, ``extract_features``, ``evaluate_cross_modal``,
  ``evaluate_validation``, ranked lists;
- this file: the settings, where the model runs (``train_model`` for training,
  ``_pool_features`` for evaluation).
"""
import gc
import inspect
import weakref

import torch

from .. import compat, distributed
from ..config.loading import ConfigError
from ..metrics.selection import SELECT_METRICS, find_row
from .checkpointing import Checkpointing
from .evaluation import extract_pool_features
from .precision import Precision
from .preemption import DEFAULT_SIGNALS
from .run_loop import SELECT_ON, SELECTION_LABEL, RunLoop
from .testing import Testing
from .train_loop import ON_NONFINITE, TrainLoop
from .write_policy import WritePolicy

__all__ = ['CrossModalEngine', 'SELECT_ON', 'ON_NONFINITE', 'SELECTION_LABEL']


class CrossModalEngine(TrainLoop, Checkpointing, RunLoop, Testing, compat.Engine):
    """Args:
        datamanager: a (CrossModal)ImageDataManager or VideoDataManager.
        model: ``model(x, modality=None, camid=None, named_outputs=True)``: a dict of
            named outputs in train mode, features in eval mode (without
            ``named_outputs``, a model follows torchreid's contract instead).
        optimizer, scheduler: scheduler may be None or step per iteration
            (``per_iteration = True``), per epoch (torchreid's) or at epoch start
            (``begin_epoch``).
        criterion: ``criterion(outputs, batch) -> (total, {name: value})``; an nn.Module
            whose parameters (loss terms with heads) move to the device with the model
            and are saved in checkpoints; ``set_epoch`` is called every epoch.
        amp: auto / bf16 / fp16 / off.
        protocol_matrix: score every mode of each cross-modal target, not just its own.
        eval_before_train: score the untrained model first and report both.
        eval_autocast: extract evaluation features under ``amp``'s autocast; False (the
            default): in fp32 whatever the training precision (the precision is recorded
            with every result).
        eval_tf32: with fp32 evaluation, let CUDA matmuls/convolutions run as TF32
            (Ampere and newer; recorded as 'tf32'); False: true fp32.
        checkpoint_every: write a checkpoint every this many epochs (0: only the last).
        checkpoint_every_iters: also every this many iterations inside an epoch (0: off).
        keep_checkpoints: how many regular checkpoints to keep (the best one is extra).
        select_on: 'last', 'val' (SYSU-MM01's validation ids, held out of training) or
            'test' (the test set: labelled as optimistic everywhere).
        select_metric, select_mode: the selection score (``metrics/selection.py``):
            'r1_map' ((R1 + mAP) / 2, MIP's rule), 'mAP' or 'R1', of the row named
            ``select_mode`` ('' : the first row).
        on_nonfinite: 'skip', 'rollback' or 'stop' on a NaN/inf loss;
            ``max_nonfinite_steps`` consecutive ones stop the run in any case.
        schedule: the settings that define the LR schedule ({config key: value}); a
            resume whose config changes one of them is refused unless rebuilt.
        compile: train through ``torch.compile(model)`` (the loss terms stay eager).
        find_unused_parameters, sync_bn: DistributedDataParallel options when several
            processes run (``vireid_plugin.distributed.wrap_model``).
        batch_transform: ``f(imgs, seed)`` applied to each training batch on the device
            (default: the data manager's ``batch_transform``, set by the uint8 image cache).
        preempt_signals: signal names that stop training at the next step boundary with a
            resumable checkpoint (``engine/preemption.py``); empty: the default handlers.
        on_write_error: 'stop' or 'retry' when a checkpoint/results write fails
            (``engine/write_policy.py``).
        flip_average: evaluation features are the mean of the image's and its horizontal
            flip's (``test.flip_average``; CAJ's ``testa.py``).
    """

    def __init__(self, datamanager, model, optimizer, criterion, scheduler=None,
                 use_gpu=True, amp='auto', grad_clip=0.0, protocol_matrix=False,
                 eval_before_train=False, eval_autocast=False, eval_tf32=False,
                 test_batch_size=None,
                 workers=None,
                 checkpoint_every=1, checkpoint_every_iters=0, keep_checkpoints=3,
                 select_on='last', on_nonfinite='skip', max_nonfinite_steps=10, schedule=None,
                 compile=False, find_unused_parameters='auto', sync_bn=False,
                 batch_transform=None, preempt_signals=DEFAULT_SIGNALS, on_write_error='stop',
                 select_metric='r1_map', select_mode='', flip_average=False):
        super().__init__(datamanager, use_gpu)
        # uint8 image cache: augmentation + normalisation per batch on the device
        self.batch_transform = batch_transform if batch_transform is not None else \
            getattr(datamanager, 'batch_transform', None)
        if select_on not in SELECT_ON:
            raise ValueError('select_on must be one of {}, got {!r}'.format(SELECT_ON, select_on))
        if on_nonfinite not in ON_NONFINITE:
            raise ValueError('on_nonfinite must be one of {}, got {!r}'.format(
                ON_NONFINITE, on_nonfinite))
        # under torchrun each process was pinned to its GPU (distributed.init_distributed)
        self.device = torch.device('cuda', torch.cuda.current_device()) if self.use_gpu \
            else torch.device('cpu')
        self.model = model.to(self.device)
        self.compile = bool(compile)
        self.find_unused_parameters = find_unused_parameters   # True, False or 'auto'
        self.sync_bn = bool(sync_bn)
        self._wrapped = (None, None, None)   # (model, trainable set, its training wrapper)
        self.max_epoch = 0             # set by run()
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.criterion = criterion.to(self.device) if isinstance(criterion, torch.nn.Module) \
            else criterion
        # models that need the labels in training (pairing, label injection) take pid=
        self._model_takes_pid = 'pid' in inspect.signature(model.forward).parameters
        self.register_model('model', self.model, optimizer, scheduler)
        self._frozen_at_build = weakref.WeakKeyDictionary()   # model -> names (train_loop.py)
        self.frozen_at_build(self.model)
        self.precision = Precision(amp, self.device)
        # evaluation features: fp32 unless asked (reduced precision perturbs the ranking);
        # TF32 off unless eval_tf32 (the runner allows it globally for training)
        self.eval_precision = self.precision if eval_autocast else Precision(
            'off', self.device, tf32=eval_tf32)
        self.flip_average = bool(flip_average)   # features averaged with the flipped image's
        self.grad_clip = grad_clip
        self.protocol_matrix = protocol_matrix
        self.eval_before_train = eval_before_train
        self.test_batch_size = test_batch_size
        self.workers = workers
        self.checkpoint_every = int(checkpoint_every)
        self.checkpoint_every_iters = int(checkpoint_every_iters)
        self.keep_checkpoints = int(keep_checkpoints)
        self.select_on = select_on
        if select_metric not in SELECT_METRICS:
            raise ValueError('select_metric must be one of {}, got {!r}'.format(
                SELECT_METRICS, select_metric))
        self.select_metric, self.select_mode = select_metric, select_mode
        self.on_nonfinite = on_nonfinite
        self.max_nonfinite_steps = int(max_nonfinite_steps)
        self.schedule = dict(schedule or {})
        self.last_results = {}
        self.last_scoring = {}   # {target: its distance, distance_source, feature}
        self.initial_results = None
        self._stage = 'evaluation'  # recorded with each result; set by self._scoring(...)
        self.start_epoch = 0
        self._start_iteration = 0
        self.best = {'score': None, 'epoch': None, 'results': None}
        self.nonfinite_steps = 0
        self._nonfinite_run = 0
        self.checkpoints = None
        self.preempt_signals = tuple(preempt_signals or ())
        self._preemption = None     # the PreemptionGuard while run() trains
        self.write_policy = WritePolicy(on_write_error)
        if select_on == 'val' and not hasattr(self._val_source(), 'val_pool'):
            raise ConfigError(
                "test.select_on val needs a source with an official validation split "
                "(sysu_mm01 with sysu.train_with_val False keeps its validation ids out of "
                "training); this run's sources have none: use 'last' or 'test'")
        self._check_select_mode()

    def _check_select_mode(self):
        """``select_mode`` names a row the selection will score (checked before training)."""
        if not self.select_mode or self.select_on == 'last':
            return
        if self.select_on == 'val':
            rows = {'val': [{'mode': m.name} for m in self._val_source().val_modes()]}
        else:
            rows = {name: [{'mode': m.name} for m in loaders['query'].dataset.eval_modes(
                matrix=self.protocol_matrix)] for name, loaders in self.test_loader.items()
                if hasattr(loaders['query'].dataset, 'eval_modes')}
        try:
            find_row(rows, self.select_mode)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    # ---- where the model runs -------------------------------------------
    def set_model_mode(self, mode='train', names=None):
        super().set_model_mode(mode, names)
        if isinstance(self.criterion, torch.nn.Module):
            self.criterion.train(mode == 'train')

    @property
    def train_model(self):
        """``self.model`` as training steps call it: in DistributedDataParallel when several
        processes run, compiled with ``compile``; built on first use, and again if
        ``self.model`` is replaced or, under DDP, when the set of trainable parameters
        changes (``train.fixbase_epoch``: DDP reduces only the parameters that required
        gradients when it was built, so a backbone opened later would otherwise step on
        each rank's own gradient)."""
        model, trainable, wrapped = self._wrapped
        key = None
        if distributed.is_distributed():
            key = tuple(p.requires_grad for p in self.model.parameters())
        if model is not self.model or trainable != key:
            # the old wrapper's reducer hooks must be gone before a new one registers its own
            self._wrapped = (None, None, None)
            wrapped = None
            gc.collect()
            wrapped = distributed.wrap_model(self.model, self.device,
                                             self.find_unused_parameters, self.sync_bn)
            if self.compile:
                wrapped = torch.compile(wrapped)
            self._wrapped = (self.model, key, wrapped)
        return wrapped

    def _pool_features(self, dataset, pool, loader_like=None, transform=None):
        """Features of ``pool`` through ``extract_features``: this engine's test batch size,
        workers, device, autocast, and one shard per rank under torchrun."""
        batch = self.test_batch_size or (loader_like.batch_size if loader_like else 128)
        # validation has no loader of its own: the training loader's worker count
        workers = self.workers if self.workers is not None else (
            loader_like.num_workers if loader_like else
            getattr(self.train_loader, 'num_workers', 0))
        shard = (distributed.rank(), distributed.world_size()) \
            if distributed.is_distributed() else None
        return extract_pool_features(self._feature_fn, dataset, batch, workers, self.device,
                                     self.eval_precision.autocast, pool=pool,
                                     transform=transform, shard=shard,
                                     flip_average=self.flip_average)

