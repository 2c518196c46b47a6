"""The benchmark's result as text tables (the JSON is the result dict itself)."""

__all__ = ['format_report']


def _table(title, rows, columns):
    if not rows:
        return ''
    cells = [[('' if r.get(c) is None else '{:.3g}'.format(r[c]) if isinstance(r.get(c), float)
               else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    line = lambda vals: '  '.join(v.ljust(w) for v, w in zip(vals, widths))  # noqa: E731
    return '\n'.join(['== ' + title, line(columns), line(['-' * w for w in widths])]
                     + [line(r) for r in cells]) + '\n'


def format_report(result):
    """Human-readable tables of every section present in ``result``."""
    h = result['header']
    out = ['device: {device} | torch {torch} | threads {threads} | {date} | {command}'.format(**h)]
    if 'matmul' in result:
        out.append('== dense matmul peak: ' + ', '.join(
            '{} {} TFLOP/s (n={})'.format(m['dtype'], round(m['flops'] / 1e12, 3), m['size'])
            for m in result['matmul']) + '\n')
    out.append(_table('training step', result.get('train', []),
                      ['model', 'variant', 'input', 'items_per_s', 'unit', 'sec_per_step',
                       'first_step_s', 'train_gflop_per_step', 'achieved_tflops', 'mfu',
                       'mfu_fp32_peak', 'peak_memory_gib']))
    out.append(_table('training data loader', result.get('loader', []),
                      ['config', 'datasets', 'workers', 'batch', 'items_per_s', 'unit',
                       'frames_per_s', 'first_batch_s']))
    if 'eval' in result:
        ev = result['eval']
        out.append(_table('evaluation: reference per-query loop vs evaluate_rank', ev['rows'],
                          ['dataset', 'mode', 'queries', 'gallery', 'trials', 'reference_s',
                           'fast_s', 'speedup', 'max_abs_diff', 'rank1', 'mAP']))
        out.append(_table('evaluation totals', ev['totals'],
                          ['dataset', 'reference_s', 'fast_s', 'speedup', 'max_abs_diff']))
        out.append('identical (every |diff| < 1e-6): {}\n'.format(ev['identical']))
    if 'inference' in result:
        inf = result['inference']
        out.append(_table('inference: features of image files (plugin vs torchreid '
                          'FeatureExtractor)', inf['extraction'],
                          ['model', 'input', 'files', 'images', 'batch', 'workers',
                           'torchreid_images_per_s', 'plugin_images_per_s', 'speedup',
                           'decode_resize_s', 'model_s']))
        out.append(_table('inference: gallery search', inf['search'],
                          ['engine', 'gallery', 'dim', 'queries', 'topk', 'seconds',
                           'same_topk', 'max_abs_diff']))
    if result.get('syncs'):
        out.append(_table('host syncs per training step (counted on the CPU)', [
            dict(r, sites='; '.join(r['sites'])) for r in result['syncs']],
            ['model', 'config', 'per_step', 'sites']))
    return '\n'.join(s for s in out if s)
