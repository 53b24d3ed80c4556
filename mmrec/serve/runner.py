"""Run the app under uvicorn: one process, or several workers that each load the app."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from .config import ENV, ServeConfig

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


def limit_threads(n: int) -> None:
    """Give each request's math n threads: set for this process and its workers before
    torch and Numba start their pools (a variable the user set wins), and for the BLAS
    and OpenMP pools already loaded. A service runs many requests at once, so pools
    of a thread per core each would only fight over the cores."""
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, str(n))
    numba = sys.modules.get("numba")
    if numba is not None:  # imported already: it must agree with the variable from now on
        _limit_numba(numba)
    torch = sys.modules.get("torch")
    if torch is not None:
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    from threadpoolctl import threadpool_limits

    threadpool_limits(int(os.environ["OPENBLAS_NUM_THREADS"]))


def _limit_numba(numba: Any) -> None:
    """Numba read its thread count at import and starts its pool (and, with the OpenMP
    layer, OpenMP's, which torch shares) at the first parallel call: until then the count
    it will start with can still change. A pool already running keeps its size."""
    from numba.np.ufunc import parallel

    if getattr(parallel, "_is_initialized", True):
        os.environ["NUMBA_NUM_THREADS"] = str(numba.config.NUMBA_NUM_THREADS)
        return
    try:
        numba.config.reload_config()
    except RuntimeError:  # the config refused the new count: keep the one it has
        os.environ["NUMBA_NUM_THREADS"] = str(numba.config.NUMBA_NUM_THREADS)
    parallel.NUM_THREADS = numba.config.NUMBA_NUM_THREADS


def serve(config: ServeConfig, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve until interrupted. With workers > 1 uvicorn starts that many processes, each
    building the app (and loading the extractors) from the config passed in the environment."""
    import uvicorn

    limit_threads(config.threads)
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
