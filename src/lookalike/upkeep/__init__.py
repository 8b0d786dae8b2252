"""Keeping a library sound: `lookalike check` verifies the consistency rules of
docs/architecture.md, and `--repair` restores them.
"""

from .check import check_library

__all__ = ["check_library"]
