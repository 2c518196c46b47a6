"""MIP: modality- and instance-aware visual prompts on a TransReID-style ViT.

Wu et al., "Enhancing Visible-Infrared Person Re-identification with Modality-
and Instance-aware Visual Prompt Learning", ICMR 2024. Built from:

- ``ViTBackbone`` (timm ViT, overlapping patches, SIE camera embedding);
- ``ModalityPrompts`` (MPL) and an instance-prompt generator (IPG: generation- or
  fusion-based), inserted deep VPT-style: layer i runs on
  ``[CLS ; modality prompts_i ; instance prompts_i ; patches]`` and its prompt
  outputs are dropped;
- TransReID's global head and JPM local branch (copies of the last pretrained
  block + final norm), one BNNeck (frozen bias) and bias-free classifier per feature.

The backbone runs blocks 0..depth-2 and the heads replace the last block (depth-1
blocks in all). ``released_compat=True`` reproduces the released code's forward:
zero generator queries and its early exit, which runs blocks 0..depth-3 only when
prompts are on (pretrained block depth-2 is never used). The authors' checkpoints
(``released.py``) load only into a model that runs their forward
(``released_forward``: ``released_compat`` or no prompts), unless
``force_released_weights=True``.

Outputs: train mode with ``named_outputs=True`` (the plugin's engine), a dict with
'features' (pre-BN, [global, part_1..part_P]),
'bn_features', 'logits', 'head_weights' (TransReID's 0.5 global + 0.5 mean of the
parts, used by every multi-head loss term) and 'instance_prompts' (one (B, T, D)
tensor per prompted layer, for IAEL); eval mode, ``concat[g, l_1/P, .., l_P/P]``
before BN (or after, ``test_feature='after'``), L2-normalised: 3840-d for ViT-B, P=4.
"""
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..contract import engine_required, outputs_for
from ..heads import BNNeck
from ..jpm import JigsawPatchHead, LastBlockHead
from ..vit_reid import ViTBackbone
from .instance import InstancePromptFusion, InstancePromptGenerator
from .prompts import ModalityPrompts
from .released import released_checkpoint_filter

__all__ = ['MIPReID', 'INSTANCE_PROMPTS', 'TEST_FEATURES']

INSTANCE_PROMPTS = ('generation', 'fusion', 'none')
TEST_FEATURES = ('before', 'after')


