"""Installs that resolve right: every private helper of timm, open_clip, torchreid and torch
the plugin calls exists in the installed versions (a missing one is named), the package
source calls no private helper this list does not know, and setup.py bounds each of those
packages above and is satisfied by what is installed."""
import ast
import importlib
import importlib.metadata
import os

from packaging.requirements import Requirement

from vireid_plugin import compat

from tests.helpers import REPO

PACKAGE = os.path.join(REPO, 'vireid_plugin')

# (distribution, owner (module path or a callable returning the object), attribute,
#  where the plugin uses it)
PRIVATE_HELPERS = [
    ('timm', 'timm.models.vision_transformer.VisionTransformer', '_pos_embed',
     'models/vit_reid.py, models/mip/model.py'),
    ('timm', 'timm.layers.PatchEmbed', '_init_img_size',
     'models/vit_reid.py (OverlapPatchEmbed overrides it)'),
    ('timm', 'timm.scheduler.scheduler.Scheduler', '_get_lr', 'optim/schedulers.py'),
    ('open_clip_torch', 'open_clip.transformer.VisionTransformer', '_embeds',
     'models/lsmrl/clip_towers.py'),
    ('open_clip_torch', 'open_clip.transformer.VisionTransformer', '_pool',
     'models/lsmrl/clip_towers.py'),
    ('torchreid', lambda: compat.engine.Engine, '_evaluate', 'compat.py (wrapped)'),
    ('torch', 'torch.nn.parallel.DistributedDataParallel',
     '_set_params_and_buffers_to_ignore_for_model', 'distributed.py'),
    ('torchreid', lambda: compat.ImageDataset, '_transform_image',
     'data/datasets/base.py, data/cache/dataset.py'),
    ('torchreid', lambda: compat.models, '__model_factory', 'compat.py (registration)'),
    ('torchreid', lambda: compat.datasets, '__image_datasets', 'compat.py (registration)'),
    ('torchreid', lambda: compat.datasets, '__video_datasets', 'compat.py (registration)'),
]


def resolve(owner):
    if callable(owner):
        return owner()
    module, _, name = owner.rpartition('.')
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):   # a class moved: resolve it module by module
        parent, _, cls = module.rpartition('.')
        return getattr(getattr(importlib.import_module(parent), cls), name)


def owner_name(owner):
    if isinstance(owner, str):
        return owner
    obj = owner()
    return '{}.{}'.format(obj.__module__, obj.__qualname__) if isinstance(obj, type) \
        else obj.__name__


def test_every_private_helper_the_plugin_calls_exists():
    missing = []
    for dist, owner, attr, where in PRIVATE_HELPERS:
        try:
            found, why = hasattr(resolve(owner), attr), ''
        except (ImportError, AttributeError) as exc:
            found, why = False, ' ({}: {})'.format(type(exc).__name__, exc)
        if not found:
            missing.append('{}.{}{} (used in {}; installed {} {})'.format(
                owner if isinstance(owner, str) else owner_name(owner), attr, why, where,
                dist, importlib.metadata.version(dist)))
    assert not missing, 'private helpers missing from the installed packages: ' + '; '.join(
        missing) + ' -- see the version bounds in setup.py'


def _private_uses_and_definitions():
    """(private attribute names read on some object, names the package defines itself)."""
    used, defined = {}, set()
    for folder, _, files in os.walk(PACKAGE):
        for name in files:
            if not name.endswith('.py'):
                continue
            path = os.path.join(folder, name)
            with open(path) as f:
                tree = ast.parse(f.read(), path)
            rel = os.path.relpath(path, REPO)
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    defined.add(node.name)
                elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
                    defined.add(node.attr)
                elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                    defined.add(node.id)
                elif isinstance(node, ast.arg):
                    defined.add(node.arg)
                elif isinstance(node, ast.alias):
                    defined.add(node.asname or node.name.split('.')[0])
                elif isinstance(node, ast.Attribute) and node.attr.startswith('_') and \
                        not node.attr.startswith('__'):
                    used.setdefault(node.attr, set()).add(rel)
    return used, defined


def test_the_list_knows_every_private_helper_the_package_calls():
    """A private name the package reads but never defines belongs to another package: it
    must be in PRIVATE_HELPERS (and its package bounded in setup.py)."""
    used, defined = _private_uses_and_definitions()
    foreign = {name: sorted(files) for name, files in used.items() if name not in defined}
    listed = {attr for _, _, attr, _ in PRIVATE_HELPERS}
    unlisted = {name: files for name, files in foreign.items() if name not in listed}
    assert not unlisted, 'private helpers of other packages called but not listed in ' \
                         'tests/test_dependencies.py: {}'.format(unlisted)
    # the scan sees what the list names (open_clip's _pool shares its name with a method
    # of the plugin's own, so the scan cannot tell it apart)
    assert {'_pos_embed', '_get_lr', '_embeds', '_transform_image'} <= set(foreign)


def _install_requires():
    with open(os.path.join(REPO, 'setup.py')) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', '') == \
                'INSTALL_REQUIRES':
            return {Requirement(r).name.lower().replace('_', '-'): Requirement(r)
                    for r in ast.literal_eval(node.value)}
    raise AssertionError('setup.py has no INSTALL_REQUIRES list')


def test_setup_bounds_every_package_whose_private_helpers_are_called():
    reqs = _install_requires()
    for dist in sorted({d for d, _, _, _ in PRIVATE_HELPERS}):
        req = reqs[dist.lower().replace('_', '-')]
        ops = {spec.operator for spec in req.specifier}
        assert ops & {'<', '<=', '==', '~='}, '{} has no upper bound in setup.py'.format(dist)
        assert ops & {'>', '>=', '==', '~='}, '{} has no lower bound in setup.py'.format(dist)


def test_installed_versions_satisfy_setup():
    for name, req in sorted(_install_requires().items()):
        version = importlib.metadata.version(req.name)
        assert req.specifier.contains(version, prereleases=True), \
            'installed {} {} is outside setup.py\'s {}'.format(req.name, version, req)
