"""The parts of the docs that are generated at build time, so that they cannot go stale.

Directives (usable in MyST pages as ```{name} ...```):

- ``loss-registry``: every loss of the registry, in its order, from `sandbox.losses.catalogue()`:
  a table of names, formulas, papers and parameters with their defaults, then each loss's whole
  docstring. Written as reStructuredText, so use it inside ``{eval-rst}``.
- ``experiment-cli PATH``: the command line of one experiment script, from its own argparse
  parser (the script is imported by path and its ``parse_args`` is stopped before it parses):
  its description, usage, and every option with its help as ``--help`` prints it.
  At the end of the build, a script of experiments/ that no page documents is a warning.
- ``described TARGET``: a table of names (columns of a results file, keys of the sweep file)
  with their meanings, given as ``name: meaning`` lines in the directive's body; TARGET names
  the code's own list or dict (``module:expression`` or ``experiments/script.py:expression``);
  ``:defaults:`` adds a column of defaults, from TARGET's dict or from the dict it names.
  A name the code has and the body does not describe, or one described that the code does not
  have, is a warning, so the docs follow the code. ``*`` in a described name matches any text.
- ``which-loss-table FOLDER``: the which-loss rank table, made by `sandbox.runs.evidence.rank_table`
  from the committed ``evidence.csv`` and ``ranking.csv`` of FOLDER (relative to docs/).

Under ``-W`` every warning fails the build.
"""
import argparse
import csv
import fnmatch
import importlib
import importlib.util
import inspect
import re
import sys
import types
from pathlib import Path

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = ROOT / "experiments"
logger = logging.getLogger(__name__)


# Helpers.
def table(header, rows, widths=None):
    """A docutils table of `header` (strings) and `rows` (cells: strings or lists of nodes)."""
    columns = len(header)
    group = nodes.tgroup(cols=columns)
    for width in widths or [1] * columns:
        group += nodes.colspec(colwidth=width)

    def row_of(cells, head=False):
        row = nodes.row()
        for cell in cells:
            entry = nodes.entry()
            if isinstance(cell, str):
                entry += nodes.paragraph(text=cell) if not head else nodes.paragraph("", "", nodes.strong(text=cell))
            else:
                entry += nodes.paragraph("", "", *cell)
            row += entry
        return row

    thead = nodes.thead()
    thead += row_of(header, head=True)
    group += thead
    body = nodes.tbody()
    for cells in rows:
        body += row_of(cells)
    group += body
    result = nodes.table(classes=["generated"])
    result += group
    return result


def load_script(path):
    """The experiment script at `path` (relative to the repository), imported as a module."""
    path = ROOT / path
    name = f"_docs_{path.stem}"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def resolve(target):
    """The object `target` names: ``module:expression`` or ``experiments/x.py:expression``."""
    where, _, expression = target.partition(":")
    module = load_script(where) if where.endswith(".py") else importlib.import_module(where)
    return eval(expression, vars(module))  # the docs' own text, not input


class _Parsed(Exception):
    """Raised instead of parsing: carries the parser an experiment built."""


def experiment_parser(path):
    """The `argparse.ArgumentParser` that the script at `path` builds in its ``parse_args``."""
    module = load_script(path)
    parse = argparse.ArgumentParser.parse_args

    def stop(parser, *args, **kwargs):
        raise _Parsed(parser)

    argparse.ArgumentParser.parse_args = stop
    try:
        module.parse_args([])
    except _Parsed as parsed:
        return parsed.args[0]
    finally:
        argparse.ArgumentParser.parse_args = parse
    raise RuntimeError(f"{path}: parse_args([]) did not call ArgumentParser.parse_args")


def literal(text):
    return [nodes.literal(text=text)]


