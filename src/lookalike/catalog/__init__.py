"""The SQLite catalog, the source of truth: images, places, vectors, downloads and crawl
queues, and the records every stage shares. All of lookalike's SQL lives here.
"""

from .records import (
    DONE_STATUSES,
    VECTOR_STATUSES,
    Filters,
    ImageRecord,
    ModelChooser,
    NewImage,
    Place,
    display_url,
)
from .schema import SCHEMA_VERSION, STORED_FORM_HASHES
from .staging import stage_vectors, staged_ids, swap_in_staged
from .store import Catalog
from .vectors import VECTOR_DTYPE, as_stored
from .web import CrawlQueue, DownloadLog

__all__ = [
    "Catalog",
    "CrawlQueue",
    "DONE_STATUSES",
    "DownloadLog",
    "Filters",
    "ImageRecord",
    "ModelChooser",
    "NewImage",
    "Place",
    "SCHEMA_VERSION",
    "STORED_FORM_HASHES",
    "VECTOR_STATUSES",
    "VECTOR_DTYPE",
    "as_stored",
    "display_url",
    "stage_vectors",
    "staged_ids",
    "swap_in_staged",
]
