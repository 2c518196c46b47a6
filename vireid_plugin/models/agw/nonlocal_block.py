"""AGW's non-local block, as the authors' ``Non_local`` (mangye16/Cross-Modal-Re-ID-baseline
``model.py``) computes it, which is not the textbook block (Wang et al., CVPR 2018):

- the inner width is ``reduc_ratio // reduc_ratio`` = **1 channel** (not C / 2);
- the pairwise term is ``theta^T phi / N`` (N = H x W positions), the "dot product"
  form, **not a softmax**;
- ``W`` is a 1x1 conv then ``BatchNorm2d`` whose weight and bias start at 0, so the
  block starts as the identity (``z = W(y) + x``).
g, theta, phi and W's conv keep their biases (PyTorch's default ``Conv2d``).

Without a softmax, ``(theta^T phi) g / N`` equals ``theta^T (phi g) / N``: computed in
that order the cost is linear in N, with the same result up to rounding.
"""
import torch
import torch.nn as nn

__all__ = ['NonLocal']


class NonLocal(nn.Module):
    """``z = BN(W(theta^T (phi g) / N)) + x`` on (B, C, H, W); ``inter_channels`` 1 = theirs."""

    def __init__(self, in_channels, inter_channels=1):
        super().__init__()
        self.in_channels, self.inter_channels = int(in_channels), int(inter_channels)
        self.g = nn.Conv2d(self.in_channels, self.inter_channels, 1)
        self.theta = nn.Conv2d(self.in_channels, self.inter_channels, 1)
        self.phi = nn.Conv2d(self.in_channels, self.inter_channels, 1)
        self.W = nn.Sequential(nn.Conv2d(self.inter_channels, self.in_channels, 1),
                               nn.BatchNorm2d(self.in_channels))
        nn.init.zeros_(self.W[1].weight)
        nn.init.zeros_(self.W[1].bias)

    def forward(self, x):
        b, _, h, w = x.shape
        n = h * w
        g = self.g(x).flatten(2).transpose(1, 2)            # (B, N, c)
        theta = self.theta(x).flatten(2).transpose(1, 2)    # (B, N, c)
        phi = self.phi(x).flatten(2)                        # (B, c, N)
        y = torch.matmul(theta, torch.matmul(phi, g)) / n   # = (theta phi / N) g
        y = y.transpose(1, 2).reshape(b, self.inter_channels, h, w)
        return self.W(y) + x