# Losses.
class LossRegistry(SphinxDirective):
    """Every loss of `sandbox.losses.catalogue()`: a summary table, then each docstring (reStructuredText)."""

    def run(self):
        from sandbox.losses import catalogue

        lines = [".. list-table::", "   :header-rows: 1", "   :widths: 16 40 24 20", "",
                 "   * - name", "     - formula", "     - paper", "     - parameters (defaults)"]
        entries = []
        for entry in catalogue():
            name, function = entry.name, entry.function
            paper = plain_math(entry.paper)
            if entry.arxiv:
                paper = paper.replace(f"arXiv {entry.arxiv}", f"`arXiv {entry.arxiv} <https://arxiv.org/abs/{entry.arxiv}>`__")
            shown = ", ".join(f"``{key}={value!r}``" for key, value in entry.parameters.items()) or "none"
            lines += [f"   * - :ref:`{name} <loss-{name}>`", f"     - {plain_math(entry.formula)}", f"     - {paper}",
                      f"     - {shown}"]
            signature = ", ".join(["pred", "target", *(f"{key}={value!r}" for key, value in entry.parameters.items())])
            kernel = "a fused kernel" if entry.fused else "no fused kernel: autograd differentiates it even with ``gradient='fused'``"
            facts = [kernel] + [f"a variant of ``{entry.base}``"] * bool(entry.base) + (
                [f"variants {', '.join(f'``{v}``' for v in entry.variants)}"] if entry.variants else [])
            doc = inspect.getdoc(function) or ""
            entries += ["", f".. _loss-{name}:", "", f".. rubric:: {name}", "",
                        f"``sandbox.LOSSES[{name!r}]({signature})``, in ``{function.__module__}``; "
                        + "; ".join(facts) + ".", ""]
            entries += [plain_math(line) for line in doc.splitlines()] + [""]
        content = StringList(lines + entries, source="sandbox.losses.catalogue()")
        container = nodes.container()
        self.state.nested_parse(content, self.content_offset, container)
        return container.children


# Docstrings as plain-text math.
_LONE_STAR = re.compile(r"(?<=[\s(])\*(?=[\s,)/])")


def plain_math(line):
    """`line` of a docstring with the plain-text math that reStructuredText would misread escaped:
    |x| (a substitution to it) and a lone * (an emphasis that never ends), outside ``literals``."""
    if line.lstrip().startswith(("+-", "|")):
        return line  # a table
    parts = line.split("``")
    for i in range(0, len(parts), 2):
        parts[i] = _LONE_STAR.sub(r"\\*", parts[i].replace("|", "\\|"))
    return "``".join(parts)


def escape_docstring(app, what, name, obj, options, lines):
    lines[:] = [plain_math(line) for line in lines]


def skip_type_alias(app, what, name, obj, skip, options):
    """Leave out type aliases (``Row = dict[str, Any]``): autodoc takes them for classes and fails."""
    if isinstance(obj, types.GenericAlias) or (type(obj).__module__ == "typing" and not isinstance(obj, type)):
        return True  # (a Protocol or a TypedDict is a class, whose metaclass is typing's: documented)
    return None


# The top-level namespace.
class TopLevelApi(SphinxDirective):
    """Every name of ``sandbox.__all__``, documented by autodoc under its top-level name."""

    def run(self):
        import sandbox

        lines = []
        for name in sandbox.__all__:
            value = getattr(sandbox, name)
            if inspect.isclass(value):
                lines += [f".. autoclass:: sandbox.{name}", "   :no-members:", ""]
            elif callable(value):
                lines += [f".. autofunction:: sandbox.{name}", ""]
            else:
                lines += [f".. py:data:: sandbox.{name}", "", f"   {describe_value(value)}", ""]
        container = nodes.container()
        self.state.nested_parse(StringList(lines, source="sandbox.__all__"), self.content_offset, container)
        return container.children


def describe_value(value):
    """One line of reStructuredText saying what a constant holds."""
    if isinstance(value, (dict, list, tuple, set, frozenset)):
        items = list(value)
        return f"A ``{type(value).__name__}`` of {len(items)}: " + ", ".join(f"``{item}``" for item in items) + "."
    return f"``{value!r}``"


