"""Every code block of README.md and docs/*.md runs as written (issue 26).

Blocks are read from the pages; one with an executable info string (``bash``, ``sh``,
``shell``, ``python``, ``py``) is run, in the page's order, in a sandbox that looks like the
repository root (``configs/``, ``scripts/``, ``vireid_plugin/`` linked, a fresh ``log/``,
a ``datasets/`` shared by all pages so the synthetic data is generated once). Directives,
an HTML comment on the line right before the opening fence:

- ``<!-- no-run: REASON -->``: not run (a real dataset, a GPU, a download, an install);
- ``<!-- file: NAME -->``: the block is written to ``NAME`` in the sandbox (a module or a
  config the page's commands then use), not run.

Output and config excerpts use ``text`` / ``yaml`` / ``toml`` (never run). The commands get
tiny settings from ``$VIREID_OPTS`` (appended to every ``scripts/main.py`` command line;
docs/getting-started.md says so); python blocks are written small as they are. A failure
names the page and line of each failing block. The pages that train are marked ``slow``.
"""
import collections
import glob
import os
import re
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNABLE = {'bash': 'bash', 'sh': 'bash', 'shell': 'bash', 'python': 'python', 'py': 'python'}
TINY = ('train.max_epoch 1 test.num_trials 1 test.eval_before_train False train.print_freq 1000 '
        'data.height 64 data.width 32')
LINKED = ('configs', 'scripts', 'vireid_plugin', 'setup.py', 'pyproject.toml')
FENCE = re.compile(r'^\s*(`{3,}|~{3,})\s*([\w+-]*)')   # indented ones (in lists) too
DIRECTIVE = re.compile(r'^\s*<!--\s*(no-run|file)\s*:\s*(.*?)\s*-->\s*$')

Block = collections.namedtuple('Block', 'page line info text directive arg')


def pages():
    return [os.path.join(REPO, 'README.md')] + sorted(glob.glob(os.path.join(REPO, 'docs',
                                                                             '*.md')))


def blocks(path):
    """Every fenced block of a page: (page, 1-based line of the fence, info, text,
    directive, its argument)."""
    with open(path, encoding='utf-8') as f:
        lines = f.read().splitlines()
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, info = m.group(1), m.group(2).lower()
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        d = DIRECTIVE.match(lines[i - 1]) if i else None
        indent = len(lines[i]) - len(lines[i].lstrip())   # a fence inside a list item
        body = [line[indent:] if not line[:indent].strip() else line
                for line in lines[i + 1:end]]
        out.append(Block(os.path.relpath(path, REPO), i + 1, info, '\n'.join(body) + '\n',
                         d.group(1) if d else None, d.group(2) if d else None))
        i = end + 1
    return out


def to_run(block):
    return block.directive is None and block.info in RUNNABLE


def page_blocks():
    return {os.path.relpath(p, REPO): blocks(p) for p in pages()}


PAGES = sorted(p for p, bs in page_blocks().items()
               if any(to_run(b) or b.directive == 'file' for b in bs))
#: pages whose blocks train or evaluate a model (a minute or more on 2 cores)
SLOW = {'README.md', 'docs/getting-started.md', 'docs/adding-a-dataset.md'}


@pytest.fixture(scope='module')
def shared_datasets(tmp_path_factory):
    return str(tmp_path_factory.mktemp('docs_datasets'))


def sandbox(folder, datasets):
    for name in LINKED:
        os.symlink(os.path.join(REPO, name), os.path.join(folder, name))
    os.symlink(datasets, os.path.join(folder, 'datasets'))
    return folder


def run_block(block, cwd, timeout=600):
    env = dict(os.environ, PYTHONPATH=cwd, OMP_NUM_THREADS='1', MPLBACKEND='Agg',
               HF_HUB_OFFLINE='1', VIREID_OPTS=TINY, PYTHONWARNINGS='ignore')
    if RUNNABLE[block.info] == 'bash':
        argv = ['bash', '-e', '-o', 'pipefail', '-c', block.text]
    else:
        argv = [sys.executable, '-c', block.text]
    # scripts/*.py run as `python scripts/...`: the interpreter of this test session
    env['PATH'] = os.path.dirname(sys.executable) + os.pathsep + env.get('PATH', '')
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_every_block_is_runnable_or_says_why_not():
    """A block with a runnable info string either runs here or carries no-run/file; no
    directive is misspelt (a comment right before a fence that is not one of the two)."""
    bad = []
    for page, bs in page_blocks().items():
        with open(os.path.join(REPO, page), encoding='utf-8') as f:
            lines = f.read().splitlines()
        for b in bs:
            prev = lines[b.line - 2] if b.line > 1 else ''
            if prev.strip().startswith('<!--') and b.directive is None:
                bad.append('{}:{}: unknown directive {!r}'.format(page, b.line, prev.strip()))
            if b.directive == 'no-run' and not b.arg:
                bad.append('{}:{}: no-run without a reason'.format(page, b.line))
    assert not bad, '\n'.join(bad)


@pytest.mark.parametrize('page', [pytest.param(p, marks=pytest.mark.slow) if p in SLOW
                                  else p for p in PAGES])
def test_page_blocks_run_as_written(page, shared_datasets, tmp_path):
    cwd = sandbox(str(tmp_path), shared_datasets)
    failures = []
    for b in page_blocks()[page]:
        if b.directive == 'file':
            with open(os.path.join(cwd, b.arg), 'w') as f:
                f.write(b.text)
            continue
        if not to_run(b):
            continue
        try:
            done = run_block(b, cwd)
        except subprocess.TimeoutExpired:
            failures.append('{}:{}: timed out'.format(b.page, b.line))
            continue
        if done.returncode != 0:
            failures.append('{}:{}: exit status {}\n{}'.format(
                b.page, b.line, done.returncode, (done.stdout + done.stderr)[-2500:]))
    assert not failures, '\n\n'.join(failures)
