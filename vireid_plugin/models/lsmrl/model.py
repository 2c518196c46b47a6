"""LSMRL: language-driven sequence-level modal-invariant representations (video VI-ReID).

A clip (B, T, C, H, W) runs through CLIP's image tower frame by frame with STFL
(no new weights), SD adds the identity text features to every token, the frame
CLS features are averaged over time (sequence feature), and in training CMI lets
each visible sequence and its infrared partner (same identity, same batch)
attend to each other. See docs/lsmrl.md for every choice and its alternative.

Train-mode outputs, with ``named_outputs=True`` (the plugin's engine; consumed by loss
terms by key; called with images only, as torchreid's engines do, training raises: the
interaction needs each clip's modality and identity, and the loss terms its text side):

- ``features`` [seq (B, width), seq_proj (B, dim)] pre-BN; ``bn_features``, ``logits``
  the two BNNeck heads on them;
- ``image_proj`` (B, dim) sequence feature in CLIP's joint space;
- ``text_features`` (num_classes, dim) the identity prompts' text features;
- with CMI: ``cmi_features`` (B, width), ``cmi_proj`` (B, dim), ``cmi_logits``.

Eval mode: the BN features of both heads concatenated (B, width + dim), plus CMI's
when ``cmi_test`` (CMI of each sequence with itself).
"""
import torch
import torch.nn as nn

from ..contract import engine_required
from ..heads import BNNeck
from .clip_towers import ImageTower, TextTower
from .cmi import CrossModalInteraction, pair_partners
from .prompts import DEFAULT_TEMPLATE, PromptLearner
from .sd import SD_MODES, SemanticDiffusion
from .stfl import STFL

__all__ = ['LSMRL', 'CMI_TOKENS']

CMI_TOKENS = ('all', 'cls')


