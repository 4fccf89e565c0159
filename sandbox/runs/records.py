"""Writing what an experiment produced: whole files or none, and what made them.

An interrupted run must never leave a half-written file behind, so everything is
written to a temporary file beside its destination and renamed into place.
"""
from __future__ import annotations

import csv
import json
import os
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from sandbox._types import StrPath

PACKAGES = ("numpy", "scipy", "autograd", "matplotlib")


def atomic_write(path: StrPath, write: Callable[..., object], **kwargs: Any) -> None:
    """Call ``write(temporary_path, **kwargs)``, then rename the file to `path` in one step.

    The temporary file keeps the suffix of `path`, as ``savefig`` and ``np.savez``
    choose their format by it.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    write(tmp, **kwargs)
    os.replace(tmp, path)


def write_json(path: StrPath, data: Any) -> None:
    """Write `data` as indented JSON, atomically."""
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(data, indent=2) + "\n"))


def write_csv(path: StrPath, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> None:
    """Write `rows` (dicts) under a header of `columns`, atomically."""
    def write(tmp: Path) -> None:
        with open(tmp, "w", newline="") as file:
            writer = csv.DictWriter(file, columns)
            writer.writeheader()
            writer.writerows(rows)
    atomic_write(path, write)


def read_csv(path: StrPath) -> list[dict[str, str]]:
    """The rows of a CSV file written by `write_csv` (or a sweep), as dicts of strings."""
    with open(path, newline="") as file:
        return list(csv.DictReader(file))


def provenance() -> dict[str, Any]:
    """The command line and the versions of the packages behind a result."""
    from sandbox import __version__
    return dict(command=" ".join(sys.argv),
                versions={p: version(p) for p in PACKAGES} | {"sandbox": __version__})


def difference(old: Any, new: Any, path: str = "") -> str:
    """The first place where two JSON-like settings differ, said in words: 'a.b was 1, is now 2'."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                return difference(old.get(key), new.get(key), f"{path}.{key}" if path else key)
    return f"{path or 'the settings'} was {json.dumps(old)}, is now {json.dumps(new)}"
