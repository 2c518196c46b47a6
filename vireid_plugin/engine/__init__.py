"""Training and evaluation on top of torchreid's Engine."""
from .checkpoint import CheckpointError, load_checkpoint, load_weights, resume, save_checkpoint
from .cross_modal import CrossModalEngine
from .lr_scheduler import WarmupCosineLR, build_lr_scheduler
from .precision import Precision
