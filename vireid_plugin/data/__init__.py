"""Data: datasets, sampler, data managers, synthetic generator."""
from . import datasets  # noqa: F401  (registers the datasets)
from .eval_split import EvalMode
from .sampler import CrossModalIdentitySampler
from .identity_modality_sampler import RandomIdentityModalitySampler
from .datamanager import CrossModalImageDataManager, CrossModalVideoDataManager, num_cameras
