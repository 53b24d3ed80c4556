"""Package attributes that import their module on first use (a PEP 562 `__getattr__`), so
that importing a package stays cheap while its public names stay where users look."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package` that takes each of `names` from its module
    (absolute, or relative to the package: ".pipeline") when it is first read."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module, package), name)

    return __getattr__