# Command lines.
def _option(action):
    names = ", ".join(action.option_strings) or action.dest
    if action.option_strings and action.nargs != 0:
        metavar = action.metavar or (action.dest.upper() if not action.choices else "{" + ",".join(
            map(str, action.choices)) + "}")
        metavar = " ".join(metavar) if isinstance(metavar, tuple) else metavar
        more = {"+": f" {metavar} [{metavar} ...]", "*": f" [{metavar} ...]", "?": f" [{metavar}]"}
        names += more.get(action.nargs, f" {metavar}" * (action.nargs if isinstance(action.nargs, int) else 1))
    return names


class ExperimentCli(SphinxDirective):
    """One experiment's command line: description, usage and every option, from its parser."""

    required_arguments = 1

    def run(self):
        path = self.arguments[0]
        self.env.note_dependency(str(ROOT / path))
        documented = getattr(self.env, "sandbox_documented_scripts", set())
        documented.add(Path(path).name)
        self.env.sandbox_documented_scripts = documented
        parser = experiment_parser(path)
        parser.prog = f"python {path}"
        formatter = parser._get_formatter()
        rows = []
        for action in parser._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            help_text = formatter._expand_help(action) if action.help else ""
            if action.dest == "workers":  # its help says "one per core"; the number is this machine's
                help_text = re.sub(r" \(default: \d+\)$", "", help_text)
            rows.append([literal(_option(action)), help_text])
        usage = parser.format_usage().strip().removeprefix("usage: ")
        return [nodes.paragraph(text=parser.description or ""),
                nodes.literal_block(usage, usage, language="text"),
                table(["option", "what it sets (default)"], rows, widths=[30, 70])]


def check_every_script_documented(app, env):
    documented = getattr(env, "sandbox_documented_scripts", set())
    for script in sorted(EXPERIMENTS.glob("*.py")):
        if script.name not in documented:
            logger.warning(f"experiments/{script.name} has no command-line reference: add "
                           f"```{{experiment-cli}} experiments/{script.name}``` to docs/reference/cli.md")


def merge_scripts(app, env, docnames, other):
    env.sandbox_documented_scripts = getattr(env, "sandbox_documented_scripts", set()) | getattr(
        other, "sandbox_documented_scripts", set())


def purge_scripts(app, env, docname):
    pass  # rebuilt whole by `make docs`, which starts from an empty doctree folder


# Names and their meanings, checked against the code.
class Described(SphinxDirective):
    """A table of the names in the code's list or dict TARGET and their meanings from the body."""

    required_arguments = 1
    has_content = True
    option_spec = {"header": directives.unchanged, "defaults": directives.unchanged}

    def run(self):
        target = self.arguments[0]
        names = resolve(target)
        show_defaults = "defaults" in self.options
        if self.options.get("defaults"):
            defaults = dict(resolve(self.options["defaults"]))
        else:
            defaults = dict(names) if isinstance(names, dict) else {}
        names = [str(name) for name in names]
        described = {}
        for line in self.content:
            if line.strip():
                name, sep, meaning = line.partition(": ")
                if not sep:
                    raise self.error(f"described {target}: '{line}' is not 'name: meaning'")
                described[name.strip().strip("`")] = meaning.strip()
        location = self.get_location()
        for name in names:
            if not any(fnmatch.fnmatchcase(name, pattern) for pattern in described):
                logger.warning(f"{target} has '{name}', which the docs do not describe", location=location)
        for pattern in described:
            if not any(fnmatch.fnmatchcase(name, pattern) for name in names):
                logger.warning(f"the docs describe '{pattern}', which {target} does not have", location=location)
        header = [part.strip() for part in (self.options.get("header") or "name, meaning").split(",")]
        rows = []
        for pattern, meaning in described.items():
            parsed, messages = self.state.inline_text(meaning, self.lineno)
            row = [literal(pattern)]
            if show_defaults:
                default = defaults.get(pattern)
                row.append(literal(shown(default)) if pattern in defaults and default is not None else "")
            rows.append(row + [parsed + messages])
        widths = [24, 16, 60] if show_defaults else [28, 72]
        return [table(header, rows, widths=widths)]


