"""The package as a stranger meets it: one version, a licence, a changelog, every submodule from
``import sandbox``, and every loss count or list written by hand agreeing with the registry."""
import importlib.metadata
import json
import re
import subprocess
import sys


import sandbox
from helpers import ROOT, load_experiment
from sandbox.runs.sweep import tomllib  # tomli before Python 3.11

DOCS = ROOT / "docs"  # the documentation's pages, where the README's text moved
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
REINSTALL = "reinstall the package: .venv/bin/python -m pip install --no-deps -e ."


# One version, one licence.
def test_the_version_is_written_once_and_pyproject_reads_it():
    project = PYPROJECT["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert PYPROJECT["tool"]["hatch"]["version"] == {"path": "sandbox/__init__.py"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", sandbox.__version__)


def test_the_installed_version_is_the_package_version():
    installed = importlib.metadata.version("giou-sandbox")
    assert installed == sandbox.__version__, (
        f"the installed metadata says {installed}, sandbox.__version__ {sandbox.__version__}: {REINSTALL}")


def test_the_licence_is_mit_in_the_file_pyproject_and_the_installed_metadata():
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License\n")
    assert "Copyright (c) 2026 the giou-sandbox authors" in licence
    assert PYPROJECT["project"]["license"] == "MIT"
    assert importlib.metadata.metadata("giou-sandbox")["License-Expression"] == "MIT", REINSTALL


# The changelog.
CHANGELOG_HEADING = re.compile(r"^## \[(?P<version>[^]]+)\](?: - (?P<date>\d{4}-\d{2}-\d{2}))?$", re.MULTILINE)


def test_the_changelog_names_the_package_version_as_its_newest_release():
    headings = [match.groupdict() for match in CHANGELOG_HEADING.finditer((ROOT / "CHANGELOG.md").read_text())]
    if headings and headings[0]["version"] == "Unreleased":
        headings = headings[1:]
    assert headings, "CHANGELOG.md has no '## [x.y.z] - YYYY-MM-DD' heading"
    assert headings[0]["version"] == sandbox.__version__, (
        f"CHANGELOG.md's newest release is {headings[0]['version']}, the package is {sandbox.__version__}: "
        f"add a '## [{sandbox.__version__}] - date' section (or bump sandbox/__init__.py)")
    assert all(heading["date"] for heading in headings), "every released version has its date"
    versions = [tuple(map(int, heading["version"].split("."))) for heading in headings]
    assert versions == sorted(set(versions), reverse=True), "versions run newest first, each once"
    dates = [heading["date"] for heading in headings]
    assert dates == sorted(dates, reverse=True)


# Submodules from `import sandbox`, imported on first use. In a fresh interpreter, since
# the tests' own conftest imports matplotlib.
def _in_a_fresh_interpreter(code):
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


MODULES = sorted(path.stem if path.is_file() else path.name for path in (ROOT / "sandbox").iterdir()
                 if not path.name.startswith("_") and (path.suffix == ".py" or (path / "__init__.py").exists()))
"""The package's public modules and sub-packages, each imported on first use."""
HEAVY = ["matplotlib", "ipywidgets", "pandas", "distributed"]


def test_import_sandbox_gives_every_submodule_without_importing_matplotlib():
    seen = _in_a_fresh_interpreter(f"""
import json, sys
import sandbox
heavy = [name for name in {HEAVY!r} if name in sys.modules]
listed = dir(sandbox)
lazy = sandbox.views.plotting.__name__, sandbox.runs.sweep.__name__, sandbox.optim.batch.regress.__name__
every = {{name: getattr(sandbox, name).__name__ for name in {MODULES!r}}}
print(json.dumps(dict(heavy=heavy, listed=listed, lazy=lazy, every=every)))
""")
    assert seen["heavy"] == [], f"import sandbox imported {seen['heavy']}"
    assert seen["lazy"] == ["sandbox.views.plotting", "sandbox.runs.sweep", "regress"]
    assert seen["every"] == {name: f"sandbox.{name}" for name in MODULES}
    assert set(MODULES) <= set(seen["listed"])
    assert {"LOSSES", "fit", "__version__"} <= set(seen["listed"])


def test_an_unknown_attribute_is_an_attribute_error_naming_it():
    seen = _in_a_fresh_interpreter("""
import json, sandbox
try:
    sandbox.plotter
except AttributeError as error:
    print(json.dumps([str(error), error.name, hasattr(sandbox, "no_such_thing")]))
""")
    assert seen == ["module 'sandbox' has no attribute 'plotter'", "plotter", False]


# The documentation says nothing of the registry by hand: a loss added in its three places changes no page.
def test_the_docs_count_and_list_the_losses_from_the_registry():
    conf = (DOCS / "conf.py").read_text()
    assert '"loss_count": str(len(sandbox.LOSSES))' in conf and "sandbox.losses.IOU_BASED" in conf
    assert "(`sandbox.LOSSES`): {{ loss_count }} of them" in (DOCS / "index.md").read_text()
    losses = (DOCS / "reference" / "losses.md").read_text()
    assert ".. loss-registry::" in losses and "{{ variant_bases }}" in losses
    count = len(sandbox.LOSSES)
    by_hand = [(page.relative_to(DOCS), line) for page in DOCS.rglob("*.md") if "_build" not in page.parts
               for line in page.read_text().splitlines()
               if re.search(rf"\b{count} of them\b|all {count} losses of the registry|\| `[a-z_]+` \| 1 - IoU", line)]
    assert by_hand == [], f"written by hand, where the registry should say it: {by_hand}"


def _differences(written, where):
    """What `written` lacks of the registry and holds beyond it, said for `where`; '' if nothing."""
    missing = [name for name in sandbox.LOSSES if name not in written]
    unknown = [name for name in written if name not in sandbox.LOSSES]
    return "; ".join([f"{where} lacks {', '.join(missing)}"] * bool(missing)
                     + [f"{where} has {', '.join(unknown)}, which sandbox.LOSSES does not"] * bool(unknown))


def test_the_loss_family_sweep_is_what_its_script_writes_from_the_registry():
    path = ROOT / "experiments" / "sweeps" / "loss_family.toml"
    listed = tomllib.loads(path.read_text())["axes"]["loss"]
    differences = _differences(listed, f"{path.name}'s loss axis") or "it differs from what the script writes"
    assert path.read_text() == load_experiment("sweeps/loss_family").sweep_text(), (
        f"{differences}: run python experiments/sweeps/loss_family.py")
