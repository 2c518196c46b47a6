"""Identity (classification) loss."""
import torch.nn.functional as F

from ..registry import LOSSES
from .build import LossTerm


@LOSSES.register('id')
class IDLoss(LossTerm):
    """Cross-entropy of ``outputs[key]`` against ``batch['pid']``.

    Args:
        label_smooth: smoothing epsilon; targets become ``(1-eps)*onehot + eps/C``
            (torchreid's definition, which ``F.cross_entropy`` shares). 0 = plain CE.
        key: output holding the logits, a (B, C) tensor or a list of them
            (several heads); a list gives the mean of the per-head losses, or the
            weighting the model declares in ``outputs['head_weights']``.
    """

    default_key = 'logits'
    # torchreid's keys: loss.softmax.label_smooth (on/off) and the plugin's epsilon
    config = {'label_smooth': True, 'epsilon': 0.1}
    config_section = 'softmax'

    @classmethod
    def from_config(cls, section):
        return {'label_smooth': section['epsilon'] if section['label_smooth'] else 0.0}

    def __init__(self, label_smooth=0.1, key=None):
        super().__init__(key)
        if not 0. <= label_smooth < 1.:
            raise ValueError('label_smooth must be in [0, 1), got {}'.format(label_smooth))
        self.label_smooth = float(label_smooth)

    def forward(self, outputs, batch):
        pid = self.label(batch)
        # .float(): under autocast logits may be bf16/fp16, where log-softmax loses precision.
        losses = [F.cross_entropy(x.float(), pid, label_smoothing=self.label_smooth)
                  for x in self.heads(outputs)]
        return self.reduce_heads(losses, outputs)

    def extra_repr(self):
        return '{}, label_smooth={}'.format(super().extra_repr(), self.label_smooth)
