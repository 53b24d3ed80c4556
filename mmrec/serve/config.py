"""How the service runs: where, for whom, and within which limits (`mmrec serve` options)."""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mmrec.errors import ConfigError

ENV = "MMREC_SERVE_CONFIG"  # how uvicorn's worker processes receive the config


@dataclass(frozen=True)
class ServeConfig:
    """The options of `mmrec serve`.

    Args:
        db: the catalog directory.
        host, port: where to listen (loopback by default).
        token: bearer token for write endpoints (events); required off loopback.
        workers: uvicorn worker processes (each loads the extractors once).
        cors: origins allowed by CORS (none: CORS headers are never sent).
        max_upload_mb: largest file accepted by search-by-file.
        max_k: largest k any request may ask for.
        preload: load the catalog's extractors at start-up (not at the first query).
        preset: extractor set for text and file queries (default: the catalog's).
        memory_gb: most memory the item and segment vectors kept in memory may take (a
            table past it is read on each request instead).
        threads: threads one request's math (BLAS, Numba, torch) may use: 1 serves
            concurrent requests best (no thread pools fighting over the cores).
        compute_slots: requests searching or recommending at once in this process; the
            rest wait their turn, first come first served (mmrec.serve.gate: Python runs
            one thread at a time, so more at once only adds switching). More cores are
            put to work with more --workers.
    """

    db: Path
    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    workers: int = 1
    cors: tuple[str, ...] = field(default_factory=tuple)
    max_upload_mb: float = 200.0
    max_k: int = 100
    preload: bool = True
    preset: str | None = None
    memory_gb: float = 2.0
    threads: int = 1
    compute_slots: int = 1

    def __post_init__(self) -> None:
        if not is_loopback(self.host) and not self.token:
            raise ConfigError(
                f"--host {self.host} listens beyond this machine: give --token T (writes and "
                "events then need 'Authorization: Bearer T'), or listen on 127.0.0.1")
        if self.token is not None and len(self.token) < 8:
            raise ConfigError("--token is too short: use at least 8 characters")
        counts = (self.workers, self.max_k, self.threads, self.compute_slots)
        if min(counts) < 1 or self.max_upload_mb <= 0 or self.memory_gb < 0:
            raise ConfigError("--workers, --max-k, --threads, --compute-slots, --max-upload-mb and "
                              "--memory-gb must be positive")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def to_env(self) -> str:
        return json.dumps({**asdict(self), "db": str(self.db), "cors": list(self.cors)})

    @classmethod
    def from_env(cls) -> ServeConfig:
        raw = os.environ.get(ENV)
        if not raw:
            raise ConfigError(f"${ENV} is not set: start the service with `mmrec serve`")
        data = json.loads(raw)
        return cls(**{**data, "db": Path(data["db"]), "cors": tuple(data["cors"])})


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 and localhost: addresses only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
