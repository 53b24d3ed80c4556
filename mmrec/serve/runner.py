"""Run the app under uvicorn: one process, or several workers that each load the app."""

from __future__ import annotations

import os
from collections.abc import Callable

from .config import ENV, ServeConfig


def serve(config: ServeConfig, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve until interrupted. With workers > 1 uvicorn starts that many processes, each
    building the app (and loading the extractors) from the config passed in the environment."""
    import uvicorn

    url = f"http://{config.host}:{config.port}"
    if config.workers > 1:
        os.environ[ENV] = config.to_env()
        if on_ready is not None:
            on_ready(url)
        uvicorn.run("mmrec.serve.app:app_from_env", factory=True, host=config.host, port=config.port,
                    workers=config.workers, log_level="warning")
        return
    from .app import create_app

    app = create_app(config)  # the catalog opened and the extractors loaded before we listen
    if on_ready is not None:
        on_ready(url)
    uvicorn.run(app, host=config.host, port=config.port, log_level="warning")
