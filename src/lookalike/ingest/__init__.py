"""Images into a library, resumably: the indexing pipeline, its decoding workers and the one
prepare step they share with the API, re-embedding, the crawl runner, safe stops.
"""

from lookalike import loaded_on_first_use

# The decoding workers are spawned processes, and each imports this package before its own
# module: the pipeline, which loads the whole library (FAISS), is imported on first use.
_FACE = {
    "CrawlReport": ".crawl",
    "Crawler": ".crawl",
    "IndexReport": ".pipeline",
    "Indexer": ".pipeline",
    "index_paths": ".pipeline",
    "Prepared": ".prepare",
    "image_sha256": ".prepare",
    "prepare_image": ".prepare",
    "ReembedReport": ".reembedding",
    "fill_details": ".reembedding",
    "fill_pixel_hashes": ".reembedding",
    "fill_tiny_pictures": ".reembedding",
    "read_originals": ".reembedding",
    "reembed": ".reembedding",
}

__all__ = sorted(_FACE)

__getattr__ = loaded_on_first_use(__name__, _FACE)
