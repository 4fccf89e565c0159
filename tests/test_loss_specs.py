"""Losses from anywhere, by one spelling: module:function, weighted sums, register_loss, any case."""
import functools
import importlib
import os
import subprocess
import sys

import numpy as np
import pytest
from autograd import grad

import sandbox
from helpers import ROOT, load_experiment
from sandbox import fit
from sandbox.runs import sweep as sweeps
from sandbox.optim.batch import regress
from sandbox.losses import REGISTERED, canonical_loss, get_loss, register_loss, travelling

TARGET = np.array([-1.0, -0.5, 1.0, 0.5])
START = np.array([1.5, 1.0, 2.5, 2.5])
MODULE = "my_box_losses"
SOURCE = '''
"""A user's losses, in a module of their own."""
import autograd.numpy as np

from sandbox import giou_loss


def giou_plus_centre(pred, target, weight=1.0):
    """GIoU loss plus `weight` times the squared distance between the centres."""
    dx = (pred[..., 0] + pred[..., 2] - target[..., 0] - target[..., 2]) / 2
    dy = (pred[..., 1] + pred[..., 3] - target[..., 1] - target[..., 3]) / 2
    return giou_loss(pred, target) + weight * (dx ** 2 + dy ** 2)
'''


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """my_box_losses.py in a folder on the path of this process and of any process it starts."""
    folder = tmp_path / "user"
    folder.mkdir()
    (folder / f"{MODULE}.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")])))
    sys.modules.pop(MODULE, None)
    yield importlib.import_module(MODULE)
    sys.modules.pop(MODULE, None)


@pytest.fixture
def registry():
    """The registry as it was, whatever a test registers."""
    saved = dict(REGISTERED)
    yield REGISTERED
    REGISTERED.clear()
    REGISTERED.update(saved)


def test_a_module_function_fits_exactly_as_the_function_itself(user_module):
    by_name = fit(START, TARGET, loss=f"{MODULE}:giou_plus_centre:weight=0.5", maxiter=40)
    by_function = fit(START, TARGET, loss=functools.partial(user_module.giou_plus_centre, weight=0.5), maxiter=40)
    np.testing.assert_array_equal(by_name.boxes, by_function.boxes)
    assert by_name.ious[-1] > 0.9  # it is a working loss: the box comes home


@pytest.mark.parametrize("spec, words", [
    ("no_such_module_here:f", "cannot import module 'no_such_module_here'"),
    (f"{MODULE}:nope", f"module '{MODULE}' has no function 'nope'"),
    (f"{MODULE}:giou_plus_centre:wieght=2", "has no parameter 'wieght'; its parameters: weight"),
    (f"{MODULE}:giou_plus_centre:weight=abc", f"loss '{MODULE}:giou_plus_centre:weight=abc': ufunc"),
    ("5*l1+", "a term has no loss"),
    ("5*l1*2", "each term of a weighted sum is a loss with at most one factor"),
    ("gioux", "did you mean 'giou'?"),
])
def test_a_bad_spec_says_what_to_fix(user_module, spec, words):
    with pytest.raises(ValueError, match=None) as error:
        get_loss(spec)
    assert words in str(error.value)


def test_a_weighted_sum_equals_the_sum_of_its_parts_in_value_and_gradient(user_module):
    pred = np.array([[1.5, 1.0, 2.5, 2.5], [-0.5, -0.25, 0.75, 0.5], [0.0, 0.0, 0.1, 3.0]])
    target = np.tile(TARGET, (3, 1))
    parts = [(5.0, get_loss("l1")), (2.0, get_loss("giou")),
             (0.5, get_loss(f"{MODULE}:giou_plus_centre:weight=2"))]
    total = get_loss(f"5*l1 + giou*2 + 0.5*{MODULE}:giou_plus_centre:weight=2")

    def by_parts(p):
        return sum(weight * loss(p, target) for weight, loss in parts)

    np.testing.assert_array_equal(total(pred, target), by_parts(pred))
    np.testing.assert_allclose(grad(lambda p: total(p, target).sum())(pred), grad(lambda p: by_parts(p).sum())(pred),
                               rtol=1e-15, atol=0)
    assert canonical_loss("L1*5 + GIoU*2") == "5*l1+2*giou"


