"""Generation: tiles in, synthetic tiles and their measures out (docs/architecture.md)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A package's module __getattr__ (PEP 562): each entry point is imported from its module
    on first use. Importing a package then costs nothing, so a light module of it (or a worker
    process without Django) does not load the heavy ones, and no package depends on the order
    in which its modules import each other."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    return __getattr__
