"""The score model selection compares (``test.select_on val|test``).

Reference codes report their best epoch by different rules: MIP (and this plugin's
default) by (R1 + mAP) / 2 of the first row; MITML by mAP (it keeps each direction's
best); VLD by Rank-1 of its first direction. ``test.select_metric`` picks the rule and
``test.select_mode`` the row (a mode name, e.g. ``'infrared->visible'``).
"""
__all__ = ['SELECT_METRICS', 'SELECT_METRIC_LABEL', 'selection_score', 'find_row']

SELECT_METRICS = ('r1_map', 'mAP', 'R1')
SELECT_METRIC_LABEL = {'r1_map': '(R1 + mAP) / 2', 'mAP': 'mAP', 'R1': 'R1'}


def find_row(results, mode=''):
    """The row of ``results`` ({dataset: [row, ...]}) named ``mode`` ('' = the first
    dataset's first row); None when there is no row. A mode name may omit the protocol
    tag: 'infrared->visible' finds 'infrared->visible [auxnet]'. An unknown name raises
    ValueError listing the modes there are."""
    rows = [row for dataset_rows in results.values() for row in dataset_rows]
    if not rows:
        return None
    if not mode:
        return rows[0]
    for exact in (True, False):
        for row in rows:
            name = row['mode']
            if name == mode if exact else name.split(' [')[0] == mode:
                return row
    raise ValueError('test.select_mode {!r} names no evaluated mode; the modes are: {}'.format(
        mode, ', '.join(repr(r['mode']) for r in rows)))


def selection_score(results, metric='r1_map', mode=''):
    """The selection score of one evaluation's ``results`` ({dataset: [row, ...]}, rows
    in percent), or None when nothing was scored."""
    if metric not in SELECT_METRICS:
        raise ValueError('test.select_metric must be one of {}, got {!r}'.format(
            SELECT_METRICS, metric))
    row = find_row(results, mode)
    if row is None:
        return None
    if metric == 'r1_map':
        return (row['R1'] + row['mAP']) / 2
    return float(row[metric])
