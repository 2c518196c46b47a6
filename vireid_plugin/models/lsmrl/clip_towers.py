"""CLIP image and text towers from open_clip, and their weights.

``create_clip(name, img_size, ...)`` builds an open_clip ``CLIP`` through open_clip's
own config mechanism (``ViT-B-16`` is built in; the CPU test/demo model
``LSMRL-tiny`` is the JSON file beside this module, added with
``open_clip.add_model_config``) at the ReID input size, and loads weights:
open_clip's hub tag (``openai``) or a local file. ``ImageTower`` and ``TextTower``
hold the two halves of that model, so the ReID model can run the image blocks one
at a time (STFL) and the text transformer on prompt embeddings.
"""
import os

import open_clip
import torch
import torch.nn as nn
from open_clip.model import resize_pos_embed

from .. import hub
from ..download import weights_unavailable
from ...checkpoint_io import CheckpointError, load_checkpoint, quote_path, state_dict_of
from ...checkpoint_io import torch_error_detail
from ..weights import PATH_KEY, PretrainedFileNotFoundError, PretrainedWeightsError

__all__ = ['TINY_CONFIG', 'create_clip', 'check_hub_weights', 'load_clip_weights', 'ImageTower',
           'TextTower', 'get_tokenizer']

TINY_CONFIG = 'LSMRL-tiny'
_CONFIG_DIR = os.path.dirname(os.path.abspath(__file__))
# keys some CLIP files carry that are not parameters: OpenAI's TorchScript archives
# (input_resolution, ...), and open_clip's non-persistent attn_mask buffer in a traced CLIP
_NON_PARAMETER_KEYS = ('input_resolution', 'context_length', 'vocab_size', 'attn_mask')


def _ensure_config(name):
    """Make open_clip know ``name`` (the package's JSON configs are added on first use)."""
    if name not in open_clip.list_models():
        path = os.path.join(_CONFIG_DIR, name + '.json')
        if os.path.isfile(path):
            open_clip.add_model_config(path)
    if name not in open_clip.list_models():
        raise ValueError('unknown open_clip model config {!r}; open_clip knows {}'.format(
            name, ', '.join(open_clip.list_models()[:8]) + ', ...'))


def get_tokenizer(name):
    _ensure_config(name)
    return open_clip.get_tokenizer(name)


def create_clip(name, img_size, pretrained_tag='', pretrained_path='', quick_gelu=False):
    """open_clip CLIP ``name`` for (H, W) inputs, with weights from a file or a hub tag.

    A non-empty ``pretrained_path`` wins over ``pretrained_tag``; neither means random
    initialisation. The image position embedding is resampled to the (H/P, W/P) grid
    (open_clip's ``resize_pos_embed``: 14x14 -> 18x9 for ViT-B/16 at 288x144).
    """
    _ensure_config(name)
    img_size = tuple(int(s) for s in img_size)
    kwargs = dict(force_image_size=img_size, force_quick_gelu=bool(quick_gelu))
    if pretrained_tag and not pretrained_path:
        weights, repo = check_hub_weights(name, pretrained_tag)
        try:
            model = open_clip.create_model(name, pretrained=weights, **kwargs)
        except Exception as exc:  # offline, hub errors, unknown tag: one message
            raise PretrainedWeightsError(
                'could not get the {!r} weights of open_clip model {!r} ({}: {}); '
                'download them on a machine with network access and set {} to the '
                'file, or set model.pretrained False'.format(
                    pretrained_tag, name, type(exc).__name__, torch_error_detail(exc),
                    PATH_KEY)) from None
        if weights == pretrained_tag and repo and _cached(repo) is None:
            # open_clip downloaded it: the file it stored is checked like a cached one
            raise PretrainedWeightsError(
                'cannot verify the {!r} weights open_clip downloaded for {!r}: no file of hub '
                'repo {} is in the Hugging Face cache to check against its hash; {}, then set '
                '{} to the file'.format(pretrained_tag, name, repo, hub.DOWNLOAD_HINT,
                                        PATH_KEY))
        return model
    model = open_clip.create_model(name, **kwargs)
    if pretrained_path:
        load_clip_weights(model, pretrained_path, name)
    return model


def _cached(repo):
    """The open_clip weight file of hub ``repo`` in the Hugging Face cache, checked against
    the hash it is stored under (``hub.cached_hub_file``), or None."""
    return hub.cached_hub_file(repo, ('open_clip_model.safetensors',
                                      'open_clip_pytorch_model.bin'))


def check_hub_weights(name, tag):
    """(``tag`` or the cached hub file of (name, tag) when there is one, the hub repo or
    ''); an unreachable hub without a cached file fails at once instead of after
    open_clip's retries."""
    cfg = open_clip.get_pretrained_cfg(name, tag) or {}
    repo = (cfg.get('hf_hub') or '').rstrip('/')
    cached = _cached(repo) if repo else None
    if cached:
        return cached, repo
    reason = hub.hub_offline_reason() if repo else None
    if reason:
        raise PretrainedWeightsError(weights_unavailable(
            'the {!r} weights of open_clip model {!r}'.format(tag, name), repo, reason,
            PATH_KEY))
    return tag, repo


