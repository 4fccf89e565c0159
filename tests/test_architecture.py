"""The package's layers: each sub-package imports only from those below it (the docs draw the same imports)."""
from sandbox._layers import LAYERS, ROOT, imports, layer_imports, layer_of


def test_every_import_goes_down_the_layers():
    upward = [(module, target) for module, target in imports()
              if layer_of(module) and layer_of(target)
              and LAYERS.index(layer_of(target)) > LAYERS.index(layer_of(module))]
    assert upward == []


def test_the_layers_are_the_sub_packages_and_each_is_used():
    packages = {path.name for path in ROOT.iterdir() if (path / "__init__.py").exists()}
    assert packages | {"workers"} == set(LAYERS) and (ROOT / "workers.py").exists()
    used = {layer for pair in layer_imports() for layer in pair}
    assert set(LAYERS) == used
