"""Cross-modal ranking metrics (CMC / mAP / mINP) and distance matrices."""
from .distance import compute_distance
from .rank import PROTOCOLS, evaluate_rank

__all__ = ['evaluate_rank', 'compute_distance', 'PROTOCOLS']
