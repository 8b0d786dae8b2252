"""Images into a library: the indexing pipeline and its decoding workers, the one step that
makes an image's bytes ready to record and embed, re-embedding with another model, the crawl
runner, and stops at a safe point. Every job resumes.
"""

from .crawl import Crawler, CrawlReport
from .pipeline import Indexer, IndexReport, index_paths
from .prepare import Prepared, image_sha256, prepare_image
from .reembedding import (
    ReembedReport,
    fill_details,
    fill_pixel_hashes,
    fill_tiny_pictures,
    read_originals,
    reembed,
)

__all__ = [
    "CrawlReport",
    "Crawler",
    "IndexReport",
    "Indexer",
    "Prepared",
    "ReembedReport",
    "fill_details",
    "fill_pixel_hashes",
    "fill_tiny_pictures",
    "image_sha256",
    "index_paths",
    "prepare_image",
    "read_originals",
    "reembed",
]
