"""Import lancedb without paying for its REST namespace client until something uses it.

`import lancedb` imports `lance_namespace`, whose package re-exports the generated
OpenAPI client `lance_namespace_urllib3_client`; that package's `__init__` imports every
API class, and pydantic builds a validator for each of their ~200 methods: 0.85 of the
1.6 s that `import lancedb` takes on two cores. A local catalog needs only the client's
model classes. So the package is registered first as a module whose body runs on the
first attribute anyone reads from it; its submodules (`.models`) import as usual.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
import types
from typing import Any

log = logging.getLogger(__name__)
DEFERRED = "lance_namespace_urllib3_client"


class _DeferredPackage(types.ModuleType):
    """A package whose `__init__` body runs when one of its own attributes is first read."""

    _loaded = False
    _lock = threading.RLock()  # the body's own imports read attributes of the package

    def __getattr__(self, attr: str) -> Any:
        if not attr.startswith("__"):
            with self._lock:  # one thread runs the body; the others then find its names
                if not self._loaded:
                    self._loaded = True
                    self.__spec__.loader.exec_module(self)
            if attr in self.__dict__:
                return self.__dict__[attr]
        raise AttributeError(f"module {self.__name__!r} has no attribute {attr!r}")


def _defer(name: str) -> None:
    if name in sys.modules:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        return
    module = _DeferredPackage(name)
    module.__spec__, module.__loader__, module.__file__ = spec, spec.loader, spec.origin
    module.__path__, module.__package__ = list(spec.submodule_search_locations), name
    sys.modules[name] = module


def import_lancedb() -> Any:
    """`import lancedb`, with the namespace client's package body deferred (see above)."""
    if "lancedb" not in sys.modules:
        try:
            _defer(DEFERRED)
        except (ImportError, ValueError) as e:  # a layout this trick does not know: plain import
            log.debug("importing lancedb without deferring %s: %s", DEFERRED, e)
    import lancedb

    return lancedb
