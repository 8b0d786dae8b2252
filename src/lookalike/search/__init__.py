"""Queries to hits: the searcher, query vectors and expressions, match tiers and
near-duplicates, and the verification of copies by keypoints or pixels.
"""

from lookalike import loaded_on_first_use

from .hits import Hit, QueryResult, hit_to_dict
from .query import QueryError, QueryVector
from .searcher import Searcher

# Verification imports OpenCV: loaded when a search verifies, not with every search.
_VERIFICATION = {
    "is_pixel_copy": ".pixel_match",
    "MIN_SIDE": ".verify",
    "indexed_image": ".verify",
}


__all__ = [
    "Hit",
    "MIN_SIDE",
    "QueryError",
    "QueryResult",
    "QueryVector",
    "Searcher",
    "hit_to_dict",
    "indexed_image",
    "is_pixel_copy",
]

__getattr__ = loaded_on_first_use(__name__, _VERIFICATION)