def test_names_match_in_any_case_everywhere():
    shouted = fit(START, TARGET, loss="GIoU", method="GD", param="XYXY", schedule="Step", maxiter=30)
    plain = fit(START, TARGET, loss="giou", method="gd", param="xyxy", schedule="step", maxiter=30)
    np.testing.assert_array_equal(shouted.boxes, plain.boxes)
    np.testing.assert_array_equal(fit(START, TARGET, loss="L2", method="bfgs").boxes,
                                  fit(START, TARGET, loss="l2", method="BFGS").boxes)
    sweep = sweeps.resolve({"axes": {"loss": ["GIoU", "Alpha_CIoU:Alpha=3"], "param": ["CXCYWH"],
                                     "schedule": ["Cosine"]}})
    assert sweep["axes"]["loss"] == ["giou", "alpha_ciou:alpha=3"]
    assert sweep["axes"]["param"] == ["cxcywh"] and sweep["axes"]["schedule"] == ["cosine"]
    for call, words in [(lambda: get_loss("Gioux"), "did you mean 'giou'?"),
                        (lambda: fit(START, TARGET, method="bfsg"), "did you mean 'BFGS'?"),
                        (lambda: fit(START, TARGET, param="cxcywj"), "did you mean 'cxcywh'?"),
                        (lambda: fit(START, TARGET, schedule="cosin"), "did you mean 'cosine'?")]:
        with pytest.raises(ValueError) as error:
            call()
        assert words in str(error.value)


def test_register_loss_names_a_function_everywhere_in_any_case(registry, user_module):
    register_loss("Centred_GIoU", user_module.giou_plus_centre)
    alone = fit(START, TARGET, loss="centred_giou:weight=0.5", maxiter=20)
    np.testing.assert_array_equal(alone.boxes, fit(START, TARGET, loss=f"{MODULE}:giou_plus_centre:weight=0.5",
                                                   maxiter=20).boxes)
    assert canonical_loss("CENTRED_GIOU+L1") == "centred_giou+l1"
    register_loss("centred_giou", user_module.giou_plus_centre)  # a notebook cell run again
    with pytest.raises(ValueError, match="'giou' is a built-in loss"):
        register_loss("GIoU", user_module.giou_plus_centre)
    with pytest.raises(ValueError, match="must be a Python identifier"):
        register_loss("my loss", user_module.giou_plus_centre)
    # an importable function travels by its module and name, to any worker
    assert travelling("2*centred_giou+l1", forked=False) == {"centred_giou": f"{MODULE}:giou_plus_centre"}


def test_a_loss_that_cannot_reach_the_workers_is_refused_before_any_work(registry, monkeypatch):
    from sandbox.optim import engine
    monkeypatch.setattr(engine, "_descend_chunk", lambda task: pytest.fail("a chunk ran"))
    preds = np.tile(START, (20_000, 1))
    with pytest.raises(ValueError) as error:
        regress(preds, TARGET, loss=lambda pred, target: sandbox.giou_loss(pred, target), workers=2)
    assert "cannot be sent to worker processes" in str(error.value)
    assert "define it in an importable module and name it as module:function" in str(error.value)

    def local_loss(pred, target):
        return sandbox.giou_loss(pred, target)
    local_loss.__module__ = "__main__"  # as a notebook defines it
    register_loss("notebook_loss", local_loss)
    with pytest.raises(ValueError, match="cannot reach spawned workers or a Dask cluster"):
        travelling("notebook_loss", forked=False)
    assert travelling("notebook_loss", forked=True) == {}  # forked workers inherit it


