"""IAEL: MIP's instance-aware enhancement loss.

Identity classification of the generated instance prompts: for every prompted
layer l, the layer's prompts (B, T, D) are pooled to one (B, D) feature, passed
through the layer's own BatchNorm1d and bias-free linear classifier, and scored
with cross-entropy against the identity; the loss is the mean over layers. Two
forms (``loss.iael.form``):

- ``plugin`` (default): the pooled feature is the mean over the T prompt tokens
  (the MIP paper's figure: prompts -> BN -> FC -> IAEL; the released code's
  ``MODEL.IPIL_SIMPLE True`` path);
- ``released``: the released code's default IAEL (``MODEL.IPIL True``,
  ``IPIL_SIMPLE False``; wurqjackey/MIP ``model/make_model.py``): one more copy of the
  backbone's last pretrained block + final norm (their ``b3``, shared by the layers)
  reads ``[z ; prompts_l]`` with a learnable token z (their ``zero_token``, (1, 1, D),
  trunc-normal 0.02), and its output at z is the feature.

BN weight 1 / bias 0 (bias trained), classifiers normal(0, 0.001), as theirs. The
heads (and the ``released`` block and token) are this term's parameters: trained
with the model (base LR, biases x ``train.bias_lr_factor``, as their optimizer
treats ``b3``), saved in checkpoints, unused at test time. Loss terms run outside
autocast, so the ``released`` block computes in fp32 (theirs: under fp16 autocast).
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import trunc_normal_

from ..registry import LOSSES
from .build import LossTerm

__all__ = ['InstanceAwareEnhancementLoss', 'IAEL_FORMS']

IAEL_FORMS = ('plugin', 'released')


@LOSSES.register('iael')
class InstanceAwareEnhancementLoss(LossTerm):
    """Args:
        num_classes: training identities.
        model: a model with ``num_instance_prompt_layers`` and ``embed_dim`` (MIP); the
            ``released`` form also calls its ``iael_head()`` (a fresh copy of the last
            pretrained block + norm, ``forward(tokens) -> (B, D)`` at the first token).
        form: 'plugin' or 'released' (see the module doc).
        key: output holding the list of per-layer (B, T, D) instance prompts.
    """

    default_key = 'instance_prompts'
    config = {'form': 'plugin'}

    def __init__(self, num_classes, model, key=None, form='plugin'):
        super().__init__(key)
        if form not in IAEL_FORMS:
            raise ValueError('loss.iael.form must be one of {}, got {!r}'.format(IAEL_FORMS, form))
        layers = getattr(model, 'num_instance_prompt_layers', 0)
        dim = getattr(model, 'embed_dim', None)
        if not layers or not dim:
            raise ValueError('the iael loss term needs a model that generates instance prompts '
                             '(MIP with mip.instance_prompts generation or fusion); {} has '
                             'none'.format(type(model).__name__))
        self.form = form
        if form == 'released':
            if not hasattr(model, 'iael_head'):
                raise ValueError("loss.iael.form released needs the model's last block "
                                 '(iael_head()); {} has none'.format(type(model).__name__))
            self.head = model.iael_head()
            self.token = nn.Parameter(torch.zeros(1, 1, dim))
            trunc_normal_(self.token, std=.02)
        self.bns = nn.ModuleList(nn.BatchNorm1d(dim) for _ in range(layers))
        self.classifiers = nn.ModuleList(nn.Linear(dim, num_classes, bias=False)
                                         for _ in range(layers))
        for bn, fc in zip(self.bns, self.classifiers):
            nn.init.ones_(bn.weight)
            nn.init.zeros_(bn.bias)
            nn.init.normal_(fc.weight, std=0.001)

    def pool(self, prompts):
        """(B, T, D) prompts of one layer -> (B, D) feature."""
        prompts = prompts.float()
        if self.form == 'plugin':
            return prompts.mean(dim=1)
        token = self.token.expand(prompts.shape[0], -1, -1)
        return self.head(torch.cat([token, prompts], dim=1))

    def forward(self, outputs, batch):
        prompts = self.output(outputs)
        pid = self.label(batch)
        if len(prompts) != len(self.bns):
            raise ValueError('iael: the model gave {} layers of instance prompts, the term was '
                             'built for {}'.format(len(prompts), len(self.bns)))
        losses = [F.cross_entropy(fc(bn(self.pool(p))), pid)
                  for p, bn, fc in zip(prompts, self.bns, self.classifiers)]
        return sum(losses) / len(losses)

    def extra_repr(self):
        return 'key={!r}, form={!r}'.format(self.key, self.form)
