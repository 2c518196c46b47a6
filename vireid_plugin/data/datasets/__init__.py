"""Cross-modal datasets (importing a module registers its classes)."""
from .base import (INFRARED, VISIBLE, CrossModalImageDataset, CrossModalVideoDataset,
                   with_modality)
from .options import dataset_option, set_dataset_options
from . import sysu_mm01, regdb, hitsz_vcm, llcm, buptcampus  # noqa: F401
