"""Loss terms (registered in ``vireid_plugin.registry.LOSSES`` on import) and their composition.

Every module of this package is imported here, so a new term registers itself by
existing (no central list to edit).
"""
import importlib
import pkgutil

from .build import CompositeLoss, LossTerm, build_loss
from .id_loss import IDLoss
from .triplet import TripletLoss

for _info in pkgutil.iter_modules(__path__, __name__ + '.'):
    importlib.import_module(_info.name)

__all__ = ['build_loss', 'CompositeLoss', 'LossTerm', 'IDLoss', 'TripletLoss']
