"""Pretrained weights for the ViT backbones.

Sources: timm's ImageNet weights (hub download), or a local file given by the
config key ``model.pretrained_path``: a timm/torch state dict (.pth, .pth.tar,
.bin; possibly nested under 'model'/'state_dict', or a whole ReID model such as
TransReID's 'base.*' or ours 'backbone.*'), a .safetensors file, or an original
JAX ViT .npz. Foreign checkpoints are adapted to the backbone's grid and loaded
non-strictly; missing/unexpected keys are reported, shape mismatches are fatal.
"""
import math
import os
import warnings

import timm
from timm.layers import resample_abs_pos_embed
from timm.models.vision_transformer import checkpoint_filter_fn

from . import hub
from .download import weights_unavailable
from ..errors import UserError
from ..checkpoint_io import CheckpointError, state_dict_of, torch_error_detail
from ..checkpoint_io import load_checkpoint as load_checkpoint_file

__all__ = ['PretrainedWeightsError', 'load_pretrained', 'load_checkpoint', 'read_checkpoint',
           'adapt_state_dict', 'load_state_dict_into', 'download_timm_weights',
           'check_timm_weights', 'timm_weights_check']

PATH_KEY = 'model.pretrained_path'
#: the weight files timm and open_clip fetch from a hub repo (safetensors first)
HUB_WEIGHT_FILES = ('model.safetensors', 'pytorch_model.bin', 'open_clip_model.safetensors',
                    'open_clip_pytorch_model.bin')


class PretrainedWeightsError(UserError, RuntimeError):
    """A checkpoint could not be downloaded, read, or does not fit the model."""


class PretrainedFileNotFoundError(PretrainedWeightsError, FileNotFoundError):
    """``model.pretrained_path`` names no file."""


def load_pretrained(backbone, timm_name=None, pretrained_path='', arch=''):
    """Load ``pretrained_path`` if set, else timm's ImageNet weights for ``timm_name``.

    Returns the ``load_state_dict`` result (missing/unexpected keys), or None
    when nothing was loaded or the file was an .npz.
    """
    if pretrained_path:
        return load_checkpoint(backbone, pretrained_path)
    if timm_name is None:
        warnings.warn('{} has no ImageNet weights; using random initialisation (set {} to '
                      'load a checkpoint)'.format(arch or type(backbone).__name__, PATH_KEY))
        return None
    return load_state_dict_into(backbone, download_timm_weights(timm_name),
                                source='timm ImageNet weights {!r}'.format(timm_name))


def check_timm_weights(timm_name):
    """(hub repo, cached file or None) of timm's default weights for ``timm_name``; one
    ``PretrainedWeightsError`` when they are not cached and the hub cannot be asked (the
    run's preflight asks this before any data is read)."""
    repo, cached = _timm_hub_file(timm_name)
    if cached is None:
        reason = hub.hub_offline_reason()
        if reason:
            raise PretrainedWeightsError(weights_unavailable(
                'the ImageNet weights of timm model {!r}'.format(timm_name), repo, reason,
                PATH_KEY))
    return repo, cached


def timm_weights_check(archs):
    """A ``register_arch`` weights check for a family whose ``archs[name]['timm_name']``
    names timm's weights (None: the architecture has none)."""
    def check(name, **options):
        timm_name = archs[name].get('timm_name')
        if timm_name is not None:
            check_timm_weights(timm_name)
    return check


def download_timm_weights(timm_name):
    """State dict of timm's default pretrained ``timm_name``: from the Hugging Face cache
    when it is there, else from the hub; an unreachable hub fails at once (``hub.py``).
    The cached file is checked against the hash it is stored under before it is used, and
    a file timm just downloaded after (fail closed: one that cannot be found is refused)."""
    repo, cached = check_timm_weights(timm_name)
    try:
        # a hub file is a native timm state dict: not the custom (.npz) loader some
        # pretrained configs name for their original URL (older timm releases use it)
        overlay = {'file': cached, 'custom_load': False} if cached else None
        state = timm.create_model(timm_name, pretrained=True, num_classes=0,
                                  pretrained_cfg_overlay=overlay).state_dict()
    except Exception as exc:  # proxy, hub errors: all mean the same to the user
        raise PretrainedWeightsError(
            'could not download the ImageNet weights of timm model {!r} ({}: {}); {}, then '
            'set {} to the local file (.pth/.safetensors/.npz), or disable pretrained '
            'weights'.format(timm_name, type(exc).__name__, torch_error_detail(exc),
                             hub.DOWNLOAD_HINT,
                             PATH_KEY)) from exc
    if cached is None and repo and _timm_hub_file(timm_name)[1] is None:
        raise PretrainedWeightsError(
            'cannot verify the ImageNet weights timm downloaded for {!r}: no file of hub repo '
            '{} is in the Hugging Face cache to check against its hash; {}, then set {} to '
            'the file'.format(timm_name, repo, hub.DOWNLOAD_HINT, PATH_KEY))
    return state


