"""Where images come from: folders, archives, http(s) behind its guards, URL lists and the
sites a crawl reads. Each yields items whose bytes a decoding worker reads itself.
"""

from lookalike import loaded_on_first_use

from .archives import ArchiveError, ArchiveLimits, MemoryItem, read_archive
from .base import ArchiveFile, Source, SourceError, SourceItem, SourceProblem
from .folder import FileItem, FolderSource

# The network and the crawl (httpx, BeautifulSoup) are imported on first use: the decoding
# workers, spawned processes that unpickle folder and archive items, need neither.
_NETWORK = {
    "Parsed": ".crawl.base",
    "SiteAdapter": ".crawl.base",
    "ART_TYPES": ".crawl.opengameart",
    "DEFAULT_BASE_URL": ".crawl.opengameart",
    "OpenGameArt": ".crawl.opengameart",
    "GenericSite": ".crawl.site",
    "FetchError": ".http",
    "FetchPolicy": ".http",
    "Fetcher": ".http",
    "USER_AGENT": ".http",
    "fetch_bytes": ".http",
    "is_url": ".http",
    "ImageGone": ".locate",
    "read_image_bytes": ".locate",
    "Downloader": ".urls",
    "UrlSource": ".urls",
    "UrlTask": ".urls",
    "read_url_list": ".urls",
    "safe_filename": ".urls",
}

__all__ = [
    "ART_TYPES",
    "ArchiveError",
    "ArchiveFile",
    "ArchiveLimits",
    "DEFAULT_BASE_URL",
    "Downloader",
    "FetchError",
    "FetchPolicy",
    "Fetcher",
    "FileItem",
    "FolderSource",
    "GenericSite",
    "ImageGone",
    "MemoryItem",
    "OpenGameArt",
    "Parsed",
    "SiteAdapter",
    "Source",
    "SourceError",
    "SourceItem",
    "SourceProblem",
    "USER_AGENT",
    "UrlSource",
    "UrlTask",
    "fetch_bytes",
    "is_url",
    "read_archive",
    "read_image_bytes",
    "read_url_list",
    "safe_filename",
]

__getattr__ = loaded_on_first_use(__name__, _NETWORK)