def shown(value):
    """A default as the sweep file would write it (TOML), else as Python."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(shown(item) for item in value) + "]"
    return repr(value)


# The which-loss table, from committed results.
def read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def which_loss_table(folder):
    """The markdown rank table of a which_loss.py run saved in `folder`."""
    from sandbox.runs import evidence

    table_rows = []
    for row in read_rows(folder / "evidence.csv"):
        row["value"] = float(row["value"])
        row["spread"] = float(row["spread"]) if row["spread"] else None
        table_rows.append(row)
    ranking = []
    for row in read_rows(folder / "ranking.csv"):
        row["rank"] = int(row["rank"]) if row["rank"] else None
        row["failed"] = row["failed"] == "True"
        ranking.append(row)
    return evidence.rank_table(table_rows, ranking)


class WhichLossTable(SphinxDirective):
    required_arguments = 1

    def run(self):
        folder = Path(self.env.srcdir) / self.arguments[0]
        for name in ("evidence.csv", "ranking.csv"):
            if not (folder / name).exists():
                raise self.error(f"{folder / name} does not exist: copy it from a run of "
                                 f"python experiments/which_loss.py --out results/which_loss")
            self.env.note_dependency(str(folder / name))
        markdown = which_loss_table(folder)
        container = nodes.container()
        self.state.nested_parse(StringList(markdown.splitlines(), source=str(folder)), self.content_offset,
                                container)
        return container.children


# The picture of the layers, drawn from the imports the code has.
LAYERS_FIGURE = Path(__file__).resolve().parents[1] / "development" / "layers.png"


def draw_layers(app, path=LAYERS_FIGURE):
    """Draw which sub-package imports from which, as a grid of counts of import statements
    (`sandbox._layers`): every count sits below the diagonal, or `tests/test_architecture.py` fails."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from sandbox._layers import LAYERS, layer_imports
    counts = layer_imports()
    n = len(LAYERS)
    grid = np.array([[counts.get((source, target), 0) for target in LAYERS] for source in LAYERS])
    figure, axes = plt.subplots(figsize=(6.4, 4.6), dpi=120)
    axes.imshow(np.where(grid > 0, np.log1p(grid), np.nan), cmap="Blues", vmin=0, vmax=np.log1p(grid.max()) * 1.4)
    for i in range(n):
        for j in range(n):
            if i == j:
                axes.text(j, i, "itself", ha="center", va="center", fontsize=7, color="#888888")
            elif grid[i, j]:
                axes.text(j, i, str(grid[i, j]), ha="center", va="center", fontsize=9)
    axes.plot([-0.5, n - 0.5], [-0.5, n - 0.5], color="#bb4444", lw=0.8)
    axes.text(n - 0.6, 0.1, "above the line:\nimports upward,\nnone allowed", ha="right", va="top", fontsize=8,
              color="#bb4444")
    axes.set_xticks(range(n), LAYERS, rotation=30, ha="right")
    axes.set_yticks(range(n), LAYERS)
    axes.set_xlabel("imports from")
    axes.set_ylabel("modules of")
    axes.set_title("Import statements between sub-packages, from the source", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def setup(app):
    app.connect("builder-inited", draw_layers)
    app.add_directive("top-level-api", TopLevelApi)
    app.add_directive("loss-registry", LossRegistry)
    app.add_directive("experiment-cli", ExperimentCli)
    app.add_directive("described", Described)
    app.add_directive("which-loss-table", WhichLossTable)
    app.connect("autodoc-process-docstring", escape_docstring)
    app.connect("autodoc-skip-member", skip_type_alias)
    app.connect("env-check-consistency", check_every_script_documented)
    app.connect("env-merge-info", merge_scripts)
    app.connect("env-purge-doc", purge_scripts)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