SCRIPT = '''
import multiprocessing
import sys

import numpy as np

import sandbox
from sandbox.optim.batch import regress


def notebook_loss(pred, target):
    return sandbox.giou_loss(pred, target)


if __name__ == "__main__":
    method, loss, out = sys.argv[1:]
    multiprocessing.set_start_method(method)
    sandbox.register_loss("notebook_loss", notebook_loss)
    rng = np.random.default_rng(0)
    centres = rng.uniform(-3, 3, (20_000, 2))
    sizes = rng.uniform(0.5, 2.0, (20_000, 2))
    preds = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)
    try:
        result = regress(preds, [-1.0, -0.5, 1.0, 0.5], loss=loss, iterations=15, workers=int(out != "-") + 1)
    except ValueError as error:
        print("refused:", error)
        sys.exit(3)
    np.save(out if out != "-" else "/dev/null", result.errors)
'''


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_regress_with_two_workers_gets_the_same_loss_forked_or_spawned(user_module, tmp_path, method):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    loss = f"0.5*{MODULE}:giou_plus_centre:weight=2+l1"

    def run(*arguments):
        return subprocess.run([sys.executable, str(script), *arguments], capture_output=True, text=True,
                              cwd=tmp_path, timeout=300)

    alone = run("fork", loss, "-")  # one worker: "-" runs in the process itself
    assert alone.returncode == 0, alone.stderr
    done = run(method, loss, str(tmp_path / "two.npy"))
    assert done.returncode == 0, done.stderr
    rng = np.random.default_rng(0)
    centres, sizes = rng.uniform(-3, 3, (20_000, 2)), rng.uniform(0.5, 2.0, (20_000, 2))
    preds = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)
    here = regress(preds, TARGET, loss=loss, iterations=15)
    np.testing.assert_array_equal(np.load(tmp_path / "two.npy"), here.errors)
    registered = run(method, "notebook_loss", str(tmp_path / "registered.npy"))
    if method == "fork":  # forked workers inherit the registration
        assert registered.returncode == 0, registered.stderr
        np.testing.assert_array_equal(np.load(tmp_path / "registered.npy"),
                                      regress(preds, TARGET, loss="giou", gradient="autograd", iterations=15).errors)
    else:  # refused before any work, with the fix
        assert registered.returncode == 3 and "refused:" in registered.stdout
        assert "define it in an importable module and name it as module:function" in registered.stdout


SWEEP = f'''
[axes]
loss = ["{MODULE}:giou_plus_centre:weight=0.5", "5*l1+2*giou"]
method = ["gd", "BFGS"]
maxiter = [30]
starts = ["ring"]
[starts.ring]
kind = "non_overlapping"
directions = 3
'''


@pytest.mark.slow
def test_a_sweep_of_module_losses_runs_on_a_dask_cluster_and_a_cluster_that_cannot_import_them_is_refused(
        user_module, tmp_path, monkeypatch, capsys):
    distributed = pytest.importorskip("distributed")
    ablate = load_experiment("ablate")
    (tmp_path / "sweep.toml").write_text(SWEEP)
    ablate.main([str(tmp_path / "sweep.toml"), "--out", str(tmp_path / "local"), "--workers", "1"])
    cluster_options = dict(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=None)
    with distributed.LocalCluster(**cluster_options) as cluster:  # its workers have the module on their path
        ablate.main([str(tmp_path / "sweep.toml"), "--out", str(tmp_path / "dask"), "--scheduler",
                     cluster.scheduler_address])
    rows = {name: sorted(tuple(v for k, v in row.items() if k != "seconds")
                         for row in sandbox.runs.records.read_csv(tmp_path / name / "results.csv"))
            for name in ("local", "dask")}
    assert rows["local"] == rows["dask"] and len(rows["local"]) == 2 * 2 * 3
    folder = os.path.dirname(user_module.__file__)
    monkeypatch.setenv("PYTHONPATH", "")
    with monkeypatch.context() as without:  # this cluster's workers start without the module's folder
        without.setattr(sys, "path", [entry for entry in sys.path if entry != folder])
        cluster = distributed.LocalCluster(**cluster_options)
    with cluster:
        capsys.readouterr()
        with pytest.raises(SystemExit):
            ablate.main([str(tmp_path / "sweep.toml"), "--out", str(tmp_path / "refused"), "--scheduler",
                         cluster.scheduler_address])
    error = capsys.readouterr().err
    assert f"cannot import module '{MODULE}'" in error and "PYTHONPATH" in error
    assert sandbox.runs.records.read_csv(tmp_path / "refused" / "results.csv") == []


