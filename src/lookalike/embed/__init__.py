"""Pictures to vectors: the Embedder interface and one module per model, listed in the
registry. torch and open_clip are imported only when a torch model is built.
"""

from .base import (
    Embedder,
    ModelUnavailableError,
    Preprocessor,
    TextNotSupportedError,
    l2_normalise,
    preprocess,
    wants_alpha,
)
from .registry import DEFAULT_MODEL, MODELS, create_embedder, model_info

__all__ = [
    "DEFAULT_MODEL",
    "Embedder",
    "MODELS",
    "ModelUnavailableError",
    "Preprocessor",
    "TextNotSupportedError",
    "create_embedder",
    "l2_normalise",
    "model_info",
    "preprocess",
    "wants_alpha",
]
