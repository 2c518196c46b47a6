"""Plugin-side model factory: ``build_model(name, num_classes, **kwargs)``."""
from ..registry import MODELS
from . import video, vit_reid  # noqa: F401  (importing registers the builders)

__all__ = ['build_model', 'model_names']


def build_model(name, num_classes, **kwargs):
    """Build a registered model; unknown names raise KeyError listing close matches.

    kwargs go to the builder: loss, pretrained, use_gpu (torchreid's four) plus
    img_size, stride_size, num_cameras, camera_coe, drop_path_rate,
    pretrained_path, test_feature for the ViT models.
    """
    return MODELS.get(name)(num_classes, **kwargs)


def model_names():
    return list(MODELS)
