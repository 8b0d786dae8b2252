"""Vectors to nearest neighbours: the VectorIndex interface, its FAISS and Milvus stores, and
the search over tiny pictures. A cache of the catalog's vectors, rebuilt from it at need.
"""

from .base import StoreError, VectorIndex
from .faiss_index import ANN_THRESHOLD, RERANK_DEPTH, FaissIndex
from .stores import StoreConfig, confirm, copy_all, open_milvus, replay
from .tiny import TinyPictures

__all__ = [
    "ANN_THRESHOLD",
    "FaissIndex",
    "RERANK_DEPTH",
    "StoreConfig",
    "StoreError",
    "TinyPictures",
    "VectorIndex",
    "confirm",
    "copy_all",
    "open_milvus",
    "replay",
]
