"""Ray for mmrec: imported here only, when an engine runs (never by `import mmrec` or the
local commands), with the install hint when it is missing; connection and sizing."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from mmrec.errors import ConfigError, MmrecError

log = logging.getLogger(__name__)

RAY_HINT = "Ray is not installed: pip install 'mmrec[ray]'"
# Passed to the workers of a cluster this process connects to (a local instance started
# here inherits the whole environment): model paths, caches, offline switches.
ENV_PREFIXES = ("MMREC_", "HF_", "TRANSFORMERS_", "OPENBLAS_", "OMP_")


class RayUnavailableError(MmrecError):
    """--engine ray without Ray (or lance-ray/pylance) installed."""


class RayEngineError(MmrecError):
    """A Ray task or actor failed for a reason mmrec did not raise itself."""


def import_ray() -> Any:
    """The ray module with Ray Data and lance-ray, or RayUnavailableError with the install hint."""
    try:
        import lance  # noqa: F401  (pylance: the fragments' commit)
        import lance_ray  # noqa: F401
        import ray
        import ray.data  # noqa: F401
    except ImportError as e:
        raise RayUnavailableError(f"{RAY_HINT} ({e})") from e
    return ray


@dataclass(frozen=True)
class RayOptions:
    """Where and how wide the Ray engine runs (CLI: --address, --gpus-per-worker, --ray-workers).

    address: None uses the Ray instance this process is connected to, else starts a local
        one; "auto" joins the cluster of this machine; "HOST:PORT" or "ray://HOST:PORT" another.
    gpus_per_worker: GPUs per embed actor (fractions share a GPU); None: 1 when the cluster
        has GPUs, else 0 (CPU actors).
    workers: embed actors (one model load each); None: GPUs / gpus_per_worker, or half the CPUs.
    """

    address: str | None = None
    gpus_per_worker: float | None = None
    workers: int | None = None

    def __post_init__(self) -> None:
        if self.gpus_per_worker is not None and self.gpus_per_worker < 0:
            raise ConfigError(f"--gpus-per-worker must be >= 0, got {self.gpus_per_worker}")
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"--ray-workers must be >= 1, got {self.workers}")


@dataclass(frozen=True)
class Sizing:
    """What the engine asks of the cluster: embed actors, GPUs each, the actors' device."""

    workers: int
    gpus: float
    device: str


@contextmanager
def connected(address: str | None) -> Iterator[Any]:
    """Ray connected for the with-block: the instance already up, else `address` (or a new
    local instance); a connection made here is shut down after, which ends its actors."""
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    if address is None:
        ray.init(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
    else:
        env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIXES)}
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING,
                 runtime_env={"env_vars": env})
    try:
        yield ray
    finally:
        ray.shutdown()


@contextmanager
def worker_errors(ray: Any) -> Iterator[None]:
    """A worker's own MmrecError (a refused node, a bad preset) raised here as itself, and any
    other Ray failure as one RayEngineError line, instead of Ray's nested tracebacks."""
    try:
        yield
    except ray.exceptions.RayError as e:
        cause: BaseException | None = e
        while cause is not None and not isinstance(cause, MmrecError):
            cause = getattr(cause, "cause", None) or cause.__cause__
        if cause is not None:
            raise cause from None  # (it is part of e's chain already)
        lines = [ln for ln in str(e).splitlines() if ln.strip()]
        raise RayEngineError(f"the Ray engine failed: {lines[-1] if lines else type(e).__name__}") from e


def quiet_data(ray: Any) -> None:
    """No Ray Data progress bars or start banners: mmrec reports progress itself."""
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.enable_operator_progress_bars = False
    ctx.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def sizing(ray: Any, options: RayOptions) -> Sizing:
    """Embed actors and GPUs each, from the options or what the cluster offers."""
    res = ray.cluster_resources()
    gpus_here = float(res.get("GPU", 0.0))
    gpus = options.gpus_per_worker
    if gpus is None:
        gpus = 1.0 if gpus_here > 0 else 0.0
    if gpus > gpus_here:
        raise ConfigError(f"--gpus-per-worker {gpus:g}: the Ray cluster has {gpus_here:g} GPUs")
    workers = options.workers
    if workers is None:
        workers = max(1, int(gpus_here / gpus)) if gpus > 0 else max(1, int(res.get("CPU", 1)) // 2)
    return Sizing(workers, gpus, "cuda" if gpus > 0 else "cpu")
