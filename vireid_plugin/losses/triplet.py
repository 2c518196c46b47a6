"""Batch-hard triplet loss (Hermans et al., "In Defense of the Triplet Loss")."""
import torch
import torch.nn.functional as F

from ..registry import LOSSES
from .build import LossTerm


def pairwise_euclidean(x):
    """(B, D) -> (B, B) Euclidean distances, in the dtype of ``x`` (call with fp32).

    Uses ``|a|^2 + |b|^2 - 2ab`` (a (B, B, D) difference tensor would be too big),
    after centring the batch: distances do not change, but the squared norms
    shrink, so less precision is lost when the terms cancel.
    """
    x = x - x.mean(dim=0, keepdim=True)
    sq = x.pow(2).sum(dim=1)
    d2 = sq[:, None] + sq[None, :] - 2. * (x @ x.t())
    # clamp: rounding can make d2 slightly negative, and sqrt'(0) is infinite.
    return d2.clamp(min=1e-12).sqrt()


@LOSSES.register('triplet')
class TripletLoss(LossTerm):
    """Batch-hard triplet loss on ``outputs[key]`` with ``batch['pid']`` labels.

    For each anchor: hardest positive = farthest other sample of its pid,
    hardest negative = closest sample of another pid; the loss is the mean over
    anchors of ``relu(d_ap - d_an + margin)`` or, with ``soft_margin``,
    ``softplus(d_ap - d_an)`` (margin unused). An anchor with no other sample of
    its pid, or no sample of another pid, in the batch has no triplet and is left
    out of the mean; if no anchor has one the loss is 0 (still in the graph).

    Args:
        margin: hinge margin (hard-margin mode).
        soft_margin: use ``log(1 + exp(d_ap - d_an))`` instead of the hinge.
        normalize_feature: L2-normalise features before the distances.
        key: output holding the (B, D) features, or a list of them (several heads,
            combined as ``LossTerm.reduce_heads`` says).
    """

    default_key = 'features'
    # weight_t / weight_x are torchreid's keys, accepted so its configs load (the
    # plugin weighs terms with loss.weights)
    config = {'margin': 0.3, 'soft_margin': False, 'weight_t': 1.0, 'weight_x': 0.0}

    @classmethod
    def from_config(cls, section):
        return {'margin': section['margin'], 'soft_margin': section['soft_margin']}

    def __init__(self, margin=0.3, soft_margin=False, normalize_feature=False, key=None):
        super().__init__(key)
        self.margin = float(margin)
        self.soft_margin = bool(soft_margin)
        self.normalize_feature = bool(normalize_feature)

    def forward(self, outputs, batch):
        pid = self.label(batch)
        return self.reduce_heads([self.single(f, pid) for f in self.heads(outputs)], outputs)

    def single(self, feats, pid):
        """The loss of one (B, D) feature tensor."""
        # Autocast off: it would run the distance matmul in bf16/fp16 again even
        # on fp32 inputs, and d_ap - d_an is a small difference of large numbers.
        with torch.autocast(device_type=feats.device.type, enabled=False):
            x = feats.float()
            if self.normalize_feature:
                x = F.normalize(x, dim=1)
            dist = pairwise_euclidean(x)

            same = pid[:, None] == pid[None, :]
            eye = torch.eye(len(pid), dtype=torch.bool, device=pid.device)
            pos, neg = same & ~eye, ~same
            # Non-candidates become -inf / +inf so max / min never pick them.
            d_ap = dist.masked_fill(~pos, float('-inf')).amax(dim=1)
            d_an = dist.masked_fill(~neg, float('inf')).amin(dim=1)
            # Anchors without a triplet are masked with where(), not by boolean indexing or
            # an ``if``: both would wait for the device (a host sync every step).
            valid = pos.any(dim=1) & neg.any(dim=1)
            diff = torch.where(valid, d_ap - d_an, torch.zeros_like(d_ap))
            per_anchor = F.softplus(diff) if self.soft_margin else F.relu(diff + self.margin)
            per_anchor = torch.where(valid, per_anchor, torch.zeros_like(per_anchor))
            # no valid anchor: 0, still in the graph (dist depends on x)
            return (per_anchor.sum() + dist.sum() * 0.) / valid.sum().clamp(min=1)

    def extra_repr(self):
        return '{}, margin={}, soft_margin={}, normalize_feature={}'.format(
            super().extra_repr(), self.margin, self.soft_margin, self.normalize_feature)
