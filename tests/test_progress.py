import io

from vireid_plugin.progress import progress


def test_plain_lines_when_not_a_tty():
    out = io.StringIO()   # StringIO is not a TTY: plain lines, no carriage returns
    items = list(progress(range(100), 'extracting', stream=out, lines=4, min_interval=0))
    assert items == list(range(100))
    text = out.getvalue()
    assert '\r' not in text
    lines = text.splitlines()
    # 100 items, at most 4 intermediate lines: every 20 items (20, 40, 60, 80), then the end
    assert [ln.split(':')[1].split()[0] for ln in lines[:-1]] == ['20/100', '40/100', '60/100',
                                                                    '80/100']
    assert lines[-1].startswith('extracting: 100/100 done in')


def test_unknown_length_and_disabled():
    out = io.StringIO()
    assert list(progress((i for i in range(7)), 'scoring', stream=out)) == list(range(7))
    assert out.getvalue().splitlines() == [out.getvalue().splitlines()[0]]
    assert out.getvalue().startswith('scoring: 7 done in')
    out = io.StringIO()
    assert list(progress(range(3), 'x', enabled=False, stream=out)) == [0, 1, 2]
    assert out.getvalue() == ''


def test_bar_on_a_tty():
    out = io.StringIO()
    assert list(progress(range(5), 'epoch 1', stream=out, tty=True)) == list(range(5))
    assert '\r' in out.getvalue()   # tqdm redraws in place


def test_quick_loops_print_only_their_last_line():
    out = io.StringIO()
    list(progress(range(100), 'scoring', stream=out, lines=4, min_interval=60))
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith('scoring: 100/100 done in')
