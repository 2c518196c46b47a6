"""Cross-modal ranking metrics (CMC / mAP / mINP) and distance matrices."""
from .distance import DIST_METRICS, DISTANCES, Ranking, compute_distance, resolve_ranking
from .rank import PROTOCOLS, evaluate_rank, kept_mask, kept_pairs, matched_queries, rank_gallery
from .reference import evaluate_rank_reference

__all__ = ['evaluate_rank', 'evaluate_rank_reference', 'kept_mask', 'kept_pairs',
           'rank_gallery', 'matched_queries', 'compute_distance', 'resolve_ranking', 'Ranking',
           'DISTANCES', 'DIST_METRICS', 'PROTOCOLS']
