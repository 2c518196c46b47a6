"""IAEL: MIP's instance-aware enhancement loss.

Identity classification of the generated instance prompts: for every prompted
layer l, the layer's prompts (B, T, D) are pooled over their T tokens, passed
through the layer's own BatchNorm1d and bias-free linear classifier, and scored
with cross-entropy against the identity; the loss is the mean over layers (the
MIP paper's figure: prompts -> BN -> FC -> IAEL; the released code's
``IPIL_SIMPLE`` pooling). The BN + classifier heads are this term's parameters:
trained with the model, saved in checkpoints, unused at test time.
"""
import torch.nn as nn
import torch.nn.functional as F

from ..registry import LOSSES
from .build import LossTerm

__all__ = ['InstanceAwareEnhancementLoss']


@LOSSES.register('iael')
class InstanceAwareEnhancementLoss(LossTerm):
    """Args:
        num_classes: training identities.
        model: a model with ``num_instance_prompt_layers`` and ``embed_dim`` (MIP).
        key: output holding the list of per-layer (B, T, D) instance prompts.
    """

    default_key = 'instance_prompts'

    def __init__(self, num_classes, model, key=None):
        super().__init__(key)
        layers = getattr(model, 'num_instance_prompt_layers', 0)
        dim = getattr(model, 'embed_dim', None)
        if not layers or not dim:
            raise ValueError('the iael loss term needs a model that generates instance prompts '
                             '(MIP with mip.instance_prompts generation or fusion); {} has '
                             'none'.format(type(model).__name__))
        self.bns = nn.ModuleList(nn.BatchNorm1d(dim) for _ in range(layers))
        self.classifiers = nn.ModuleList(nn.Linear(dim, num_classes, bias=False)
                                         for _ in range(layers))
        for bn, fc in zip(self.bns, self.classifiers):
            nn.init.ones_(bn.weight)
            nn.init.zeros_(bn.bias)
            nn.init.normal_(fc.weight, std=0.001)

    def forward(self, outputs, batch):
        prompts = self.output(outputs)
        pid = self.label(batch)
        if len(prompts) != len(self.bns):
            raise ValueError('iael: the model gave {} layers of instance prompts, the term was '
                             'built for {}'.format(len(prompts), len(self.bns)))
        losses = [F.cross_entropy(fc(bn(p.float().mean(dim=1))), pid)
                  for p, bn, fc in zip(prompts, self.bns, self.classifiers)]
        return sum(losses) / len(losses)
