"""The web service: a REST API and a web page over one library (`lookalike serve`)."""

from .app import create_app
from .settings import ServerSettings

__all__ = ["ServerSettings", "create_app"]
