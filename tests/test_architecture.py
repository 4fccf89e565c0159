"""The package's layers: each sub-package imports only from those below it (the docs' picture)."""
import ast
from pathlib import Path

import sandbox

LAYERS = ["geometry", "losses", "workers", "optim", "learning", "runs", "views"]
"""From the bottom up: a module may import from its own layer and the layers before it."""
ROOT = Path(sandbox.__file__).parent


def layer_of(module):
    """The layer of a dotted module name under sandbox (None for the package itself and _lazy)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def imports():
    """(importing module, imported module) for every import of a sandbox module, lazy ones included."""
    for path in sorted(ROOT.rglob("*.py")):
        module = ".".join(("sandbox", *path.relative_to(ROOT).with_suffix("").parts)).removesuffix(".__init__")
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sandbox"):
                targets = [node.module] if node.module != "sandbox" else [f"sandbox.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names if a.name.startswith("sandbox")]
            else:
                continue
            for target in targets:
                yield module, target


def test_every_import_goes_down_the_layers():
    upward = [(module, target) for module, target in imports()
              if layer_of(module) and layer_of(target)
              and LAYERS.index(layer_of(target)) > LAYERS.index(layer_of(module))]
    assert upward == []


def test_the_layers_are_the_sub_packages_and_each_is_used():
    packages = {path.name for path in ROOT.iterdir() if (path / "__init__.py").exists()}
    assert packages | {"workers"} == set(LAYERS) and (ROOT / "workers.py").exists()
    used = {layer_of(target) for _, target in imports()}
    assert set(LAYERS) <= used
