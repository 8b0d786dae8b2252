"""How a library with a learned ranking orders a query's candidates: the whitening of
vectors and their details, then diffusion over the candidates' neighbourhood graph.
"""

from .diffusion import rank_whitened
from .whitening import (
    MIN_VARIANT_PAIRS,
    Whitening,
    WhiteningError,
    learn_whitening,
    nearest_rows,
    neighbour_pairs,
)

__all__ = [
    "MIN_VARIANT_PAIRS",
    "Whitening",
    "WhiteningError",
    "learn_whitening",
    "nearest_rows",
    "neighbour_pairs",
    "rank_whitened",
]
