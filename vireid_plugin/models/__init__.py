"""Models of the plugin; importing this package registers them in ``registry.MODELS``.

Interface every model follows: ``model(x, modality=None, camid=None)`` with x
(B, C, H, W) for image models or (B, T, C, H, W) for video models, modality
(B,) long (0 visible, 1 infrared), camid (B,) long 0-based; both optional.
Train mode returns a dict with 'features' (B, D) pre-BN, 'bn_features' (B, D)
and 'logits' (B, num_classes); eval mode returns a (B, D) tensor.
"""
from .build import build_model, model_names
from .heads import BNNeck
from .video import TemporalAvgReID
from .vit_reid import OverlapPatchEmbed, ViTBackbone, ViTReID
from .weights import PretrainedWeightsError, load_checkpoint, load_pretrained

__all__ = ['build_model', 'model_names', 'BNNeck', 'TemporalAvgReID', 'OverlapPatchEmbed',
           'ViTBackbone', 'ViTReID', 'PretrainedWeightsError', 'load_checkpoint',
           'load_pretrained']
