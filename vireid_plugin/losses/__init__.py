"""Loss terms (registered in ``vireid_plugin.registry.LOSSES`` on import) and their composition."""
from .build import CompositeLoss, LossTerm, build_loss
from .id_loss import IDLoss
from .triplet import TripletLoss

__all__ = ['build_loss', 'CompositeLoss', 'LossTerm', 'IDLoss', 'TripletLoss']
