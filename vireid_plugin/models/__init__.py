"""Models of the plugin; importing this package registers them in ``registry.MODELS``.

Every module of this package (and of its sub-packages, one per model family) is
imported here, so a family registers its builders and its config section just by
existing: adding a model edits no central list.

Interface every model follows: ``model(x, modality=None, camid=None,
named_outputs=False)`` with x (B, C, H, W) for image models or (B, T, C, H, W) for
video models, modality (B,) long (0 visible, 1 infrared), camid (B,) long 0-based;
both optional (a model that needs training labels also takes ``pid=``, which the
engine passes in training). Eval mode returns a (B, D) tensor. Train mode returns,
with ``named_outputs=True`` (what ``CrossModalEngine`` passes), a dict of named
outputs, at least 'features' (pre-BN, for metric losses) and 'logits'; without it,
torchreid's contract for the ``loss`` the model was built with: logits ('softmax')
or (logits, features) ('triplet'), so torchreid's own engines train it
(``contract.py``).
Optional methods: ``lr_multipliers()`` ({parameter-name prefix: LR multiplier})
and ``no_weight_decay()`` (names/prefixes without weight decay), honoured by
``vireid_plugin.optim``.
"""
import importlib
import pkgutil

from .build import build_model, model_names, register_model
from .heads import BNNeck
from .load import LoadReport, load_weights
from .video import TemporalAvgReID
from .vit_reid import OverlapPatchEmbed, ViTBackbone, ViTReID
from .weights import PretrainedWeightsError, load_checkpoint, load_pretrained


def _import_families():
    for info in pkgutil.walk_packages(__path__, __name__ + '.'):
        importlib.import_module(info.name)


_import_families()

__all__ = ['build_model', 'model_names', 'register_model', 'load_weights', 'LoadReport',
           'BNNeck', 'TemporalAvgReID',
           'OverlapPatchEmbed', 'ViTBackbone', 'ViTReID', 'PretrainedWeightsError',
           'load_checkpoint', 'load_pretrained']
