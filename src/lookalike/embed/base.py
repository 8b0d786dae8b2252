"""The `Embedder` interface: pictures in, L2-normalised float32 vectors out.

Embedding is split in two so that the expensive half can be fed full batches:

- `preprocessor()` returns a small picklable callable that turns one decoded RGB picture (RGBA
  for one whose `keep_alpha` is true: see `preprocess`) into the model's input array. Indexing
  runs it in worker processes, next to decoding.
- `embed(batch)` runs the network on a stacked batch of those arrays in the main process.
  A model may also return *details* (`embed_with_details`): more numbers per picture that the
  index never sees, which the ranking learned from the library maps with the vector
  (ranking/whitening.py); the catalog keeps them beside the vectors.

A new model is one new module in this package that subclasses `Embedder` and registers itself
in `lookalike.embed.registry`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable

import numpy as np
from PIL import Image

from lookalike.pictures import to_rgb

Preprocessor = Callable[[Image.Image], np.ndarray]


class ModelUnavailableError(RuntimeError):
    """The model's weights or runtime are missing; the message says how to get them."""


class TextNotSupportedError(ValueError):
    """Text was asked of a model that embeds pictures only."""


class Embedder(ABC):
    #: Registry name, stored in the library; a library never mixes two names.
    name: str
    #: Bumped whenever preprocessing or pooling changes, since old vectors no longer match.
    version: str
    #: Length of the vectors `embed` returns.
    dim: int
    #: Length of the details `embed_with_details` returns beside them; 0: none.
    detail_dim: int = 0
    #: Whether `embed_text` puts text in the same space as the pictures (CLIP).
    supports_text: bool = False
    #: Whether a recolour moves the vector (False: effnet-lite0-shape); tune suggests the
    #: shape model for libraries of palette swaps only when this is True.
    sees_colour: bool = True
    #: The model of the same network that ignores colour, which `lookalike tune` switches a
    #: library of palette swaps to when nobody chose its model (tuning/recolours.py); None: none.
    recolour_blind: str | None = None

    @property
    def model_id(self) -> str:
        """`name@version`: what the catalog stores for every vector."""
        return f"{self.name}@{self.version}"

    @abstractmethod
    def preprocessor(self) -> Preprocessor:
        """A picklable function: RGB picture -> one model input (no batch axis)."""

    @abstractmethod
    def embed(self, batch: np.ndarray) -> np.ndarray:
        """(N, ...) stacked preprocessor outputs -> (N, dim) float32, each row L2-normalised."""

    def embed_with_details(self, batch: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """`embed`, and (N, detail_dim) float32 details, or None for a model without them."""
        return self.embed(batch), None

    def embed_text(self, texts: list[str]) -> np.ndarray:
        """(N,) strings -> (N, dim) float32 in the pictures' space, each row L2-normalised."""
        raise TextNotSupportedError(
            f"the model {self.name!r} embeds pictures only, not text; search by text needs a "
            "library built with a text model (lookalike models lists them)"
        )

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        """Convenience for few pictures (search queries): preprocess here and embed."""
        return self.embed(self._stacked(images))

    def embed_images_with_details(
        self, images: list[Image.Image]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        return self.embed_with_details(self._stacked(images))

    def _stacked(self, images: list[Image.Image]) -> np.ndarray:
        prep = self.preprocessor()
        return np.stack([preprocess(prep, im) for im in images])


def wants_alpha(preprocessor: Preprocessor) -> bool:
    """Whether the preprocessor reads transparency (decode with keep_alpha) rather than the
    picture composited onto grey, which is what all others get."""
    return bool(getattr(preprocessor, "keep_alpha", False))


def preprocess(preprocessor: Preprocessor, image: Image.Image) -> np.ndarray:
    """Run the preprocessor on the picture as it takes it: with its transparency if it asks
    (`keep_alpha`), else composited onto grey."""
    return preprocessor(image if wants_alpha(preprocessor) else to_rgb(image))


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32)
