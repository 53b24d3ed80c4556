"""The HTTP service (`mmrec serve`): one long-lived process keeps a catalog's extractors
loaded and answers search, moments, recommendations, live events and media over HTTP.
"""

from .app import app_from_env, create_app
from .config import ServeConfig, is_loopback
from .runner import serve

__all__ = ["ServeConfig", "app_from_env", "create_app", "is_loopback", "serve"]
