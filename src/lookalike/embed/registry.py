"""Known embedders by name. Adding a model = one module + one line here."""

from __future__ import annotations

from collections.abc import Callable

from .base import Embedder

DEFAULT_MODEL = "effnet-lite0"


def _effnet_lite0(**kwargs) -> Embedder:
    from .effnet_lite0 import EffNetLite0

    return EffNetLite0(**kwargs)


def _effnet_lite0_grey(**kwargs) -> Embedder:
    from .effnet_lite0 import EffNetLite0Grey

    return EffNetLite0Grey(**kwargs)


# Factories rather than classes, so that listing models imports no heavy runtime.
EMBEDDERS: dict[str, Callable[..., Embedder]] = {
    "effnet-lite0": _effnet_lite0,
    "effnet-lite0-grey": _effnet_lite0_grey,  # recolour-insensitive
}


def create_embedder(name: str, **kwargs) -> Embedder:
    try:
        factory = EMBEDDERS[name]
    except KeyError:
        known = ", ".join(sorted(EMBEDDERS))
        raise ValueError(f"unknown model {name!r}; known models: {known}") from None
    return factory(**kwargs)
