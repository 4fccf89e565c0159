"""Adding a loss touches three places: CONTRIBUTING.md's example, written into a copy of the
repository in those three places alone, passes the test suite and runs through `fit`, a sweep and
the DIoU simulation, with its Inner and Focaler variants."""
import filecmp
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from helpers import ROOT

pytestmark = pytest.mark.slow

PLACES = ("sandbox/losses/formulas.py", "sandbox/losses/fused.py", "tests/reference_losses.py")
GENERATED = ("experiments/sweeps/loss_family.toml",)  # by python experiments/sweeps/loss_family.py
NAMES = ("my_iou", "inner_my_iou", "focaler_my_iou")
# Published results are made by their commands, not written: a new loss joins them when they are run
# again (CONTRIBUTING.md, "What follows from the registry"), so the check that the committed
# which-loss run covers the registry is left out of the copy's run.
PUBLISHED = ("tests/test_docs.py::test_the_committed_which_loss_results_cover_the_registry",)
SKIPPED = {".git", ".venv", "__pycache__", ".pytest_cache", ".hypothesis", ".ipynb_checkpoints", ".mypy_cache"}


def ignored(folder, names):
    """What the copy leaves out: caches, the environment, and the top-level results/ and build/ (not docs/results/)."""
    top = os.path.samefile(folder, ROOT)
    return {name for name in names if name in SKIPPED or name.endswith(".egg-info") or name == "_build"
            or (top and name in ("results", "build"))}


def contributing_example():
    """The code blocks of CONTRIBUTING.md's "Adding a loss", each opening with the file it goes in."""
    text = (ROOT / "CONTRIBUTING.md").read_text()
    section = text.split("\n## Adding a loss", 1)[1].split("\n## ", 1)[0]
    blocks = {}
    for block in re.findall(r"```python\n(.*?)```", section, re.DOTALL):
        first, _, code = block.partition("\n")
        blocks[first.removeprefix("# ").strip()] = code
    assert tuple(blocks) == PLACES, f"CONTRIBUTING.md's example should fill {PLACES}; it fills {tuple(blocks)}"
    return blocks


def run(command, cwd, timeout=900):
    # the copy's own sandbox, not the installed one
    env = dict(os.environ, PYTHONPATH=str(cwd))
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(map(str, command))}:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def copy(tmp_path_factory):
    """The repository, with CONTRIBUTING.md's loss added in the three places and the generated file written."""
    copy = tmp_path_factory.mktemp("adding_a_loss") / "repository"
    shutil.copytree(ROOT, copy, ignore=ignored)
    for path, code in contributing_example().items():
        with open(copy / path, "a") as file:
            file.write("\n\n" + code)
    run([sys.executable, "experiments/sweeps/loss_family.py"], copy)
    return copy


def changed_files(copy):
    """The files of the copy that differ from the repository's."""
    changed = []
    for folder, _, files in os.walk(copy):
        for name in files:
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, copy)
            if "__pycache__" in relative or ".pytest_cache" in relative or ".hypothesis" in relative:
                continue
            if not filecmp.cmp(path, ROOT / relative, shallow=False):
                changed.append(relative)
    return sorted(changed)


def test_the_copy_differs_in_the_three_places_and_the_generated_file_alone(copy):
    assert changed_files(copy) == sorted(PLACES + GENERATED)


def test_the_test_suite_passes_with_the_loss_added(copy):
    # the quick suite, and the slow tests of the new losses (their gradients and hard cases)
    run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-k", "not slow or my_iou",
         *(f"--deselect={test}" for test in PUBLISHED)], copy, timeout=1800)
    listed = run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-o", "addopts=", "-q", "--collect-only",
                  "-k", "my_iou", "tests"], copy)
    for test in ("test_loss_family.py::test_values_match_an_independent_transcription_of_the_paper[my_iou]",
                 "test_loss_family.py::test_values_match_an_independent_transcription_of_the_paper[my_iou:weight=2.5]",
                 "test_loss_family.py::test_autograd_gradient_matches_central_differences[focaler_my_iou-xyxy]",
                 "test_fused.py::test_a_kernel_gives_the_registry_value_and_autograds_gradient_on_every_kind_of_case"
                 "[inner_my_iou]",
                 "test_catalogue.py::test_every_docstring_opens_with_the_formula_and_the_paper_in_parentheses[my_iou]"):
        assert test in listed, f"the suite no longer runs {test} for a new loss"