def _read_clip_file(path):
    """{name: tensor} of a CLIP weight file through the package's one checkpoint reader:
    a state dict (.pt/.pth/.bin, possibly under 'state_dict'), .safetensors, or OpenAI's
    TorchScript archive (``ViT-B-16.pt``), read without running anything from it."""
    if not os.path.isfile(path):
        raise PretrainedFileNotFoundError('CLIP weight file not found: {} (check {})'.format(
            quote_path(path), PATH_KEY))
    try:
        state = state_dict_of(load_checkpoint(path), path)
    except CheckpointError as exc:
        raise PretrainedWeightsError('could not read CLIP weights: {}'.format(exc)) from None
    return {k: v for k, v in state.items() if k not in _NON_PARAMETER_KEYS}


def load_clip_weights(model, path, config_name=''):
    """Load a whole-CLIP file into ``model``; a file that does not fit raises one
    ``PretrainedWeightsError`` naming the file and every mismatched key per tower."""
    state = _read_clip_file(path)
    resize_pos_embed(state, model)  # the image grid may differ (ReID input size)
    own = model.state_dict()
    problems = {}
    for key in sorted(set(own) | set(state)):
        tower = 'image encoder' if key.startswith('visual.') else 'text encoder'
        if key not in state:
            problems.setdefault(tower, []).append('{} missing from the file'.format(key))
        elif key not in own:
            problems.setdefault(tower, []).append('{} not in the model'.format(key))
        elif state[key].shape != own[key].shape:
            problems.setdefault(tower, []).append('{} (file {}, model {})'.format(
                key, tuple(state[key].shape), tuple(own[key].shape)))
    if problems:
        listed = '; '.join('{}: {}'.format(tower, ', '.join(items[:6]) + (
            ' and {} more'.format(len(items) - 6) if len(items) > 6 else ''))
            for tower, items in sorted(problems.items()))
        raise PretrainedWeightsError(
            'CLIP weights {} do not match the open_clip config {!r}: {}'.format(
                path, config_name or type(model).__name__, listed))
    model.load_state_dict(state)
    return model


class ImageTower(nn.Module):
    """open_clip's ``VisionTransformer`` split into embed / blocks / pool.

    ``embed`` and ``pool`` are open_clip's own ``_embeds`` and ``_pool``, so running
    ``embed -> every block -> pool`` is exactly ``CLIP.encode_image``.
    """

    def __init__(self, visual):
        super().__init__()
        self.visual = visual
        self.width = visual.transformer.width
        self.output_dim = visual.output_dim
        self.grid_size = tuple(visual.grid_size)

    @property
    def blocks(self):
        return self.visual.transformer.resblocks

    def embed(self, x):
        """(N, 3, H, W) -> (N, 1 + h*w, width) tokens (CLS first), before the blocks."""
        return self.visual._embeds(x)

    def pool(self, tokens):
        """Tokens after the blocks -> (ln_post CLS (N, width), projected (N, output_dim))."""
        pooled, _ = self.visual._pool(tokens)
        return pooled, self.project(pooled)

    def project(self, pooled):
        return pooled @ self.visual.proj

    def no_weight_decay(self):
        return {'visual.' + n for n in self.visual.no_weight_decay()}


class TextTower(nn.Module):
    """The text half of an open_clip ``CLIP``, frozen, run on token embeddings.

    ``encode_embeddings(x, eot)`` is ``CLIP.encode_text`` from the point where token
    ids have become embeddings, so learnable prompt vectors can stand in for words.
    The sequence may be cut after the last end-of-text token: the causal mask means
    no earlier token sees a later one, so the pooled features do not change.
    """

    def __init__(self, clip):
        super().__init__()
        self.token_embedding = clip.token_embedding
        self.positional_embedding = clip.positional_embedding
        self.transformer = clip.transformer
        self.ln_final = clip.ln_final
        self.text_projection = clip.text_projection
        self.logit_scale = clip.logit_scale
        self.register_buffer('attn_mask', clip.attn_mask, persistent=False)
        self.width = clip.transformer.width
        self.output_dim = (clip.text_projection.shape[1]
                           if isinstance(clip.text_projection, torch.Tensor)
                           else clip.text_projection.out_features)
        self.requires_grad_(False)

    def train(self, mode=True):
        return super().train(False)  # frozen: always in eval mode

    @torch.no_grad()
    def embed_tokens(self, ids):
        return self.token_embedding(ids)

    def encode_embeddings(self, x, eot):
        """x (N, L, width) token embeddings, eot (N,) end-of-text positions -> (N, dim)."""
        length = x.shape[1]
        dtype = self.transformer.get_cast_dtype()
        x = x.to(dtype) + self.positional_embedding[:length].to(dtype)
        x = self.transformer(x, attn_mask=self.attn_mask[:length, :length])
        x = self.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), eot]
        if isinstance(self.text_projection, nn.Linear):
            return self.text_projection(x)
        return x @ self.text_projection
