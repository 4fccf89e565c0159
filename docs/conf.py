"""Sphinx configuration of the giou-sandbox documentation site (`make docs`).

Pages are MyST Markdown; the tutorials are the notebooks of notebooks/, copied into
docs/tutorials/ when the build starts (a copy is not committed) and rendered by myst-nb with
their committed outputs, never executed here.
The reference pages are generated at build time by docs/_ext/sandbox_docs.py: every loss
from the registry and its docstrings, every command line from its argparse parser, every
column of every results file and the sweep-file schema from the constants that define them.
"""
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS / "_ext"))


def copy_notebooks(source=DOCS.parent / "notebooks", copies=DOCS / "tutorials"):
    """The notebooks as pages of the site: each copied unless its copy is the same, so that an
    unchanged notebook is not read again; a copy whose notebook is gone is removed."""
    notebooks = {path.name: path for path in source.glob("*.ipynb")}
    for copy in copies.glob("*.ipynb"):
        if copy.name not in notebooks:
            copy.unlink()
    for name, path in notebooks.items():
        copy = copies / name
        if not copy.exists() or copy.read_bytes() != path.read_bytes():
            shutil.copyfile(path, copy)


copy_notebooks()

import sandbox  # noqa: E402

project = "giou-sandbox"
author = "the giou-sandbox authors"
copyright = f"2026, {author}"
release = version = sandbox.__version__

extensions = [
    "myst_nb",  # Markdown pages (myst-parser) and the notebooks
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx.ext.mathjax",
    "sandbox_docs",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "data", "**.ipynb_checkpoints"]  # data/: committed results the pages are made from
root_doc = "index"
smartquotes = False  # --out stays two hyphens, and quotes as written
nitpicky = True
# Types and names of other projects: no intersphinx (CI has no network), so they cannot resolve.
nitpick_ignore_regex = [
    (r"py:.*", r"(numpy|np|scipy|matplotlib|autograd|argparse|pathlib|collections|typing|collections\.abc"
               r"|concurrent|multiprocessing|distributed|dask|ipywidgets|pandas|enum|os|builtins)\..*"),
    (r"py:class", r"(ndarray|array_like|array-like|callable|optional|sequence|iterable|mapping|dict|list|tuple"
                  r"|str|int|float|bool|None|object|Path|Figure|Axes|OptimizeResult|FuncAnimation|Generator"
                  r"|ArrayLike|NDArray|Any|Callable|Sequence|Iterable|Mapping|Iterator|Literal|Union|Optional"
                  r"|TypeAlias|Self)"),
]

# MyST: anchors for headings down to ###, so that [text](page.md#heading) is checked.
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath", "colon_fence", "deflist", "substitution"]
# What the pages say of the registry, from the registry: a loss added in its three places changes no page.
myst_substitutions = {"loss_count": str(len(sandbox.LOSSES)),
                      "variant_bases": ", ".join(f"`{name}`" for name in sandbox.losses.IOU_BASED)}
nb_execution_mode = "off"  # the notebooks are committed with their outputs; `make notebooks` refreshes them
# The loss explorer's output holds the widget and a static PNG: the site is static, so show the PNG.
nb_mime_priority_overrides = [("html", "application/vnd.jupyter.widget-view+json", None)]
nb_ipywidgets_js = {}  # and load no widget JavaScript from a CDN

autosummary_generate = True
templates_path = ["_templates"]  # a module's page: its docstring and members, then its sub-modules
autodoc_default_options = {"members": True, "undoc-members": True, "member-order": "bysource"}
autodoc_typehints = "none"  # the numpydoc Parameters sections say the types
numpydoc_show_class_members = False
numpydoc_validation_checks = set()

html_theme = "pydata_sphinx_theme"
html_title = f"giou-sandbox {release}"
html_static_path = []
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "header_links_before_dropdown": 8,
    "secondary_sidebar_items": ["page-toc"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_sidebars = {"index": []}
html_show_sourcelink = False
