"""Where images come from: folders, archives, http(s) behind its guards, URL lists and the
sites a crawl reads. Each yields items whose bytes a decoding worker reads itself.
"""

from .archives import ArchiveError, ArchiveLimits, MemoryItem, read_archive
from .base import ArchiveFile, Source, SourceError, SourceItem, SourceProblem
from .crawl.base import Parsed, SiteAdapter
from .crawl.opengameart import ART_TYPES, DEFAULT_BASE_URL, OpenGameArt
from .crawl.site import GenericSite
from .folder import FileItem, FolderSource
from .http import USER_AGENT, Fetcher, FetchError, FetchPolicy, fetch_bytes, is_url
from .locate import ImageGone, read_image_bytes
from .urls import Downloader, UrlSource, UrlTask, read_url_list, safe_filename

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
