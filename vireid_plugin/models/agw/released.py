"""The AGW / CAJ authors' released checkpoints (mangye16/Cross-Modal-Re-ID-baseline) onto
``AGWReID``.

Their ``train.py`` / ``train_ext.py`` save ``{'net': state_dict, 'cmc', 'mAP', 'mINP',
'epoch'}``; the plugin's checkpoint reader takes the state dict out of ``'net'``.
Their ``embed_net`` keeps three whole ResNet-50 copies; the key names map as:

- ``visible_module.visible.{conv1,bn1}.*`` -> ``visible_stem.{conv1,bn1}.*``;
- ``thermal_module.thermal.{conv1,bn1}.*`` -> ``thermal_stem.{conv1,bn1}.*``;
- ``base_resnet.base.layer{1..4}.*`` -> ``layer{1..4}.*``;
- ``NL_2.i.*``, ``NL_3.i.*`` -> ``nl2.i.*``, ``nl3.i.*`` (their ``g`` is a one-conv
  ``nn.Sequential``: ``g.0.*`` -> ``g.*``);
- ``bottleneck.*``, ``classifier.weight``: the same names.

Left out, with the reason: layer1-4 of the two stem copies and conv1/bn1 of the shared
copy (built, never run by their forward). Their classifier has one row per training
identity of their run (395 on SYSU-MM01 with the validation ids, as ``sysu.train_with_val
True``); another class count is reported by ``load_weights`` as a shape mismatch.

Guard: their weights into a model that does not compute what their ``embed_net`` computes
(another depth or width, non-local blocks off, average pooling) are refused with one
message (``GUARD_MESSAGE``): the tensors that fit would load and the features would be
quietly wrong.
"""
__all__ = ['released_checkpoint_filter', 'is_released_checkpoint', 'SOURCE', 'GUARD_MESSAGE']

SOURCE = "AGW/CAJ authors' released checkpoint (mangye16/Cross-Modal-Re-ID-baseline)"
GUARD_MESSAGE = (
    "it is an AGW/CAJ authors' checkpoint (mangye16/Cross-Modal-Re-ID-baseline key names "
    "visible_module.visible.*, base_resnet.base.*, NL_2.*, ...), which holds their "
    "embed_net(no_local='on', gm_pool='on'): a two-stream ResNet-50 with non-local blocks "
    "and GeM; this model is not that architecture ({}), so it would load partly and score "
    "quietly wrong: build model.name agw_resnet50 with agw.non_local True and agw.pooling "
    "gem (configs/agw_sysu.yaml, configs/caj_sysu.yaml) to evaluate it")

_PREFIXES = ('visible_module.visible.', 'thermal_module.thermal.', 'base_resnet.base.')
_STEM = ('conv1.', 'bn1.')
#: their three ResNet copies: (their prefix, ours, the part of it that runs, why the rest of
#: the copy is left out)
_COPIES = (
    ('visible_module.visible.', 'visible_stem.', _STEM,
     'their visible ResNet copy beyond the stem: never run'),
    ('thermal_module.thermal.', 'thermal_stem.', _STEM,
     'their thermal ResNet copy beyond the stem: never run'),
    ('base_resnet.base.', '', ('layer',), "their shared ResNet copy's stem: never run"),
)
#: their ResNet-50 (layers 3, 4, 6, 3; 2048 features) with non-local 2 + 3
_LAYERS = (3, 4, 6, 3)


def is_released_checkpoint(state_dict):
    """Whether ``state_dict`` has their key names."""
    return any(k.startswith(_PREFIXES) for k in state_dict)


def _differences(model):
    """How ``model`` differs from their embed_net (empty when it is theirs)."""
    found = []
    layers = tuple(len(getattr(model, 'layer{}'.format(k), ())) for k in (1, 2, 3, 4))
    if layers != _LAYERS or getattr(model, 'feature_dim', None) != 2048:
        found.append('blocks per layer {} and {} features, theirs {} and 2048'.format(
            layers, getattr(model, 'feature_dim', '?'), _LAYERS))
    if not getattr(model, 'non_local', False):
        found.append('non-local blocks off')
    if getattr(model, 'pooling', None) != 'gem':
        found.append('pooling {!r}, theirs GeM'.format(getattr(model, 'pooling', None)))
    return found


def released_checkpoint_filter(state_dict, model):
    """(state dict in ``model``'s names, {left-out key: reason}, source description)."""
    if not is_released_checkpoint(state_dict):
        return state_dict, {}, ''
    differences = _differences(model)
    if differences:
        raise ValueError(GUARD_MESSAGE.format('; '.join(differences)))
    out, left_out = {}, {}
    for key, value in state_dict.items():
        copy = next((c for c in _COPIES if key.startswith(c[0])), None)
        if copy is not None:
            theirs, ours, kept, reason = copy
            rest = key[len(theirs):]
            if rest.startswith(kept):
                out[ours + rest] = value
            else:
                left_out[key] = reason
        elif key.startswith('NL_'):
            # their g is nn.Sequential(conv): 'NL_2.0.g.0.weight' -> 'nl2.0.g.weight'
            layer, index, rest = key[len('NL_'):].split('.', 2)
            if rest.startswith('g.0.'):
                rest = 'g.' + rest[len('g.0.'):]
            out['nl{}.{}.{}'.format(layer, index, rest)] = value
        else:
            out[key] = value
    return out, left_out, SOURCE
