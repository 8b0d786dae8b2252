"""Learning how a library ranks: a whitening from its own pictures and their edited views,
its look-alikes and variants, and the switch to the recolour-blind model.
"""

from .recolours import RECOLOUR_SHARE, recolour_blind_model, recolour_note
from .tuner import MIN_IMAGES, SAMPLE, due, learn, learn_if_due, ranking_problem, tune

__all__ = [
    "MIN_IMAGES",
    "RECOLOUR_SHARE",
    "SAMPLE",
    "due",
    "learn",
    "learn_if_due",
    "ranking_problem",
    "recolour_blind_model",
    "recolour_note",
    "tune",
]
