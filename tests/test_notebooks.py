"""Every notebook runs headless without error, is numbered, and is committed with its outputs."""
import base64
import functools
import io
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from PIL import Image

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
EXPLORER = "04_loss_explorer.ipynb"


@functools.lru_cache(maxsize=None)
def executed(path):
    """The notebook at `path` run top to bottom in a fresh kernel, as `make notebooks` runs it."""
    notebook = nbformat.read(path, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    return notebook


def outputs(notebook):
    return [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]


def shows_png(output):
    return output.output_type in ("display_data", "execute_result") and "image/png" in output.data


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_executes_headless(path):
    notebook = executed(path)
    assert not [o for o in outputs(notebook) if o.output_type == "error"]
    assert any(shows_png(o) for o in outputs(notebook))


def test_there_is_a_quickstart_notebook():
    assert "01_quickstart.ipynb" in [p.name for p in NOTEBOOKS]


def test_notebooks_are_numbered_in_reading_order():
    names = [p.name for p in NOTEBOOKS]
    assert [n for n in names if not re.fullmatch(r"\d\d_[a-z0-9_]+\.ipynb", n)] == []
    numbers = [n[:2] for n in names]
    assert len(set(numbers)) == len(numbers), f"two notebooks share a number: {names}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_with_its_outputs(path):
    """So it reads on GitHub: every code cell ran, in order, in one go, without error."""
    notebook = nbformat.read(path, as_version=4)
    cells = [c for c in notebook.cells if c.cell_type == "code" and c.source.strip()]
    counts = [c.execution_count for c in cells]
    assert None not in counts, f"{path.name} has cells that never ran; run `make notebooks`"
    assert counts == list(range(1, len(cells) + 1)), f"{path.name} was not run top to bottom: {counts}"
    assert not [o for o in outputs(notebook) if o.output_type == "error"]
    assert any(shows_png(o) for o in outputs(notebook)), f"{path.name} is committed without its figures"


def explorer_outputs(notebook):
    return [o for o in outputs(notebook) if "data" in o and WIDGET_VIEW in o.data]


@pytest.mark.slow
@pytest.mark.parametrize("source", ["headless run", "committed"])
def test_explorer_output_carries_its_static_view_beside_the_widget(source):
    """Where widgets cannot run (nbconvert, GitHub) the explorer's own output holds a PNG."""
    path = next(p for p in NOTEBOOKS if p.name == EXPLORER)
    notebook = executed(path) if source == "headless run" else nbformat.read(path, as_version=4)
    [output] = explorer_outputs(notebook)
    assert shows_png(output)
    with Image.open(io.BytesIO(base64.b64decode(output.data["image/png"]))) as image:
        assert image.format == "PNG" and image.size[0] > 400
    assert "static view" in output.data["text/plain"]
    # No widget's bare repr ("HBox(children=...)") stands in for a figure anywhere.
    texts = [o.data.get("text/plain", "") for o in outputs(notebook) if "data" in o]
    assert not [t for t in texts if re.match(r"(H|V)Box\(|FloatSlider\(", t)]
