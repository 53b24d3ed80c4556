"""Scale-out on Ray Data (`--engine ray`): ingest and batch recommendation spread over a
Ray cluster, writing Lance. Ray is optional (`pip install 'mmrec[ray]'`): nothing here
imports it until an engine runs, and `import mmrec` never loads this package.

See docs/scale-out.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmrec.lazy import lazy_attributes

from .runtime import RAY_HINT, RayEngineError, RayOptions, RayUnavailableError, import_ray

if TYPE_CHECKING:
    from .ingest import ingest_directory_ray, ray_ingester
    from .recommend import ray_rows_writer

__getattr__ = lazy_attributes(__name__, {"ingest_directory_ray": ".ingest", "ray_ingester": ".ingest",
                                         "ray_rows_writer": ".recommend"})

__all__ = ["RAY_HINT", "RayEngineError", "RayOptions", "RayUnavailableError", "import_ray",
           "ingest_directory_ray", "ray_ingester", "ray_rows_writer"]
