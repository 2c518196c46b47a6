"""Cross-modal ranking metrics (CMC / mAP / mINP) and distance matrices."""
from .distance import compute_distance
from .rank import PROTOCOLS, evaluate_rank, kept_mask, matched_queries

__all__ = ['evaluate_rank', 'kept_mask', 'matched_queries', 'compute_distance', 'PROTOCOLS']
