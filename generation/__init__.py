"""Generation: tiles in, synthetic tiles and their measures out (docs/architecture.md)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, **modules: str) -> tuple[Callable[[str], Any], list[str]]:
    """A package's module __getattr__ (PEP 562) and __all__: each name listed for a module
    (`store="read_tile write_atomic"`) is imported from package.module on first use.
    Importing a package then costs nothing, so a light module of it (or a worker process
    without Django) does not load the heavy ones, and no package depends on the order in
    which its modules import each other."""
    exports = {name: module for module, names in modules.items() for name in names.split()}

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    return __getattr__, sorted(exports)