@pytest.mark.slow
def test_every_command_line_that_takes_losses_takes_a_module_function_and_a_weighted_sum(user_module, tmp_path):
    losses = [f"{MODULE}:giou_plus_centre:weight=0.5", "5*l1+2*giou"]
    stall = load_experiment("stall_vs_converge")
    stall.main(["--out", str(tmp_path / "stall"), "--losses", *losses, "--starts", "2", "--maxiter", "20",
                "--workers", "1"])
    assert {row["loss"] for row in sandbox.runs.records.read_csv(tmp_path / "stall" / "results.csv")} == set(losses)
    gallery = load_experiment("loss_gallery")
    gallery.main(["--out", str(tmp_path / "gallery"), "--losses", *losses, "--resolution", "21"])
    assert (tmp_path / "gallery" / "loss_gallery.png").exists()
    norms = load_experiment("norms_vs_iou")
    norms.main(["--out", str(tmp_path / "norms"), "--targets", "0", "0", "2", "1", "--radii", "2",
                "--max-radius", "0.6", "--pairs", "300", "--losses", *losses])
    assert [row["loss"] for row in sandbox.runs.records.read_csv(tmp_path / "norms" / "spearman.csv")] == losses
    simulation = load_experiment("regression_simulation")
    simulation.main(["--out", str(tmp_path / "simulation"), "--points", "3", "--iterations", "5",
                     "--losses", *losses, "--workers", "2", "--chunk-size", "1024"])
    summary = sandbox.runs.records.read_csv(tmp_path / "simulation" / "summary.csv")
    assert [row["loss"] for row in summary] == losses
    benchmark = load_experiment("benchmark_simulation")
    benchmark.main(["--out", str(tmp_path / "benchmark"), "--losses", *losses, "--points", "3", "--iterations", "5",
                    "--repeats", "1", "--engines", "sandbox", "sandbox-autograd", "--workers", "1"])
    timed = sandbox.runs.records.read_csv(tmp_path / "benchmark" / "benchmark.csv")
    assert [(row["loss"], row["engine"]) for row in timed] == [(loss, "sandbox-autograd") for loss in losses]


@pytest.mark.slow
def test_the_docs_example_runs_as_written_and_gives_its_numbers(tmp_path):
    import re
    section = (ROOT / "docs" / "how-to" / "own-loss.md").read_text()
    (tmp_path / "my_losses.py").write_text(re.search(r"```python\n# my_losses.py\n(.*?)```", section, re.S).group(1))
    (tmp_path / "my_sweep.toml").write_text(re.search(r"```toml\n# my_sweep.toml\n(.*?)```", section, re.S).group(1))
    commands = [line for line in re.search(r"```sh\n(.*?)```", section, re.S).group(1).splitlines()
                if line.startswith("python")]
    assert len(commands) == 4
    environment = dict(os.environ, PYTHONPATH=str(tmp_path))
    printed = []
    for command in commands:
        command = command.replace("python experiments/", f"{sys.executable} {ROOT}/experiments/")
        command = command.replace("python -c", f"{sys.executable} -c")
        done = subprocess.run(command, shell=True, cwd=tmp_path, env=environment, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, (command, done.stderr)
        printed.append(done.stdout)
    assert printed[0].strip() == "max_iterations 0.9949"  # as the page says
    summary = {row["loss"]: row for row in sandbox.runs.records.read_csv(tmp_path / "results" / "my_simulation" /
                                                                     "summary.csv")}
    assert [round(float(summary[loss]["error_final"])) for loss in summary] == [295, 102, 9034]
    assert float(summary["my_losses:giou_centre:weight=0.5"]["share_iou_above_0.9"]) == 1.0
    assert round(float(summary["5*l1+2*giou"]["mean_final_iou"]), 2) == 0.91
    rows = sandbox.runs.records.read_csv(tmp_path / "results" / "my_sweep" / "results.csv")
    converged = {(m, loss): sum(r["converged"] == "True" for r in rows if r["method"] == m and r["loss"] == loss)
                 for m in ("gd", "adam") for loss in ("giou", "my_losses:giou_centre:weight=0.5", "5*l1+2*giou")}
    assert converged == {("gd", "giou"): 8, ("gd", "my_losses:giou_centre:weight=0.5"): 8, ("gd", "5*l1+2*giou"): 2,
                         ("adam", "giou"): 8, ("adam", "my_losses:giou_centre:weight=0.5"): 8,
                         ("adam", "5*l1+2*giou"): 8}


def test_a_preset_names_a_weighted_sum_and_records_keep_its_name():
    from sandbox.learning.heads import DETR_LOSS
    from sandbox.losses.spec import PRESETS
    pred, target = np.array([0.0, 0.0, 2.0, 2.0]), np.array([1.0, 0.0, 3.0, 2.0])
    # DETR's pair: L1 on (cx, cy, w, h) x 5 + GIoU x 2; the head trains with the same sum
    assert PRESETS["detr"] == DETR_LOSS == "5*l1:coords=cxcywh+2*giou"
    assert canonical_loss("DETR") == "detr" and canonical_loss("detr + giou") == "detr+giou"
    assert get_loss("detr")(pred, target) == get_loss("5*l1:coords=cxcywh+2*giou")(pred, target) == 5 * 1 + 2 * (1 - 1 / 3 + 0)
    with pytest.raises(ValueError, match="built-in loss"):
        register_loss("detr", lambda p, t: p)