RUN_THROUGH = """
import json, sys
import numpy as np
import sandbox
from sandbox.losses import catalogue
from sandbox.losses.fused import kernel
from sandbox.runs import sweep as sweeps
from sandbox.runs.simulation import diou_protocol
from sandbox.runs.store import Store, finished
sys.path.insert(0, "tests")
from helpers import load_experiment

gallery = load_experiment("loss_gallery")
names = sys.argv[2:]
target = [-1.0, -0.5, 1.0, 0.5]
fitted = {name: float(sandbox.fit([1.5, -0.75, 2.5, 0.75], target, loss=name).ious[-1]) for name in names}
sweep = sweeps.resolve({"starts": {"ring": {"kind": "non_overlapping", "gap": 0.5, "directions": 4}},
                        "axes": {"loss": [*names, "my_iou:weight=2"], "method": ["gd", "adam"]}})
with Store(sys.argv[1], sweep) as store:
    sweeps.run(sweep, store)
rows = [row for cell_rows in finished(sys.argv[1])[1].values() for row in cell_rows]
protocol = diou_protocol(points=3, seed=0)
simulated = {name: {gradient: sandbox.regress(protocol.anchors, protocol.targets, loss=name, iterations=40,
                                             gradient=gradient).mean_iou.tolist() for gradient in ("autograd", "fused")}
             for name in names}
print(json.dumps(dict(
    fit=fitted,
    sweep={loss: [float(r["final_iou"]) for r in rows if r["loss"] == loss] for loss in {r["loss"] for r in rows}},
    simulation=simulated,
    kernels={name: kernel(name) is not None for name in names},
    catalogue={e.name: dict(paper=e.paper, parameters=e.parameters, fused=e.fused, base=e.base)
               for e in catalogue() if e.name in names},
    gallery=gallery.parse_args(["--out", sys.argv[1] + "_gallery"]).losses)))
"""


def test_the_loss_runs_through_fit_a_sweep_and_the_simulation(copy, tmp_path):
    seen = json.loads(run([sys.executable, "-c", RUN_THROUGH, str(tmp_path / "sweep"), *NAMES], copy))
    # My-IoU pulls a box that starts apart home, as DIoU does (its distance term); so do its variants
    assert seen["fit"]["my_iou"] > 0.99 and min(seen["fit"].values()) > 0.9, seen["fit"]
    assert set(seen["sweep"]) == {*NAMES, "my_iou:weight=2"}
    for loss, final_ious in seen["sweep"].items():  # 4 starts apart x gd and Adam
        assert len(final_ious) == 8 and min(final_ious) > 0.9, (loss, final_ious)
    for name, mean_iou in seen["simulation"].items():  # over the cases, at every step
        assert mean_iou["autograd"][-1] > mean_iou["autograd"][0] + 0.3, (name, mean_iou["autograd"])
        # the fused head's gradient, as test_fused.py's engine test compares them
        assert mean_iou["fused"] == pytest.approx(mean_iou["autograd"], rel=1e-3), name
    assert seen["kernels"] == dict.fromkeys(NAMES, True)
    assert seen["catalogue"]["my_iou"] == dict(paper="Author et al., venue year, arXiv NNNN.NNNNN",
                                               parameters={"weight": 1.0}, fused=True, base=None)
    assert seen["catalogue"]["inner_my_iou"]["base"] == "my_iou"
    assert set(NAMES) <= set(seen["gallery"])  # the gallery draws every loss by default
