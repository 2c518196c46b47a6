"""Training and evaluation on top of torchreid's Engine."""
from .checkpoint import (CheckpointError, load_checkpoint, load_weights, resume, resume_target,
                         save_checkpoint)
from .cross_modal import CrossModalEngine
from .precision import Precision
from .preemption import PREEMPTED_EXIT_STATUS, Preempted
from .prompt_stage import run_prompt_stage