def _timm_hub_file(timm_name):
    """(hub repo of timm's default weights for ``timm_name``, its cached file or None)."""
    try:
        cfg = timm.models.get_pretrained_cfg(timm_name)
    except Exception:
        return None, None
    repo = getattr(cfg, 'hf_hub_id', None) if cfg is not None else None
    if not repo:
        return None, None
    files = [cfg.hf_hub_filename] if getattr(cfg, 'hf_hub_filename', None) else []
    return repo, hub.cached_hub_file(repo, files + list(HUB_WEIGHT_FILES))


def read_checkpoint(path):
    """Flat {name: tensor} from a .pth/.pth.tar/.bin/.safetensors file (weights_only)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise PretrainedFileNotFoundError('pretrained checkpoint not found: {} (check {})'.format(
            path, PATH_KEY))
    try:
        return state_dict_of(load_checkpoint_file(path), path)
    except CheckpointError as exc:
        raise PretrainedWeightsError(str(exc)) from None


def load_checkpoint(backbone, path):
    """Load a local checkpoint file into ``backbone`` (a ``ViTBackbone``)."""
    path = os.fspath(path)
    if path.lower().endswith('.npz'):
        if not os.path.isfile(path):
            raise PretrainedFileNotFoundError(
                'pretrained checkpoint not found: {} (check {})'.format(path, PATH_KEY))
        try:
            # timm's JAX loader maps the npz names and resamples the pos embed itself.
            backbone.load_pretrained(path)
        except Exception as exc:
            raise PretrainedWeightsError('could not load JAX ViT checkpoint {} into {} ({}: {})'
                                         .format(path, type(backbone).__name__,
                                                 type(exc).__name__, exc)) from exc
        return None
    return load_state_dict_into(backbone, read_checkpoint(path), source=path)


def adapt_state_dict(state_dict, backbone):
    """Map a foreign ViT state dict onto ``backbone``'s names, grid and (lack of) head."""
    # Whole-model checkpoints (TransReID 'base.', our 'backbone.', open_clip
    # 'visual.trunk.'): keep only the ViT, located by its unique cls_token.
    cls_keys = [k for k in state_dict if k.endswith('cls_token')]
    if len(cls_keys) == 1 and cls_keys[0] != 'cls_token':
        prefix = cls_keys[0][:-len('cls_token')]
        state_dict = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    # The ImageNet classifier is not part of a ReID backbone.
    state_dict = {k: v for k, v in state_dict.items() if not k.startswith('head.')}
    pos = state_dict.get('pos_embed')
    if pos is not None and pos.dim() == 3 and pos.shape[1] != backbone.pos_embed.shape[1]:
        # timm assumes a square source grid; ReID checkpoints are not (16x8 at 256x128).
        prefix_tokens = backbone.num_prefix_tokens
        old_grid = _guess_grid(pos.shape[1] - prefix_tokens, backbone.patch_embed.grid_size)
        state_dict = dict(state_dict, pos_embed=resample_abs_pos_embed(
            pos, new_size=backbone.patch_embed.grid_size, old_size=old_grid,
            num_prefix_tokens=prefix_tokens))
    # timm's filter: CLIP/DINOv2/... renames, patch-kernel resampling, pre_logits.
    return checkpoint_filter_fn(state_dict, backbone)


def _guess_grid(num_tokens, target_grid):
    """Source (h, w): square when possible, else the factorisation nearest the target's aspect."""
    side = math.isqrt(num_tokens)
    if side * side == num_tokens:
        return side, side
    aspect = target_grid[0] / target_grid[1]
    pairs = [(h, num_tokens // h) for h in range(1, num_tokens + 1) if num_tokens % h == 0]
    return min(pairs, key=lambda hw: abs(math.log(hw[0] / hw[1] / aspect)))


def load_state_dict_into(backbone, state_dict, source):
    """Adapt, check shapes, load with strict=False and warn about key differences."""
    try:
        state_dict = adapt_state_dict(state_dict, backbone)
    except Exception as exc:
        raise PretrainedWeightsError('checkpoint {} cannot be adapted to {} ({}: {})'.format(
            source, type(backbone).__name__, type(exc).__name__, exc)) from exc
    own = backbone.state_dict()
    mismatched = ['{}: checkpoint {} vs model {}'.format(k, tuple(v.shape), tuple(own[k].shape))
                  for k, v in state_dict.items() if k in own and v.shape != own[k].shape]
    if mismatched:
        raise PretrainedWeightsError(
            'checkpoint {} does not fit {} (embed_dim {}); mismatching shapes: {}'.format(
                source, type(backbone).__name__, backbone.embed_dim, '; '.join(mismatched)))
    if not any(k in own for k in state_dict):
        raise PretrainedWeightsError(
            'checkpoint {} is not a ViT checkpoint: none of its keys match the backbone '
            '(first keys: {})'.format(source, ', '.join(list(state_dict)[:5])))
    result = backbone.load_state_dict(state_dict, strict=False)
    if result.missing_keys or result.unexpected_keys:
        warnings.warn('loaded {} into {} with missing keys (kept at init) [{}] and unexpected '
                      'keys (ignored) [{}]'.format(source, type(backbone).__name__,
                                                   ', '.join(result.missing_keys),
                                                   ', '.join(result.unexpected_keys)))
    return result
