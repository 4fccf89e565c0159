"""Submodules imported on first use, for the package and each of its sub-packages (PEP 562)."""
from __future__ import annotations

import importlib
import pkgutil
import sys
from types import ModuleType
from typing import Callable, Iterable


def attach(package: str, path: Iterable[str]) -> tuple[Callable[[str], ModuleType], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for the package named `package` in the folder `path`.

    A submodule is imported the first time it is used as an attribute and then bound
    like any other, so that ``import sandbox`` pays for no more than its top-level
    names: not matplotlib, ipywidgets or Dask.
    """
    def submodules() -> set[str]:
        return {module.name for module in pkgutil.iter_modules(path) if not module.name.startswith("_")}

    def __getattr__(name: str) -> ModuleType:
        if name in submodules():
            return importlib.import_module(f"{package}.{name}")
        # name and obj let the traceback suggest a close name, submodules included (__dir__)
        raise AttributeError(f"module {package!r} has no attribute {name!r}", name=name, obj=sys.modules[package])

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | submodules())
    return __getattr__, __dir__
