"""lookalike: self-hosted reverse image search.

Data flows through the stages named by the subpackages: sources -> decode -> embed -> index ->
catalog -> search -> cli (and, later, server). See docs/architecture.md.
"""

__version__ = "0.1.0"
