"""torchreid's ``run`` hook as ``CrossModalEngine`` runs it: epochs, evaluation every
``eval_freq`` epochs, checkpoints, and model selection (``select_on``): the last epoch,
the best on SYSU-MM01's validation ids, or the best on the test set (labelled as such).
"""
import datetime
import os
import time

from torch.utils.tensorboard import SummaryWriter

from .. import distributed
from .checkpoint import BEST, CheckpointManager, load_checkpoint
from .evaluation import format_table
from ..metrics.selection import SELECT_METRIC_LABEL, find_row, selection_score
from .preemption import PREEMPTED_FILE, PreemptionGuard

SELECT_ON = ('last', 'val', 'test')
SELECTION_LABEL = {'last': 'last epoch', 'val': 'best on the validation ids',
                   'test': 'best on the TEST set (optimistic: selected on the test data)'}


class RunLoop:
    """Train, evaluate, checkpoint and select (mixed into ``CrossModalEngine``)."""

    def run(self, save_dir='log', max_epoch=0, start_epoch=0, print_freq=10, fixbase_epoch=0,
            open_layers=None, start_eval=0, eval_freq=-1, test_only=False,
            dist_metric='auto', normalize_feature=False, visrank=False, visrank_topk=10,
            use_metric_cuhk03=False, ranks=(1, 5, 10, 20), rerank=False):
        main = distributed.is_main()
        # other ranks take part in evaluation (feature shards) but write nothing
        test_kwargs = dict(dist_metric=dist_metric, normalize_feature=normalize_feature,
                           ranks=ranks, save_dir=save_dir if main else '')
        visrank = visrank and main
        self._save_dir = save_dir
        self.checkpoints = CheckpointManager(save_dir, self.keep_checkpoints)
        if test_only:
            self.test(visrank=visrank, visrank_topk=visrank_topk, rerank=rerank,
                      use_metric_cuhk03=use_metric_cuhk03, **test_kwargs)
            return
        if self.writer is None and main:
            self.writer = SummaryWriter(log_dir=save_dir)
        with PreemptionGuard(self.preempt_signals) as self._preemption:
            try:
                self._train_and_evaluate(max_epoch, start_epoch, print_freq, fixbase_epoch,
                                         open_layers, start_eval, eval_freq, test_kwargs)
            finally:
                self._preemption = None
        if main:
            self.write_policy.finish()
            done_file = os.path.join(save_dir, PREEMPTED_FILE)
            if os.path.isfile(done_file):   # this run got past where a signal stopped it
                os.remove(done_file)
        if self.writer is not None:
            self.writer.close()

    def _train_and_evaluate(self, max_epoch, start_epoch, print_freq, fixbase_epoch,
                            open_layers, start_eval, eval_freq, test_kwargs):
        """run()'s body: the untrained evaluation, the epochs, the selected model; a
        pre-emption signal ends it after a step (``Preempted``)."""
        start_epoch = max(start_epoch, self.start_epoch)
        fresh = start_epoch == 0 and not self._start_iteration
        if self.eval_before_train and fresh and max_epoch > 0:
            print('=> Evaluating the model before training')
            with self._scoring('untrained'):
                self.test(**test_kwargs)
            self.initial_results = {k: [dict(r) for r in v] for k, v in self.last_results.items()}
        time_start = time.time()
        self.start_epoch, self.max_epoch = start_epoch, max_epoch
        print('=> Start training')
        for self.epoch in range(start_epoch, max_epoch):
            self.train(print_freq=print_freq, fixbase_epoch=fixbase_epoch,
                       open_layers=open_layers)
            done, last = self.epoch + 1, self.epoch + 1 == max_epoch
            periodic = eval_freq > 0 and done >= start_eval and done % eval_freq == 0
            best, path = False, None
            if last:
                # the final weights reach the disk before the final test: nothing it reads or
                # writes (a malformed results.json, a features file) can lose them
                path = self.save_training_checkpoint(done, 0)
                print('=> Final test')
            if last or periodic:
                best = self._evaluate_epoch(done, test_kwargs)
            saved = last or best or (
                self.checkpoint_every and done % self.checkpoint_every == 0)
            if best or (saved and not last):
                path = self.save_training_checkpoint(done, 0, best=best)
            if not last and self._stop_requested():
                self._preempt(done, 0, saved, path)
        if max_epoch > start_epoch:
            self._report_selected(test_kwargs)
            elapsed = str(datetime.timedelta(seconds=round(time.time() - time_start)))
            print('Elapsed {}'.format(elapsed))
        if self.initial_results:
            for line in self.summary_lines():
                print(line)

    def summary_lines(self):
        """The run's last lines: for every dataset and every mode evaluated (both
        directions of RegDB, LLCM, HITSZ-VCM, BUPTCampus), mAP and R1 before and after
        training, as in results.json; then which model was kept and by which row."""
        lines = []
        for name, rows in self.last_results.items():
            before_rows = {r['mode']: r for r in self.initial_results.get(name, ())}
            for row in rows:
                before = before_rows.get(row['mode'])
                if before is not None:
                    lines.append('{}{}: mAP before training {:.2f}% -> after training {:.2f}% '
                                 '(R1 {:.2f}% -> {:.2f}%)'.format(
                                     name, ' ({})'.format(row['mode']) if len(rows) > 1 else '',
                                     before['mAP'], row['mAP'], before['R1'], row['R1']))
        if self.select_on == 'last':
            lines.append('Model: the last epoch (test.select_on last)')
        elif self._selection_row:
            lines.append('Model: {}, scored by {} of {} (test.select_on {}, test.select_metric '
                         '{}, {})'.format(
                             SELECTION_LABEL[self.select_on],
                             SELECT_METRIC_LABEL[self.select_metric], self._selection_row,
                             self.select_on, self.select_metric,
                             'test.select_mode {!r}'.format(self.select_mode) if self.select_mode
                             else 'the first row; test.select_mode names another'))
        return lines

    def _evaluate_epoch(self, done, test_kwargs):
        """Evaluate after ``done`` epochs; returns whether it is the best for selection."""
        if self.select_on == 'val':
            results = self.evaluate_validation(done, test_kwargs['dist_metric'],
                                               test_kwargs['normalize_feature'],
                                               test_kwargs['save_dir'])
            score = selection_score(results, self.select_metric, self.select_mode)
            self._note_selection_row(results)
            if done == self.max_epoch:
                self.test(**test_kwargs)
        else:
            self.test(**test_kwargs)
            score = selection_score(self.last_results, self.select_metric, self.select_mode)
            self._note_selection_row(self.last_results)
        if self.select_on == 'last' or score is None:
            return False
        if self.best['score'] is None or score > self.best['score']:
            self.best.update(score=score, epoch=done,
                             results={k: [dict(r) for r in v]
                                      for k, v in self.last_results.items()})
            return True
        return False

    #: '<dataset> <mode>' of the row model selection scored last ('' before any)
    _selection_row = ''

    def _note_selection_row(self, results):
        row = find_row(results, self.select_mode)
        if row is not None:
            name = next(k for k, rows in results.items() if any(r is row for r in rows))
            self._selection_row = '{} {!r}'.format(name, row['mode'])

    def _report_selected(self, test_kwargs):
        """With select_on val/test: the selected checkpoint's test results, labelled."""
        if self.select_on == 'last' or self.best['epoch'] is None:
            return
        label = SELECTION_LABEL[self.select_on]
        print('=> Model selected on {}: epoch {} ({} {:.2f}{})'.format(
            'the validation ids' if self.select_on == 'val' else 'the TEST set',
            self.best['epoch'], SELECT_METRIC_LABEL[self.select_metric], self.best['score'],
            ' of {}'.format(self._selection_row) if self._selection_row else ''))
        best_path = os.path.join(self.checkpoints.folder, BEST)
        if self.select_on == 'test' and self.best['results']:
            for name, rows in self.best['results'].items():   # already scored on test
                print(format_table(name, rows, note=label))
                self._append_results(test_kwargs['save_dir'], dict({
                    'dataset': name, 'epoch': int(self.best['epoch']), 'stage': 'selected',
                    'selection': self.select_on, 'selection_metric': self.select_metric,
                    'selection_mode': self.select_mode or rows[0]['mode'],
                    'feature_precision': self.feature_precision},
                    **self.last_scoring.get(name, {}), rows=rows))
            return
        if not os.path.isfile(best_path):
            return
        ckpt = load_checkpoint(best_path)
        self.model.load_state_dict(ckpt['state_dict'])
        with self._scoring('selected', epoch=int(ckpt['epoch']) - 1):
            self.test(**test_kwargs)
