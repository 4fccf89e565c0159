"""The package's layers and the imports between them, read from the source (for a test and the docs).

A module may import from its own layer and those before it in `LAYERS`:
`tests/test_architecture.py` holds every import to that, and the docs draw the
imports found here (`docs/_ext/sandbox_docs.py`), so the picture is the code's.
"""
from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path
from typing import Iterator

LAYERS = ["geometry", "losses", "workers", "optim", "learning", "runs", "views"]
"""From the bottom up: a module may import from its own layer and the layers before it."""
ROOT = Path(__file__).parent


def layer_of(module: str) -> str | None:
    """The layer of a dotted module name under sandbox (None for the package itself and its private modules)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def imports() -> Iterator[tuple[str, str]]:
    """(importing module, imported module) for every import of a sandbox module, lazy ones included."""
    for path in sorted(ROOT.rglob("*.py")):
        module = ".".join(("sandbox", *path.relative_to(ROOT).with_suffix("").parts)).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sandbox"):
                targets = [node.module] if node.module != "sandbox" else [f"sandbox.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("sandbox")]
            else:
                continue
            for target in targets:
                yield module, target


def layer_imports() -> Counter[tuple[str, str]]:
    """How many imports go from each layer to each other layer: ``{(from, to): count}``."""
    pairs = ((layer_of(module), layer_of(target)) for module, target in imports())
    return Counter((a, b) for a, b in pairs if a and b and a != b)
