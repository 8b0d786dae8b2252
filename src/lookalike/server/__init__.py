"""The web service over one library (`lookalike serve`): a REST API, a web page for
browsing the image space, and their limits on what clients may send."""

from .app import create_app
from .limits import parse_rate
from .settings import ServerSettings

__all__ = ["ServerSettings", "create_app", "parse_rate"]
