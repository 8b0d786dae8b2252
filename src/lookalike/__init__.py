"""lookalike: self-hosted reverse image search.

Data flows through the stages named by the subpackages: sources -> pictures -> embed ->
catalog and index -> search -> cli and server, with ingest, tuning and upkeep beside them.
See docs/architecture.md.
"""

from importlib import import_module

__version__ = "0.1.0"


def loaded_on_first_use(package: str, names: dict[str, str]):
    """A module `__getattr__` (PEP 562) for a package face whose `names` (name -> submodule,
    relative to `package`) are imported when first asked for: what is heavy to import (OpenCV,
    httpx, FAISS) is then paid only by the code that uses it."""

    def __getattr__(name: str):
        if name in names:
            return getattr(import_module(names[name], package), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
