"""The plugin's torchreid Engine: cross-modal batches in, named losses out.

Extends torchreid's ``Engine`` through its hooks (``parse_data_for_train``,
``forward_backward``, ``extract_features``, ``test``, ``save_model``) so its
``run`` loop, logging and TensorBoard writing stay as torchreid users know them.
The same engine trains image models (B, C, H, W) and video models
(B, T, C, H, W): the model, not the engine, handles the time axis.
"""
import inspect
import os
import time

import torch

from .. import compat
from .checkpoint import save_checkpoint
from .evaluation import (append_results, extract_pool_features, format_table, score_modes,
                         trial_distance)
from .precision import Precision
from .visualize import save_ranked_lists


class CrossModalEngine(compat.Engine):
    """Args:
        datamanager: a (CrossModal)ImageDataManager or VideoDataManager.
        model: ``model(x, modality=None, camid=None)``; dict of outputs in train mode,
            features in eval mode.
        optimizer, scheduler: scheduler may be None or step per iteration
            (``per_iteration = True``) or per epoch (torchreid's).
        criterion: ``criterion(outputs, batch) -> (total, {name: value})``; an nn.Module
            whose parameters (loss terms with heads) move to the device with the model
            and are saved in checkpoints; ``set_epoch`` is called every epoch.
        amp: auto / bf16 / fp16 / off.
        protocol_matrix: score every mode of each cross-modal target, not just its own.
        eval_before_train: score the untrained model first and report both.
    """

    def __init__(self, datamanager, model, optimizer, criterion, scheduler=None,
                 use_gpu=True, amp='auto', grad_clip=0.0, protocol_matrix=False,
                 eval_before_train=False, test_batch_size=None, workers=None):
        super().__init__(datamanager, use_gpu)
        self.device = torch.device('cuda' if self.use_gpu else 'cpu')
        self.model = model.to(self.device)
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.criterion = criterion.to(self.device) if isinstance(criterion, torch.nn.Module) \
            else criterion
        # models that need the labels in training (pairing, label injection) take pid=
        self._model_takes_pid = 'pid' in inspect.signature(model.forward).parameters
        self.register_model('model', self.model, optimizer, scheduler)
        self.precision = Precision(amp, self.device)
        self.grad_clip = grad_clip
        self.protocol_matrix = protocol_matrix
        self.eval_before_train = eval_before_train
        self.test_batch_size = test_batch_size
        self.workers = workers
        self.last_results = {}
        self.initial_results = None
        self._stage = 'evaluation'  # recorded with each result: untrained / evaluation

    # ---- training -------------------------------------------------------
    def train(self, print_freq=10, fixbase_epoch=0, open_layers=None):
        # a seeded sampler repeats its order unless told the epoch (as DistributedSampler)
        sampler = getattr(self.train_loader, 'sampler', None)
        if hasattr(sampler, 'set_epoch'):
            sampler.set_epoch(self.epoch)
        if hasattr(self.criterion, 'set_epoch'):
            self.criterion.set_epoch(self.epoch)
        if hasattr(self.scheduler, 'begin_epoch'):
            self.scheduler.begin_epoch(self.epoch)
        if isinstance(self.criterion, torch.nn.Module):
            self.criterion.train()
        return super().train(print_freq=print_freq, fixbase_epoch=fixbase_epoch,
                             open_layers=open_layers)

    def parse_data_for_train(self, data):
        pids = data['pid']
        batch = {'pid': pids, 'camid': data['camid'],
                 # torchreid's own datasets have no modality: they are visible-only
                 'modality': data.get('modality', torch.zeros_like(pids))}
        return data['img'], batch

    def forward_backward(self, data):
        imgs, batch = self.parse_data_for_train(data)
        imgs = imgs.to(self.device, non_blocking=True)
        batch = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        extra = {'pid': batch['pid']} if self._model_takes_pid else {}
        with self.precision.autocast():
            outputs = self.model(imgs, modality=batch['modality'], camid=batch['camid'],
                                 **extra)
        loss, parts = self.criterion(outputs, batch)  # loss terms compute in fp32
        self.optimizer.zero_grad(set_to_none=True)
        params = [p for group in self.optimizer.param_groups for p in group['params']]
        self.precision.backward_step(loss, self.optimizer, params, self.grad_clip)
        if getattr(self.scheduler, 'per_iteration', False):
            self.scheduler.step()
        summary = dict(parts)
        summary['loss'] = loss.detach()
        logits = outputs.get('logits')
        if isinstance(logits, (list, tuple)) and logits:
            logits = logits[0]  # several heads: the first (global) one
        if torch.is_tensor(logits):
            summary['acc'] = (logits.argmax(1) == batch['pid']).float().mean() * 100
        # one host sync per logged value; torchreid's MetricMeter wants floats
        return {k: float(v) for k, v in summary.items()}

    def get_current_lr(self, names=None):
        """The base LR (torchreid logs its last group's, which may carry a multiplier)."""
        group = self.optimizer.param_groups[-1]
        return group['lr'] / group.get('lr_mult', 1.0)

    def update_lr(self, names=None):
        # per-iteration schedulers already stepped in forward_backward
        if not getattr(self.scheduler, 'per_iteration', False):
            super().update_lr(names)

    # ---- evaluation -----------------------------------------------------
    def extract_features(self, input, modality=None, camid=None):
        return self.model(input, modality=modality, camid=camid)

    def _feature_fn(self, imgs, modality, camid):
        return self.extract_features(imgs, modality, camid)

    def test(self, dist_metric='euclidean', normalize_feature=False, visrank=False,
             visrank_topk=10, save_dir='', use_metric_cuhk03=False, ranks=(1, 5, 10, 20),
             rerank=False):
        self.set_model_mode('eval')
        rank1 = None
        for name in self.test_loader:
            dataset = self.test_loader[name]['query'].dataset
            if hasattr(dataset, 'eval_modes'):
                rows = self.evaluate_cross_modal(name, dataset, dist_metric, normalize_feature,
                                                 ranks, save_dir, rerank, visrank, visrank_topk)
                rank1, mAP = rows[0]['R1'] / 100, rows[0]['mAP'] / 100
            else:  # a torchreid single-modality dataset: torchreid's own evaluation
                rank1, mAP = self._evaluate(
                    dataset_name=name, query_loader=self.test_loader[name]['query'],
                    gallery_loader=self.test_loader[name]['gallery'], dist_metric=dist_metric,
                    normalize_feature=normalize_feature, visrank=visrank,
                    visrank_topk=visrank_topk, save_dir=save_dir,
                    use_metric_cuhk03=use_metric_cuhk03, ranks=list(ranks), rerank=rerank)
            if self.writer is not None:
                self.writer.add_scalar('Test/{}/rank1'.format(name), rank1, self.epoch)
                self.writer.add_scalar('Test/{}/mAP'.format(name), mAP, self.epoch)
        return rank1

    @torch.no_grad()
    def evaluate_cross_modal(self, name, dataset, dist_metric='euclidean',
                             normalize_feature=False, ranks=(1, 5, 10, 20), save_dir='',
                             rerank=False, visrank=False, visrank_topk=10):
        loader = self.test_loader[name]['query']
        start = time.time()
        feats = extract_pool_features(
            self._feature_fn, dataset, self.test_batch_size or loader.batch_size,
            loader.num_workers if self.workers is None else self.workers, self.device,
            self.precision.autocast)
        extracted = time.time()
        if normalize_feature:
            feats = torch.nn.functional.normalize(feats, dim=1)
        modes = dataset.eval_modes(matrix=self.protocol_matrix)
        rows = score_modes(feats, dataset.test_pool, modes, dist_metric, ranks=ranks,
                           rerank=rerank)
        print(format_table(name, rows))
        print('(features of {} pool items extracted once in {:.1f}s; {} trial(s) scored in '
              '{:.2f}s)'.format(len(dataset.test_pool), extracted - start,
                                sum(m.num_trials for m in modes), time.time() - extracted))
        if visrank:
            self.visualize_first_trial(name, dataset, feats, modes[0], dist_metric, rerank,
                                       save_dir, visrank_topk)
        self.last_results[name] = rows
        append_results(save_dir, {'dataset': name, 'epoch': int(self.epoch),
                                  'stage': self._stage, 'rows': rows})
        return rows

    def visualize_first_trial(self, name, dataset, feats, mode, dist_metric, rerank,
                              save_dir, topk):
        """Ranked-list images of the first mode's first trial (test.visrank)."""
        gallery = mode.galleries[0]
        distmat = trial_distance(feats, mode.query, gallery, dist_metric, rerank)
        distmat = distmat.cpu().numpy() if torch.is_tensor(distmat) else distmat
        pool = dataset.test_pool
        folder = os.path.join(save_dir, 'visrank_' + name)
        save_ranked_lists(distmat, [pool[i] for i in mode.query], [pool[i] for i in gallery],
                          mode.metric, folder, topk=topk)
        print('Ranked lists of "{}" (trial 0) saved to "{}"'.format(mode.name, folder))

    # ---- run / checkpoints ----------------------------------------------
    def run(self, save_dir='log', max_epoch=0, start_epoch=0, test_only=False, **kwargs):
        test_kwargs = {k: kwargs[k] for k in ('dist_metric', 'normalize_feature', 'ranks')
                       if k in kwargs}
        if self.eval_before_train and not test_only and max_epoch > start_epoch:
            print('=> Evaluating the model before training')
            self._stage = 'untrained'
            self.test(save_dir=save_dir, **test_kwargs)
            self._stage = 'evaluation'
            self.initial_results = {k: [dict(r) for r in v] for k, v in self.last_results.items()}
        super().run(save_dir=save_dir, max_epoch=max_epoch, start_epoch=start_epoch,
                    test_only=test_only, **kwargs)
        if self.initial_results:
            for name, rows in self.last_results.items():
                before = self.initial_results[name][0]
                print('{}: mAP before training {:.2f}% -> after training {:.2f}% '
                      '(R1 {:.2f}% -> {:.2f}%)'.format(name, before['mAP'], rows[0]['mAP'],
                                                        before['R1'], rows[0]['R1']))

    def save_model(self, epoch, rank1, save_dir, is_best=False):
        path = os.path.join(save_dir, 'model', 'model.pth.tar-{}'.format(epoch + 1))
        criterion_state = self.criterion.state_dict() if isinstance(
            self.criterion, torch.nn.Module) else {}
        state = {'state_dict': self.model.state_dict(), 'epoch': epoch + 1,
                 'criterion': criterion_state or None,
                 'rank1': None if rank1 is None else float(rank1),
                 'optimizer': self.optimizer.state_dict() if self.optimizer else None,
                 'scheduler': self.scheduler.state_dict() if self.scheduler else None}
        save_checkpoint(state, path)
        print('Checkpoint saved to "{}"'.format(path))
        return path