class MIPReID(nn.Module):
    """``model(x, modality=None, camid=None, named_outputs=False)``; modality is required
    when prompts are on (``contract.py``: called with images only, it names the engine)."""

    #: the authors' code: TEST.FEAT_NORM yes and Euclidean distance (the model returns
    #: L2-normalised features itself, ``normalize_test_feature``)
    TEST_DISTANCE = 'euclidean'
    TEST_DISTANCE_SOURCE = ("MIP's code: Euclidean distance of L2-normalised features "
                            "(TEST.FEAT_NORM yes, TEST.NECK_FEAT before)")

    #: maps the authors' released checkpoints (``vireid_plugin.models.load_weights``)
    checkpoint_filter = staticmethod(released_checkpoint_filter)

    def __init__(self, num_classes, img_size=(256, 128), patch_size=16, stride_size=12,
                 embed_dim=768, depth=12, num_heads=12, num_cameras=0, camera_coe=3.0,
                 drop_path_rate=0.1, jpm=True, jpm_shift=5, jpm_groups=2, jpm_parts=4,
                 jpm_rearrange=True, modality_prompts=True, naive_prompts=False, num_tokens=16,
                 prompt_init_scale=20.0, prompt_dropout=0.1, instance_prompts='generation',
                 num_instance_tokens=16, instance_bank_size=64, fusion_temperature=0.0,
                 instance_queries='learnable', released_compat=False, test_feature='before',
                 normalize_test_feature=True, prompt_lr_mult=5.0, generator_lr_mult=15.0,
                 force_released_weights=False):
        super().__init__()
        if instance_prompts not in INSTANCE_PROMPTS:
            raise ValueError('instance_prompts must be one of {}, got {!r}'.format(
                INSTANCE_PROMPTS, instance_prompts))
        if test_feature not in TEST_FEATURES:
            raise ValueError('test_feature must be one of {}, got {!r}'.format(
                TEST_FEATURES, test_feature))
        self.backbone = ViTBackbone(
            img_size=tuple(img_size), patch_size=patch_size, stride_size=stride_size,
            num_cameras=num_cameras, camera_coe=camera_coe, embed_dim=embed_dim, depth=depth,
            num_heads=num_heads, drop_path_rate=drop_path_rate, qkv_bias=True)
        self.embed_dim = embed_dim
        self.released_compat = released_compat
        self.test_feature = test_feature
        self.normalize_test_feature = normalize_test_feature
        self.prompt_lr_mult = prompt_lr_mult
        self.generator_lr_mult = generator_lr_mult

        prompted = modality_prompts or instance_prompts != 'none'
        # the released forward differs from ours only when prompts are on
        self.released_forward = bool(released_compat or not prompted)
        self.force_released_weights = force_released_weights
        # blocks run by the backbone; JPM's heads stand in for the last one
        self.num_blocks = depth - 1 if jpm else depth
        if released_compat and jpm and prompted:
            self.num_blocks = depth - 2   # the released early exit
        self.prompts = ModalityPrompts(depth, num_tokens, embed_dim, patch_size,
                                       prompt_init_scale, prompt_dropout,
                                       naive=naive_prompts) if modality_prompts else None
        if instance_prompts == 'generation':
            norm = self.backbone.norm   # the backbone's LayerNorm (eps 1e-6)
            self.instance = InstancePromptGenerator(
                embed_dim, num_heads, num_instance_tokens,
                norm_layer=partial(type(norm), eps=norm.eps),
                queries='zeros' if released_compat else instance_queries)
        elif instance_prompts == 'fusion':
            self.instance = InstancePromptFusion(
                depth, embed_dim, num_instance_tokens, instance_bank_size, patch_size,
                prompt_init_scale, prompt_dropout, fusion_temperature)
        else:
            self.instance = None
        self.num_instance_prompt_layers = self.num_blocks if self.instance is not None else 0

        last, norm = self.backbone.blocks[-1], self.backbone.norm
        self.jpm = jpm
        self.num_parts = jpm_parts if jpm else 0
        if jpm:
            self.global_branch = LastBlockHead(last, norm)
            self.jpm_branch = JigsawPatchHead(last, norm, jpm_parts, jpm_shift, jpm_groups,
                                              jpm_rearrange)
        self.necks = nn.ModuleList(BNNeck(embed_dim, num_classes)
                                   for _ in range(1 + self.num_parts))
        self.feature_dim = embed_dim * (1 + self.num_parts)
        # the backbone's blocks it does not run (the heads run copies of the last one, the
        # released early exit skips one more) and, with the heads, its final norm: they stay
        # in the state dict (pretrained, released and older checkpoints load unchanged) as
        # frozen weights, so no optimizer, gradient or DDP reducer carries them
        replaced = ['backbone.blocks.{}'.format(i) for i in range(self.num_blocks, depth)]
        if jpm:
            replaced.append('backbone.norm')
        for name in replaced:
            self.get_submodule(name).requires_grad_(False)
        self._unused = [n for n, _ in self.named_parameters()
                        if any(n.startswith(r + '.') for r in replaced)]

    # ---- construction helpers -------------------------------------------
    def reset_heads_from_backbone(self):
        """Make the global and JPM heads copies of the (now pretrained) last block + norm."""
        if self.jpm:
            last, norm = self.backbone.blocks[-1], self.backbone.norm
            self.global_branch.reset_from(last, norm)
            self.jpm_branch.reset_from(last, norm)

    def iael_head(self):
        """A fresh copy of the last pretrained block + final norm (the released IAEL's
        ``b3``), ``forward(tokens) -> (B, D)`` at the first token; trainable."""
        return LastBlockHead(self.backbone.blocks[-1], self.backbone.norm).requires_grad_(True)

    def unused_parameters(self):
        """Names of the parameters no training step uses: the backbone's blocks it does not
        run and, with the heads, its final norm (frozen). Every other trainable parameter
        gets a gradient in every step, so under DDP ``train.ddp_find_unused_parameters
        auto`` is False for this model, and DDP ignores these (``distributed.wrap_model``),
        even if something un-freezes them."""
        return list(self._unused)

    def lr_multipliers(self):
        mults = {}
        if self.prompts is not None:
            mults['prompts.table'] = self.prompt_lr_mult
        if isinstance(self.instance, InstancePromptGenerator):
            mults['instance'] = self.generator_lr_mult
        elif isinstance(self.instance, InstancePromptFusion):
            mults['instance.bank'] = self.prompt_lr_mult   # the released "prompt_embeddings" rule
        return mults

    def no_weight_decay(self):
        return {'backbone.pos_embed', 'backbone.cls_token', 'backbone.sie_embed',
                'prompts.table', 'instance.queries', 'instance.bank'}

    def attention_spec(self):
        """The attention figure's layout: the last block the backbone runs, tokens [CLS;
        modality prompts; instance prompts; patches] (the paper's Figure 4). A model with
        an 'instance prompts' group also gets their t-SNE (``forward_features``)."""
        groups = {'CLS': 1}
        if self.prompts is not None:
            groups['modality prompts'] = self.prompts.num_tokens
        if self.instance is not None:
            groups['instance prompts'] = self.instance.num_tokens
        return dict(self.backbone.attention_spec(self.num_blocks - 1), groups=groups)

    # ---- forward -----------------------------------------------------------
    def embed(self, x, camid=None):
        """Patch + position (+ SIE camera) embedding: (B, 1 + N, D)."""
        bb = self.backbone
        x = bb._pos_embed(bb.patch_embed(x))
        if camid is not None and bb.sie_embed is not None:
            x = x + bb.camera_coe * bb.sie_embed[camid]
        return bb.norm_pre(bb.patch_drop(x))

    def forward_tokens(self, x, modality=None, camid=None):
        """Backbone with prompts: ([CLS; patches] after the prompted blocks, instance prompts)."""
        if x.dim() != 4:
            raise ValueError('{} expects images (B, C, H, W), got shape {}'.format(
                type(self).__name__, tuple(x.shape)))
        if self.prompts is not None and modality is None:
            raise engine_required('MIP', 'it selects its prompts by modality, so it needs '
                                  'model(x, modality=...) with 0 = visible, 1 = infrared for '
                                  'every image')
        tokens = self.embed(x, camid)
        cls, patches = tokens[:, :1], tokens[:, 1:]
        instance_prompts = []
        for i in range(self.num_blocks):
            inserted = []
            if self.prompts is not None:
                inserted.append(self.prompts(i, modality).to(patches.dtype))
            if self.instance is not None:
                generated = self.instance(i, cls, patches)
                inserted.append(generated)
                instance_prompts.append(generated)
            n = sum(p.shape[1] for p in inserted)
            h = self.backbone.blocks[i](torch.cat([cls, *inserted, patches], dim=1))
            cls, patches = h[:, :1], h[:, 1 + n:]
        return torch.cat([cls, patches], dim=1), instance_prompts

    def forward_features(self, x, modality=None, camid=None):
        """Pre-BN features [global, part_1..part_P] and the instance prompts."""
        tokens, instance_prompts = self.forward_tokens(x, modality, camid)
        if self.jpm:
            feats = [self.global_branch(tokens)] + self.jpm_branch(tokens)
        else:
            feats = [self.backbone.norm(tokens)[:, 0]]
        return feats, instance_prompts

    def forward(self, x, modality=None, camid=None, named_outputs=False):
        feats, instance_prompts = self.forward_features(x, modality, camid)
        bn_feats = [neck.bn(f) for neck, f in zip(self.necks, feats)]
        if self.training:
            out = {'features': feats, 'bn_features': bn_feats,
                   'logits': [neck.classifier(b) for neck, b in zip(self.necks, bn_feats)]}
            if self.num_parts:
                out['head_weights'] = (0.5,) + (0.5 / self.num_parts,) * self.num_parts
            else:
                out = {k: v[0] for k, v in out.items()}
            if instance_prompts:
                out['instance_prompts'] = instance_prompts
            return outputs_for(self, out, named_outputs)
        chosen = feats if self.test_feature == 'before' else bn_feats
        feat = torch.cat([chosen[0]] + [f / self.num_parts for f in chosen[1:]], dim=1)
        return F.normalize(feat, dim=1) if self.normalize_test_feature else feat
