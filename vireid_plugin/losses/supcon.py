"""Supervised contrastive loss between two sets (CLIP-ReID's stage-1 i2t / t2i terms)."""
import torch
import torch.nn.functional as F

__all__ = ['supcon_loss']


def supcon_loss(anchors, contrast, anchor_labels, contrast_labels, scale=1.0):
    """For each anchor i: ``-mean_{j: y_j = y_i} log softmax_j(scale * <a_i, c_j>)``, averaged
    over anchors with at least one positive. Inputs are L2-normalised here."""
    a = F.normalize(anchors.float(), dim=1)
    c = F.normalize(contrast.float(), dim=1)
    log_prob = torch.log_softmax(scale * a @ c.t(), dim=1)
    pos = (anchor_labels[:, None] == contrast_labels[None, :]).float()
    n_pos = pos.sum(1)
    valid = n_pos > 0
    per_anchor = -(log_prob * pos).sum(1)[valid] / n_pos[valid]
    return per_anchor.mean() if valid.any() else log_prob.sum() * 0.
