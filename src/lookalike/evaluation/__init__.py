"""Measuring quality on labelled image sets (`lookalike eval`): retrieval mAP@10, the
detection of edited copies, and sprites that find their sheet.
"""

from .copies import evaluate_copies
from .retrieval import evaluate_retrieval
from .sprites import evaluate_sprites

__all__ = ["evaluate_copies", "evaluate_retrieval", "evaluate_sprites"]
