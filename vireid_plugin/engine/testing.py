"""Evaluation as ``CrossModalEngine`` does it: torchreid's ``test`` and
``extract_features`` hooks, the cross-modal protocols of each target (one feature
extraction per shared pool), the validation ids used for model selection, and the
ranked-list images (``test.visrank``).

The arithmetic (features of a pool, distances, CMC/mAP tables, results files) is
``engine/evaluation.py``'s; this mixin is the engine's side of it.
"""
import contextlib
import time

import torch

from .. import distributed
from ..data.seeded import preserved_rng
from ..metrics.distance import resolve_ranking
from ..safe_paths import path_under, safe_component
from .evaluation import append_results, format_table, pool_key, scalar_tags, score_modes, \
    trial_distance
from .run_loop import SELECTION_LABEL
from .ranked_lists import save_ranked_lists
from .saved_features import FeaturesFileError, features_path, save_features


class Testing:
    """Scoring the model (mixed into ``CrossModalEngine``)."""

    @contextlib.contextmanager
    def _scoring(self, stage, epoch=None):
        """Within it, evaluations are recorded as ``stage`` ('untrained': before training;
        'selected': the model ``select_on`` chose) and, given ``epoch``, as that (0-based)
        epoch's; both are restored on leaving. Outside it the stage is 'evaluation'."""
        saved = self._stage, self.epoch
        self._stage = stage
        if epoch is not None:
            self.epoch = epoch
        try:
            yield
        finally:
            self._stage, self.epoch = saved

    def extract_features(self, input, modality=None, camid=None):
        return self.model(input, modality=modality, camid=camid)

    def _feature_fn(self, imgs, modality, camid):
        return self.extract_features(imgs, modality, camid)

    def ranking(self, dist_metric, dataset=None):
        """What ``dataset``'s evaluation ranks by (``metrics.distance.resolve_ranking``):
        ``dist_metric`` when it names a distance; for 'auto' the model's reference
        ranking, else the dataset's protocol's, else Euclidean."""
        return resolve_ranking(dist_metric, self.model, dataset)

    def test_feature_label(self, normalize_feature=False):
        """Which feature is scored, as recorded with each result: the model's
        ``test_feature`` ('bn', 'pre_bn', MIP's 'before'/'after'; 'output' for a model
        without one), '+l2' where it is L2-normalised before ranking."""
        model = getattr(self.model, 'module', self.model)
        label = getattr(model, 'test_feature', None) or getattr(
            getattr(model, 'head', None), 'test_feature', None) or 'output'
        label = str(label)
        if normalize_feature or getattr(model, 'normalize_test_feature', False):
            label += '+l2'
        return label

    def test(self, dist_metric='auto', normalize_feature=False, visrank=False,
             visrank_topk=10, save_dir='', use_metric_cuhk03=False, ranks=(1, 5, 10, 20),
             rerank=False):
        # evaluation leaves the training RNGs alone: evaluating or not, same weights
        distributed.broadcast_buffers(self.model)   # rank 0's BN statistics everywhere
        with preserved_rng():
            rank1 = self._test(dist_metric, normalize_feature, visrank, visrank_topk, save_dir,
                               use_metric_cuhk03, ranks, rerank)
        self.write_policy.agree()   # a save point: results and features were written
        return rank1

    def _test(self, dist_metric, normalize_feature, visrank, visrank_topk, save_dir,
              use_metric_cuhk03, ranks, rerank):
        self.set_model_mode('eval')
        rank1 = None
        # targets that read the same pool the same way share one extraction (sysu_mm01 and
        # sysu_mm01_indoor, regdb and regdb_t2v, ...); what this evaluation scored is saved
        self._pool_cache, self._saved_entries = {}, {}
        for name in self.test_loader:
            dataset = self.test_loader[name]['query'].dataset
            rows = []
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
                for tag, value in scalar_tags(name, rows):   # every row: R1, mAP, mINP
                    self.writer.add_scalar(tag, value, self.epoch)
        if save_dir and self._saved_entries:   # the figures' input (scripts/visualize.py)
            entries, stage, epoch = self._saved_entries, self._stage, self.epoch
            try:
                path = self.write_policy.write('features', lambda: save_features(
                    features_path(save_dir, stage), entries, stage=stage, epoch=epoch))
            except FeaturesFileError as exc:   # the figures' input only: the run goes on
                path = None
                print('=> {}; the run goes on without it (scripts/visualize.py draws no '
                      'ranked lists or t-SNE from this evaluation)'.format(exc))
            if path:
                print('(pool features saved to "{}")'.format(path))
        self._pool_cache = self._saved_entries = None
        return rank1

    @torch.no_grad()
    def evaluate_cross_modal(self, name, dataset, dist_metric='auto',
                             normalize_feature=False, ranks=(1, 5, 10, 20), save_dir='',
                             rerank=False, visrank=False, visrank_topk=10):
        loader = self.test_loader[name]['query']
        start = time.time()
        cache = getattr(self, '_pool_cache', None)
        key = pool_key(dataset) if cache is not None else None
        shared = key is not None and key in cache
        if shared:
            feats = cache[key]
        else:
            feats = self._pool_features(dataset, dataset.test_pool, loader)
            if normalize_feature:
                feats = torch.nn.functional.normalize(feats, dim=1)
            if key is not None:
                cache[key] = feats
        extracted = time.time()
        modes = dataset.eval_modes(matrix=self.protocol_matrix)
        ranking = self.ranking(dist_metric, dataset)
        rows = score_modes(feats, dataset.test_pool, modes, ranking.metric, ranks=ranks,
                           rerank=rerank)
        if self._stage == 'untrained':
            note = 'untrained model'
        elif self._stage == 'selected':
            note = 'selected: ' + SELECTION_LABEL[self.select_on]
        else:
            note = 'epoch {}'.format(self.epoch + 1) + (
                '; model selection: ' + SELECTION_LABEL[self.select_on]
                if self.select_on != 'last' else '')
        feature = self.test_feature_label(normalize_feature)
        print(format_table(name, rows, note='{}; distance {}, feature {}'.format(
            note, ranking.metric, feature)))
        print('(features of {} pool items {}; {} trial(s) scored in {:.2f}s)'.format(
            len(dataset.test_pool), 'shared with an earlier target of the same pool' if shared
            else 'extracted once in {:.1f}s'.format(extracted - start),
            sum(m.num_trials for m in modes), time.time() - extracted))
        if getattr(self, '_saved_entries', None) is not None:
            reader = {k: getattr(dataset, k) for k in ('seq_len', 'frame_rule')
                      if getattr(dataset, k, None) is not None}
            self._saved_entries[name] = (feats, dataset.test_pool, modes, reader)
        if visrank:
            self.visualize_first_trial(name, dataset, feats, modes[0], ranking.metric, rerank,
                                       save_dir, visrank_topk)
        self.last_results[name] = rows
        scoring = {'distance': ranking.metric, 'distance_source': ranking.source,
                   'feature': feature}
        self.last_scoring[name] = scoring   # what the selected record repeats
        # epochs trained, as the table above and model.pth.tar-N count them (0: untrained)
        done = 0 if self._stage == 'untrained' else int(self.epoch) + 1
        record = dict({'dataset': name, 'epoch': done, 'stage': self._stage,
                       'feature_precision': self.feature_precision}, **scoring, rows=rows)
        if self._stage != 'untrained':
            record['selection'] = self.select_on
            if self.select_on != 'last':
                record['selection_metric'] = self.select_metric
                record['selection_mode'] = self.select_mode or rows[0]['mode']
        self._append_results(save_dir, record)
        return rows

    @property
    def feature_precision(self):
        """'fp32', 'tf32', 'bf16' or 'fp16': the precision evaluation features are extracted
        in."""
        return self.eval_precision.label

    def _append_results(self, save_dir, record):
        """One record into results.json, through ``train.on_write_error``."""
        if save_dir:
            self.write_policy.write('results', lambda: append_results(save_dir, record),
                                    replaces=False)

    def _val_source(self):
        return self.datamanager.train_set if hasattr(self.datamanager, 'train_set') else None

    @torch.no_grad()
    def evaluate_validation(self, epoch, dist_metric='auto', normalize_feature=False,
                            save_dir=''):
        """Score the validation ids (SYSU-MM01 protocol); returns {source: rows}."""
        distributed.broadcast_buffers(self.model)
        with preserved_rng():
            self.set_model_mode('eval')
            dataset = self._val_source()
            feats = self._pool_features(dataset, dataset.val_pool,
                                        transform=self.datamanager.transform_te)
            if normalize_feature:
                feats = torch.nn.functional.normalize(feats, dim=1)
            ranking = self.ranking(dist_metric, dataset)
            rows = score_modes(feats, dataset.val_pool, dataset.val_modes(), ranking.metric)
        feature = self.test_feature_label(normalize_feature)
        print(format_table('{} (validation ids)'.format(self.datamanager.sources[0]), rows,
                           note='epoch {}; distance {}, feature {}'.format(
                               epoch, ranking.metric, feature)))
        self._append_results(save_dir, {'dataset': self.datamanager.sources[0],
                                        'epoch': int(epoch), 'stage': 'validation',
                                        'feature_precision': self.feature_precision,
                                        'distance': ranking.metric,
                                        'distance_source': ranking.source,
                                        'feature': feature, 'rows': rows})
        self.write_policy.agree()   # a save point: the validation record was written
        return {self.datamanager.sources[0]: rows}

    def visualize_first_trial(self, name, dataset, feats, mode, dist_metric, rerank,
                              save_dir, topk):
        """Ranked-list images of the first mode's first trial (test.visrank)."""
        gallery = mode.galleries[0]
        distmat = trial_distance(feats, mode.query, gallery, dist_metric, rerank)
        distmat = distmat.cpu().numpy() if torch.is_tensor(distmat) else distmat
        pool = dataset.test_pool
        folder = path_under(save_dir, 'visrank_' + safe_component(name))
        save_ranked_lists(distmat, [pool[i] for i in mode.query], [pool[i] for i in gallery],
                          mode.metric, folder, topk=topk)
        print('Ranked lists of "{}" (trial 0) saved to "{}"'.format(mode.name, folder))