class LSMRL(nn.Module):
    """Args:
        clip: an open_clip ``CLIP`` (its towers become this model's children).
        num_classes: training identities (one prompt and one classifier row each).
        tokenizer: open_clip tokenizer of ``clip``.
        stfl, stfl_grouped_blocks, stfl_tps_blocks, stfl_group_size: see ``stfl.STFL``.
        sd, sd_mode: semantic diffusion on/off; 'bank' (all identity text features,
            label-free) or 'label' (own identity + generic prompt in training, generic
            at test).
        cmi, cmi_tokens, cmi_attention, cmi_test: cross-modal interaction on/off; on
            'all' tokens of each frame or the frame 'cls' tokens; 'cross' or 'joint'
            attention; also at test (each sequence with itself).
        prompt_template: CLIP text template whose "X" words are learned per identity.
        test_feature: 'bn' (after the BNNecks) or 'pre_bn'.
        head_lr_mult: LR multiplier of the classifier heads and the prompts.
        prompt_stage: options of the prompt-only first stage (``engine.prompt_stage``).
    """

    #: LSMRL's code is not public: the ranking of the HITSZ-VCM reference (MITML) is used;
    #: VLD's (its nearest relative) raw dot product of pre-BN features is
    #: ``test.dist_metric dot`` with ``lsmrl.test_feature pre_bn`` (docs/evaluation.md)
    TEST_DISTANCE = 'cosine'
    TEST_DISTANCE_SOURCE = ('MITML (the HITSZ-VCM reference; LSMRL\'s own code is not '
                            'public): cosine of L2-normalised features')

    def __init__(self, clip, num_classes, tokenizer, stfl=True, stfl_grouped_blocks=2,
                 stfl_tps_blocks=2, stfl_group_size=3, sd=True, sd_mode='bank', cmi=True,
                 cmi_tokens='all', cmi_attention='cross', cmi_test=False,
                 prompt_template=DEFAULT_TEMPLATE, test_feature='bn', head_lr_mult=25.0,
                 prompt_stage=None):
        super().__init__()
        if sd_mode not in SD_MODES:
            raise ValueError('lsmrl.sd_mode must be one of {}, got {!r}'.format(SD_MODES, sd_mode))
        if cmi_tokens not in CMI_TOKENS:
            raise ValueError('lsmrl.cmi_tokens must be one of {}, got {!r}'.format(
                CMI_TOKENS, cmi_tokens))
        self.image_encoder = ImageTower(clip.visual)
        self.text_encoder = TextTower(clip)
        self.sd_mode = sd_mode
        self.prompt_learner = PromptLearner(num_classes, self.text_encoder, tokenizer,
                                            prompt_template,
                                            generic=bool(sd) and sd_mode == 'label')
        blocks = self.image_encoder.blocks
        self.stfl = STFL(len(blocks), self.image_encoder.grid_size, stfl_grouped_blocks,
                         stfl_tps_blocks, stfl_group_size, enabled=stfl)
        self.stfl.check_blocks(blocks)
        width, dim = self.image_encoder.width, self.image_encoder.output_dim
        heads = blocks[0].attn.num_heads
        self.sd = SemanticDiffusion(width, self.text_encoder.output_dim, heads) if sd else None
        self.cmi = CrossModalInteraction(width, heads, cmi_attention) if cmi else None
        self.cmi_tokens = cmi_tokens
        self.cmi_test = bool(cmi_test) and self.cmi is not None
        self.head = BNNeck(width, num_classes, test_feature)
        self.head_proj = BNNeck(dim, num_classes, test_feature)
        self.cmi_head = BNNeck(width, num_classes, test_feature) if cmi else None
        self.test_feature = test_feature
        self.head_lr_mult = float(head_lr_mult)
        self.prompt_stage_options = dict(prompt_stage or {})
        self.feature_dim = width + dim + (width if self.cmi_test else 0)
        self._text_cache = None  # (prompt snapshot, bank, generic) in eval mode

    # ---- optimizer / training-loop hooks ----------------------------------
    def lr_multipliers(self):
        names = ['head', 'head_proj', 'prompt_learner'] + (['cmi_head'] if self.cmi else [])
        return {n: self.head_lr_mult for n in names}

    def no_weight_decay(self):
        return {'image_encoder.' + n for n in self.image_encoder.no_weight_decay()}

    def prompt_parameters(self):
        return [p for p in self.prompt_learner.parameters()]

    def unused_parameters(self):
        """Names of parameters a training step leaves without a gradient: none with the
        recipe's loss terms (every head has its term; the text tower is frozen). A config
        that drops the term of a head (e.g. ``cmi_id``) needs
        ``train.ddp_find_unused_parameters True`` under DDP."""
        return []

    def attention_spec(self):
        """The attention figure's layout: the image tower's last block, per frame, tokens
        [CLS; patches] (``vireid_plugin.visualize.attention``)."""
        enc = self.image_encoder
        return {'module': enc.blocks[-1].attn, 'grid': tuple(enc.grid_size),
                'groups': {'CLS': 1}, 'video': True}

    def prompt_text_features(self, labels):
        return self.prompt_learner(self.text_encoder, labels)

    def prompt_logit_scale(self):
        return float(self.text_encoder.logit_scale.exp())

    @torch.no_grad()
    def encode_for_prompts(self, x):
        """(B, dim) sequence features in CLIP's joint space, without SD and CMI: the image
        side of the prompt-only stage (they do not depend on the prompts)."""
        b, t = x.shape[:2]
        tokens = self.stfl(self.image_encoder.blocks, self.image_encoder.embed(x.flatten(0, 1)), t)
        feat, _ = self.image_encoder.pool(tokens)
        return self.image_encoder.project(feat.view(b, t, -1).mean(1))

    # ---- text side -------------------------------------------------------
    def text_features(self):
        """(identity bank (C, dim), generic feature (1, dim) or None). Recomputed (with
        gradients to the prompts) in training; in eval computed once per prompt state.

        The eval cache is keyed on the prompts' values (a copy compared with
        ``torch.equal``), not on ``Tensor._version``: fused optimizers (AdamW on CUDA)
        update in place without bumping it. It is also dropped whenever the module
        changes mode (``train()``/``eval()``), device or dtype, or loads a state dict,
        so a changed text tower is never scored with an old bank either."""
        if self.training:
            return self._encode_prompts()
        prompts = self.prompt_parameters()
        if not self._cache_fits(prompts):
            with torch.no_grad():
                snapshot = [p.detach().clone() for p in prompts]
                self._text_cache = (snapshot,) + self._encode_prompts()
        return self._text_cache[1:]

    def _cache_fits(self, prompts):
        if self._text_cache is None:
            return False
        snapshot = self._text_cache[0]
        return len(snapshot) == len(prompts) and all(
            s.device == p.device and s.dtype == p.dtype and torch.equal(s, p)
            for s, p in zip(snapshot, prompts))

    def train(self, mode=True):
        self._text_cache = None
        return super().train(mode)

    def _apply(self, fn, *args, **kwargs):
        self._text_cache = None
        return super()._apply(fn, *args, **kwargs)

    def _load_from_state_dict(self, *args, **kwargs):
        self._text_cache = None
        return super()._load_from_state_dict(*args, **kwargs)

    def _encode_prompts(self):
        bank = self.prompt_learner(self.text_encoder)
        generic = (self.prompt_learner.generic(self.text_encoder)
                   if self.prompt_learner.generic_ctx is not None else None)
        return bank, generic

    def _sd_context(self, bank, generic, pid, b, t):
        if self.sd_mode == 'bank':
            return bank[None]
        if self.training and pid is not None:
            own = torch.stack([bank[pid], generic.expand(b, -1)], 1)
            return own.repeat_interleave(t, 0)
        return generic[None]

    # ---- forward ------------------------------------------------------------
    def forward(self, x, modality=None, camid=None, pid=None, named_outputs=False):
        if self.training and not named_outputs:
            raise engine_required('LSMRL', 'in training it pairs each visible clip with an '
                                  'infrared clip of the same identity (modality= and pid=) and '
                                  'learns from named outputs (its identity text features) that '
                                  "torchreid's losses do not read")
        if x.dim() == 4:  # one image = a clip of one frame
            x = x[:, None]
        if x.dim() != 5:
            raise ValueError('LSMRL expects clips (B, T, C, H, W), got shape {}'.format(
                tuple(x.shape)))
        b, t = x.shape[:2]
        tokens = self.image_encoder.embed(x.flatten(0, 1))
        tokens = self.stfl(self.image_encoder.blocks, tokens, t)
        bank, generic = self.text_features()
        if self.sd is not None:
            tokens = self.sd(tokens, self._sd_context(bank, generic, pid, b, t))
        frame_feat, _ = self.image_encoder.pool(tokens)
        feat = frame_feat.view(b, t, -1).mean(1)
        proj = self.image_encoder.project(feat)

        cmi_feat = None
        if self.cmi is not None and (self.training or self.cmi_test):
            if self.training and pid is not None and modality is not None:
                partner = pair_partners(pid, modality)
            else:
                partner = torch.arange(b)
            cmi_feat = self._interact(tokens, partner, b, t)

        if not self.training:
            parts = [self.head(feat), self.head_proj(proj)]
            if cmi_feat is not None:
                parts.append(self.cmi_head(cmi_feat))
            return torch.cat(parts, 1)

        main, main_proj = self.head(feat), self.head_proj(proj)
        out = {'features': [feat, proj],
               'bn_features': [main['bn_features'], main_proj['bn_features']],
               'logits': [main['logits'], main_proj['logits']],
               'image_proj': proj, 'text_features': bank}
        if cmi_feat is not None:
            out.update(cmi_features=cmi_feat, cmi_proj=self.image_encoder.project(cmi_feat),
                       cmi_logits=self.cmi_head(cmi_feat)['logits'])
        return out

    def _interact(self, tokens, partner, b, t):
        """CMI on each sequence's tokens (all frames' tokens, or their CLS) -> (B, width)."""
        per_frame = tokens.view(b, t, tokens.shape[1], -1)
        if self.cmi_tokens == 'cls':
            per_frame = per_frame[:, :, :1]
        n = per_frame.shape[2]
        refined = self.cmi(per_frame.reshape(b, t * n, -1), partner)
        cls, _ = self.image_encoder.pool(refined.view(b * t, n, -1))
        return cls.view(b, t, -1).mean(1)
