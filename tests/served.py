"""Shared by the service's test modules: the sample catalog they serve, and a real uvicorn
server for an app on 127.0.0.1 at an ephemeral port, in a thread of the test process."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn

import mmrec
from mmrec.media.samples import make_sample_library, write_sample_interactions


def sample_catalog(tmp_path_factory, include_broken: bool = False) -> tuple[Path, Path]:
    """(library, catalog): the sample library ingested with offline-tiny, its users imported."""
    lib = make_sample_library(tmp_path_factory.mktemp("lib"), include_broken=include_broken)[0].parent
    db = tmp_path_factory.mktemp("db") / "cat.lance"
    catalog = mmrec.Catalog(db)
    catalog.ingest(lib, preset="offline-tiny")
    catalog.import_interactions(write_sample_interactions(lib))
    return lib, db


@contextmanager
def running(app) -> Iterator[str]:
    """The app served by uvicorn until the block ends; yields its base URL."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
