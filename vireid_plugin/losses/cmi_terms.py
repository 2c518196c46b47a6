"""Identity losses on the CMI branch's outputs (``cmi_logits``, ``cmi_features``), as
their own terms so ``loss.weights`` weighs them apart from the main branch."""
from ..registry import LOSSES
from .id_loss import IDLoss
from .wrt_triplet import WeightedRegularizationTriplet

__all__ = ['CMIIDLoss', 'CMITriplet']


@LOSSES.register('cmi_id')
class CMIIDLoss(IDLoss):
    """``id`` on ``outputs['cmi_logits']``; options in ``loss.cmi_id``."""

    default_key = 'cmi_logits'
    config_section = None


@LOSSES.register('cmi_triplet')
class CMITriplet(WeightedRegularizationTriplet):
    """``wrt_triplet`` on ``outputs['cmi_features']``; options in ``loss.cmi_triplet``."""

    default_key = 'cmi_features'
