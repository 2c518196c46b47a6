"""The front page fits on a screen and the documentation site builds with warnings as
errors (broken links, missing anchors, pages outside the nav, API pages of modules that
moved)."""
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_readme_fits_on_a_screen_and_its_links_resolve():
    with open(os.path.join(REPO, 'README.md')) as f:
        text = f.read()
    assert len(text.splitlines()) <= 200
    targets = re.findall(r'\]\(([^)#\s]+)(?:#[^)]*)?\)', text)
    local = [t for t in targets if not re.match(r'[a-z]+://', t)]
    assert local, 'the README links to the docs'
    missing = [t for t in local if not os.path.exists(os.path.join(REPO, t))]
    assert not missing, missing


def test_docs_site_builds_strict(tmp_path):
    done = subprocess.run([sys.executable, '-m', 'mkdocs', 'build', '--strict', '-q',
                           '-d', str(tmp_path / 'site')], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # the API reference was generated from the docstrings
    with open(tmp_path / 'site' / 'api' / 'engine' / 'index.html') as f:
        page = f.read()
    assert 'CrossModalEngine' in page and 'forward_backward' in page


def test_checkpoints_named_in_the_docs_exist_after_their_config():
    """A command that loads ``model.pth.tar-N`` after training ``--config-file C`` names a
    file that C's run writes: N = C's train.max_epoch (a demo inheriting another config's
    epoch count must keep it when the parent's changes)."""
    import glob

    from vireid_plugin.config import load_config
    pattern = re.compile(r'--config-file\s+(configs/\S+\.yaml)[\s\\]+--weights\s+'
                         r'\S*model\.pth\.tar-(\d+)\b')
    found = []
    for path in [os.path.join(REPO, 'README.md')] + glob.glob(os.path.join(REPO, 'docs', '*.md')):
        with open(path) as f:
            for config, epoch in pattern.findall(f.read()):
                cfg = load_config(os.path.join(REPO, config))
                found.append((os.path.basename(path), config, int(epoch), cfg.train.max_epoch))
    assert found, 'the ONNX page exports a trained demo checkpoint'
    assert all(epoch == max_epoch for _, _, epoch, max_epoch in found), found
