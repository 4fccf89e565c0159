"""What moves with the machine: each published figure re-run under emulated CPUs and BLAS thread counts.

Every figure the README publishes comes from an experiment command. This script runs
each of those commands again, as it stands, in a child process under each of several
environments, then compares the figure's numbers with those of this machine's own run
(``own``) and says which figures are bit for bit wherever they run, which only on one
machine, and which move with BLAS, and by how much. The environments are variables set
before NumPy loads (`environment_variables`):

- ``own``: none; this machine's kernels, and BLAS threads as each script sets them
  (``train_regressor.py`` and ``which_loss.py`` one per worker, the others OpenBLAS's
  default, one per core);
- ``again``: none, own's command a second time: a figure that moves here moves from one
  run to the next on one machine (scipy's trust-krylov on the L1 loss does), and its
  changes under the other environments may be that too;
- ``threads-1``, ``threads-2``: ``OPENBLAS_NUM_THREADS``, which those two scripts then keep;
- ``Prescott``, ``Sandybridge``, ``Haswell``, ``SkylakeX``: ``OPENBLAS_CORETYPE``, the
  kernels NumPy's and SciPy's OpenBLAS would pick on that core (matrix products, the
  quasi-Newton methods, the networks);
- ``simd-off``: ``NPY_DISABLE_CPU_FEATURES`` naming every SIMD target of NumPy's dispatch,
  so that the transcendental ufuncs (exp, log, arctan, power, ...) round as they would on
  a CPU without AVX2 or AVX-512.

Before any work a child process of each environment says which kernels it got; an
environment whose variables did not take (a CPU without the instructions of a core's
kernels) stops the command, since its runs would compare this machine with itself.

The figures (`FIGURES`), each compared on every number and string its command writes
(timings aside):

- ``figure1``: ``norms_vs_iou.py``: Figure 1's boxes (figure1.json), the IoU band
  (band.npz) and the Spearman table (spearman.csv), a row of the table each;
- ``headline``: ``stall_vs_converge.py``: each run's final IoU, iterations, outcome, and
  its boxes and IoU at every step;
- ``optimisers``: ``stall_vs_converge.py --method all`` in each of the four
  parameterisations, the first-order methods (gd, momentum, adam) and the scipy ones in
  rows of their own;
- ``simulation``: ``regression_simulation.py --keep summaries``: summary.csv (E(200),
  mean final IoU, shares), and each loss's E(t), mean IoU(t) and error map;
- ``learning``: ``train_regressor.py``: summary.csv, each loss's test metrics (mean and
  std over seeds) and the rate chosen;
- ``which_loss``: ``which_loss.py --quick``: evidence.csv, ranking.csv and rates.csv, a
  row per setting;
- ``rates``: ``ablate.py experiments/sweeps/learning_rates.toml``: its 960 runs;
- ``giou_vs_iou``: ``giou_vs_iou.py``: pairs.npz and the counts it quotes.

Each row of the table is in one class: bit for bit under every environment; bit for
bit across BLAS kernels and thread counts but moving with NumPy's SIMD (bit for bit on
one machine only); or moving with BLAS kernels or threads. ``--quick`` runs reduced
protocols (`Figure.quick_args`), said in the table.

Under --out:

- ``<environment>/<figure>/``: the figure's experiment folder, exactly as its command
  writes it (``<environment>/optimisers/<param>/`` for the four parameterisations);
  ``<figure>.log`` beside it, the command's output; ``<figure>.finished.json``, written
  once the command has exited 0, with the command, the variables, the seconds and a
  digest of the code it ran (`source_digest`). A rerun skips every finished sub-run and
  runs the others afresh, so an interrupted run loses only the sub-runs in progress. A sub-run during which sandbox/ or experiments/
  changed is not kept, and one that ran on other code than own's is not compared: each
  is said in one line;
- ``changes.csv``: a row per figure, quantity and environment: how many of its values
  changed against ``own``, the largest change (and where, with both values), and how many
  change at the precision the README prints the quantity at;
- ``table.md``: a row per figure: its command, its class and by how much it moves;
- ``config.json``: the arguments, each environment's variables and what its probe found,
  and the package versions.

Run from the repository root::

    python experiments/reproducibility.py --out results/reproducibility
    python experiments/reproducibility.py --quick --out results/reproducibility_quick
    python experiments/reproducibility.py --figures headline giou_vs_iou --environments own Prescott --out DIR
"""
# %%
import hashlib
import json
import math
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from sandbox.runs import emulation
from sandbox.runs.cli import check_out, experiment_parser, refuse_other_settings, run_interruptible
from sandbox.geometry.names import canonical
from sandbox.runs.records import atomic_write, provenance, read_csv, write_csv, write_json
from sandbox.runs.store import locked
from sandbox.runs.sweep import SweepError

ROOT = Path(__file__).resolve().parent.parent
KERNELS = ("Prescott", "Sandybridge", "Haswell", "SkylakeX")
THREADS = ("threads-1", "threads-2")
SIMD = ("simd-off",)
AGAIN = ("again",)
ENVIRONMENTS = ("own", *AGAIN, *THREADS, *KERNELS, *SIMD)
FIRST_ORDER = ("gd", "momentum", "adam")
HOME = "home (final IoU >= 0.99)"
MEASURES = {"iou": "IoU", "giou": "GIoU"}


def environment_variables(name):
    """The variables that make environment `name`, to be set before NumPy is imported."""
    if name in ("own", *AGAIN):
        return {}
    if name in THREADS:
        return {"OPENBLAS_NUM_THREADS": name.removeprefix("threads-")}
    if name in SIMD:
        return emulation.simd_off()
    if name in KERNELS:
        return {"OPENBLAS_CORETYPE": name}
    raise ValueError(f"unknown environment {name!r}; valid: {', '.join(ENVIRONMENTS)}")


def probe(name):
    """What a process of environment `name` gets (`sandbox.runs.emulation.probe`); ValueError if it fails."""
    reason = emulation.unavailable(environment_variables(name))
    if reason:
        raise ValueError(f"environment {name}: {reason}; leave it out of --environments on this machine")
    try:
        return emulation.probe(emulation.environment(environment_variables(name)))
    except RuntimeError as error:
        raise ValueError(f"environment {name}: {error}") from None


def check_probe(name, found):
    """ValueError if the variables of environment `name` did not take in the process that reported `found`."""
    problem = emulation.not_taken(environment_variables(name), found)
    if problem:
        raise ValueError(f"{problem}: leave {name} out of --environments")


# %% The figures: each one's command, and what it compares.
@dataclass(frozen=True)
class Quantity:
    """One quantity of a figure, as one environment measured it.

    `values` maps each item (a run, a loss, a step, ...) to a float or, for a
    categorical quantity (an outcome, a rank, a chosen rate), a string. `printed` is
    the format the README prints a number with (``".4f"``), None where it prints none.
    """
    part: str
    name: str
    values: dict
    printed: str | None = None
    numeric: bool = True


@dataclass(frozen=True)
class Figure:
    """A published figure: its experiment, the command's arguments, and a reader of what the command writes.

    `parts` names the commands of a figure made of several (each gets its own folder),
    each with the arguments it adds; `quick_args` and `quick_parts` are the reduced
    protocol of --quick.
    """
    script: str
    args: tuple
    read: object
    parts: dict = field(default_factory=lambda: {"": ()})
    quick_args: tuple | None = None
    quick_parts: tuple | None = None

    def runs(self, quick):
        """(part, the command's arguments after the script) of each command this figure runs."""
        return [(part, (*self._args(quick), *extra)) for part, extra in self._parts(quick).items()]

    def command(self, quick):
        """The command as a reader types it; a figure of several commands names the values of the one flag
        that varies (``--param xyxy|xywh``)."""
        words = [f"python experiments/{self.script}.py", *self._args(quick)]
        extras = list(self._parts(quick).values())
        if len(extras) > 1:
            words += [extras[0][0], "|".join(value for _, value in extras)]
        else:
            words += extras[0]
        return " ".join(words)

    def _args(self, quick):
        return self.quick_args if quick and self.quick_args is not None else self.args

    def _parts(self, quick):
        if quick and self.quick_parts is not None:
            return {part: self.parts[part] for part in self.quick_parts}
        return self.parts


def number(text):
    """A float from a CSV field; an empty field (no such iteration) is NaN."""
    return float(text) if text not in ("", None) else math.nan


def read_figure1(folder):
    """figure1.json's boxes, band.npz's extremes and certified errors, spearman.csv's correlations."""
    figure1 = json.loads((folder / "figure1.json").read_text())
    boxes = {f"panel {panel} box {i} {coordinate}": float(value)
             for panel, solved in figure1.items() for i, box in enumerate(solved["boxes"])
             for coordinate, value in zip(("x1", "y1", "x2", "y2"), box)}
    quantities = [Quantity("boxes", "boxes", boxes, ".2f")]
    band = {}
    with np.load(folder / "band.npz") as saved:
        for name in saved.files:
            if name in ("targets", "relative_radii"):
                continue
            target, norm, coords, measure, side, *gap = name.split("_")
            quantity = "certified error" if gap else f"{MEASURES[measure]} {side}"
            for r, value in enumerate(saved[name]):
                band.setdefault(quantity, {})[f"target {target} {norm} on {coords} r{r} {measure} {side}"] = \
                    float(value)
    quantities += [Quantity("IoU band", name, values, ".3f" if name == "certified error" else ".2f")
                   for name, values in band.items()]
    rows = read_csv(folder / "spearman.csv")
    quantities += [Quantity("Spearman", column, {row["loss"]: number(row[column]) for row in rows}, ".3f")
                   for column in ("spearman_overlapping", "spearman_all")]
    quantities += [Quantity("Spearman", column, {row["loss"]: row[column] for row in rows}, numeric=False)
                   for column in ("constant_overlapping", "constant_all", "pairs_overlapping", "pairs_all")]
    return quantities


def sweep_quantities(folder, part_of=lambda row: "", name=""):
    """Each run of a sweep folder: results.csv's numbers and outcomes, and where saved, the final
    box (boxes/) and the IoU at every step (histories/).

    `part_of(row)` gives the run's part of the figure; `name` prefixes each run's item.
    """
    rows = read_csv(folder / "results.csv")
    axes = list(rows[0])[:list(rows[0]).index("start")] if rows else []
    columns = {"final_iou": ".4f", "final_giou": None, "iterations": ".0f", "iterations_to_iou_0.5": None,
               "iterations_to_iou_0.9": None}
    found = {}

    def add(part, quantity, item, value, printed=None, numeric=True):
        found.setdefault((part, quantity), (printed, numeric, {}))[2][item] = value

    by_cell = {}
    for row in rows:
        by_cell.setdefault(row["cell"], []).append(row)
    for cell, cell_rows in by_cell.items():
        histories = folder / "histories" / f"{cell}.npy"
        histories = np.load(histories) if histories.exists() else None
        boxes = folder / "boxes" / f"{cell}.npy"
        boxes = np.load(boxes) if boxes.exists() else None
        for i, row in enumerate(cell_rows):
            part = part_of(row)
            item = " ".join([name, *(row[axis] for axis in axes), row["start"]]).strip()
            for column, printed in columns.items():
                add(part, column, item, number(row[column]), printed)
            add(part, "outcome", item, row["outcome"], numeric=False)
            add(part, HOME, item, row["converged"], numeric=False)
            add(part, "stalled", item, row["stalled"], numeric=False)
            add(part, "start box", item, row["start_box"], numeric=False)
            if boxes is not None:
                steps = boxes[i][~np.isnan(boxes[i]).any(axis=-1)]
                for coordinate, value in zip(("x1", "y1", "x2", "y2"), steps[-1]):
                    add(part, "final box", f"{item} {coordinate}", float(value))
            if histories is not None:
                for step, value in enumerate(histories[i]):
                    add(part, "IoU at every step", f"{item} step {step}", float(value))
    return [Quantity(part, quantity, values, printed, numeric)
            for (part, quantity), (printed, numeric, values) in found.items()]


def read_headline(folder):
    """Each run of the headline's sweep (`sweep_quantities`)."""
    return sweep_quantities(folder)


def read_optimisers(folder):
    """The four parameterisations' runs of every method, the first-order methods apart from the scipy ones."""
    def part_of(row):
        return "first-order (gd, momentum, adam)" if row["method"] in FIRST_ORDER else "scipy methods"
    merged = {}
    for sub in sorted(path for path in folder.iterdir() if path.is_dir()):
        for quantity in sweep_quantities(sub, part_of):  # a run's item names its parameterisation
            key = (quantity.part, quantity.name)
            if key in merged:
                quantity = Quantity(*key, {**merged[key].values, **quantity.values}, quantity.printed,
                                    quantity.numeric)
            merged[key] = quantity
    return list(merged.values())


def read_simulation(folder):
    """summary.csv's E(0), E(200), mean final IoU and shares; each loss's E(t), mean IoU(t) and error map."""
    rows = read_csv(folder / "summary.csv")
    formats = {"error_first": ".0f", "error_final": ".0f", "mean_final_iou": ".3f"}
    columns = [column for column in rows[0] if column not in ("loss", "cases", "iterations", "seconds", "gradient")]
    quantities = [Quantity("summary", column, {row["loss"]: number(row[column]) for row in rows},
                           formats.get(column, ".4f"))
                  for column in columns]
    curves = {"errors": ("E(t)", ".0f"), "mean_iou": ("mean IoU(t)", ".3f"),
              "final_error_per_centre": ("final error per anchor centre", None)}
    values = {key: {} for key in curves}
    for row in rows:
        with np.load(folder / f"{row['loss']}.npz") as saved:
            for key in curves:
                for t, value in enumerate(saved[key]):
                    values[key][f"{row['loss']} {t}"] = float(value)
    quantities += [Quantity("E(t)", name, values[key], printed) for key, (name, printed) in curves.items()]
    return quantities


def read_learning(folder):
    """summary.csv: each loss's test metrics at its chosen rate, mean and std over seeds, and the rate."""
    rows = read_csv(folder / "summary.csv")
    quantities = []
    for metric in ("mean_iou", "accuracy_50", "accuracy_75", "accuracy_mean", "l1_error"):
        for column in (metric, f"{metric}_std"):
            quantities.append(Quantity("", column, {row["loss"]: number(row[column]) for row in rows},
                                       ".2f" if metric == "l1_error" else ".3f"))
    quantities.append(Quantity("", "rate chosen", {row["loss"]: row["lr"] for row in rows}, numeric=False))
    return quantities


def read_which_loss(folder):
    """evidence.csv's values and spreads, ranking.csv's ranks and failures, rates.csv's rates, per setting."""
    found = {}
    for row in read_csv(folder / "evidence.csv"):
        for column, name in (("value", row["measure"]), ("spread", f"{row['measure']} spread")):
            found.setdefault((row["setting"], name, ".3f", True), {})[row["loss"]] = number(row[column])
    for row in read_csv(folder / "ranking.csv"):
        for column in ("rank", "failed"):
            found.setdefault((row["setting"], column, None, False), {})[row["loss"]] = row[column]
    for row in read_csv(folder / "rates.csv"):
        found.setdefault((row["setting"], "rate chosen", None, False), {})[f"{row['loss']} {row['optimizer']}"] = \
            row["lr"]
    return [Quantity(part, name, values, printed, numeric) for (part, name, printed, numeric), values in found.items()]


def read_rates(folder):
    """Each of the learning-rate sweep's 960 runs (`sweep_quantities`)."""
    return sweep_quantities(folder)


def read_giou_vs_iou(folder):
    """pairs.npz's boxes, IoU, GIoU, C and U per pair, and the counts and extremes the README quotes."""
    quantities = []
    with np.load(folder / "pairs.npz") as saved:
        for key in ("pred", "target", "iou", "giou", "c", "u"):
            columns = ("x1", "y1", "x2", "y2") if saved[key].ndim == 2 else ("",)
            values = {f"pair {i} {column}".strip(): float(value)
                      for i, row in enumerate(saved[key].reshape(len(saved[key]), -1))
                      for column, value in zip(columns, row)}
            quantities.append(Quantity("", key, values, ".4f"))
    measured = json.loads((folder / "config.json").read_text())["measured"]
    formats = {"pairs": ".0f", "apart": ".0f", "overlapping": ".0f", "c_equals_u": ".0f",
               "largest_giou_minus_iou": ".0e", "largest_giou_minus_iou_where_c_exceeds_u": ".1e"}
    quantities += [Quantity("", key, {"": float(measured[key])}, printed) for key, printed in formats.items()]
    low, high = measured["giou_range_apart"]
    quantities.append(Quantity("", "GIoU range of the pairs apart", {"lowest": low, "highest": high}, ".2f"))
    return quantities


PARAMS = ("xyxy", "xywh", "cxcywh", "log")
FIGURES = {
    "figure1": Figure("norms_vs_iou", (), read_figure1,
                      quick_args=("--radii", "3", "--cells", "10000", "--pairs", "1000")),
    "headline": Figure("stall_vs_converge", (), read_headline),
    "optimisers": Figure("stall_vs_converge", ("--method", "all"), read_optimisers,
                         parts={param: ("--param", param) for param in PARAMS}, quick_parts=("xyxy",)),
    "simulation": Figure("regression_simulation", ("--keep", "summaries"), read_simulation,
                         quick_args=("--keep", "summaries", "--points", "50")),
    "learning": Figure("train_regressor", (), read_learning, quick_args=("--quick",)),
    "which_loss": Figure("which_loss", ("--quick",), read_which_loss,
                         quick_args=("--quick", "--losses", "giou", "l1", "--points", "5")),
    "rates": Figure("ablate", ("experiments/sweeps/learning_rates.toml",), read_rates),
    "giou_vs_iou": Figure("giou_vs_iou", (), read_giou_vs_iou),
}


# %% Arguments.
def parse_args(argv):
    parser = experiment_parser(__doc__)
    parser.add_argument("--out", type=Path, default=Path("results/reproducibility"),
                        help="folder for each environment's runs, changes.csv, table.md and config.json")
    parser.add_argument("--environments", nargs="+", default=list(ENVIRONMENTS), metavar="NAME",
                        help=f"environments to run and compare, own among them (valid: {', '.join(ENVIRONMENTS)})")
    parser.add_argument("--figures", nargs="+", default=list(FIGURES), metavar="NAME",
                        help=f"figures to re-measure (valid: {', '.join(FIGURES)})")
    parser.add_argument("--quick", action="store_true",
                        help="reduced protocols, for a fast check: " + "; ".join(
                            f"{name}: {figure.command(True).removeprefix('python experiments/')}"
                            for name, figure in FIGURES.items() if figure.runs(True) != figure.runs(False)))
    args = parser.parse_args(argv)
    check_out(parser, args.out)
    try:
        check(args)
    except ValueError as error:
        parser.error(str(error))
    return args


def check(args):
    """Resolve the names, refuse the other protocol's folder, and probe every environment; ValueError if one fails."""
    args.environments = unique([canonical(name, ENVIRONMENTS, "environment") for name in args.environments],
                               "--environments")
    args.figures = unique([canonical(name, FIGURES, "figure") for name in args.figures], "--figures")
    if "own" not in args.environments:
        raise ValueError("--environments must include own: every other environment is compared with it")
    args.environments = [name for name in ENVIRONMENTS if name in args.environments]  # own first
    refuse_other_settings(args.out, dict(quick=args.quick))
    args.probes = {}
    for name in args.environments:
        args.probes[name] = probe(name)
        check_probe(name, args.probes[name])


def unique(names, flag):
    """`names`, or ValueError naming those given more than once."""
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{flag} names {', '.join(repeated)} more than once; give each once")
    return names


# %% Running the sub-runs.
@dataclass(frozen=True)
class SubRun:
    """One figure's command (or one of its commands) under one environment, into its own folder."""
    environment: str
    figure: str
    part: str
    args: tuple
    folder: Path

    @property
    def name(self):
        return f"{self.environment} {self.figure}" + (f" {self.part}" if self.part else "")

    @property
    def command(self):
        return [sys.executable, str(ROOT / "experiments" / f"{FIGURES[self.figure].script}.py"), *self.args,
                "--out", str(self.folder.resolve())]

    @property
    def shown(self):
        """The command as run, from the repository root."""
        return " ".join([f"experiments/{FIGURES[self.figure].script}.py", *self.args, "--out", str(self.folder)])

    @property
    def marker(self):
        return self.folder.with_name(f"{self.folder.name}.finished.json")

    @property
    def log(self):
        return self.folder.with_name(f"{self.folder.name}.log")


def sub_runs(out, figures, environments, quick):
    """Every sub-run, a figure at a time and own first, so that an interrupted run has whole comparisons."""
    return [SubRun(environment, figure, part, extra, out / environment / figure / part if part
                   else out / environment / figure)
            for figure in figures for environment in environments for part, extra in FIGURES[figure].runs(quick)]


def run_sub_run(sub):
    """Run one sub-run's command; write its marker if it exited 0 on code that did not change while it ran.

    Returns (exit status, seconds, stderr's last line or what went wrong).
    """
    if sub.folder.exists():  # what an unfinished run left may come from other code: start over
        shutil.rmtree(sub.folder)
    sub.folder.parent.mkdir(parents=True, exist_ok=True)
    source, began = source_digest(), time.perf_counter()
    with open(sub.log, "w") as log:
        done = subprocess.run(sub.command, env=emulation.environment(environment_variables(sub.environment)), cwd=ROOT, stdout=log,
                              stderr=subprocess.PIPE, text=True)
        log.write(done.stderr)
    seconds = time.perf_counter() - began
    if done.returncode:
        return done.returncode, seconds, last_line(done.stderr) or f"exit status {done.returncode}"
    if source_digest() != source:
        return 1, seconds, ("sandbox/ or experiments/ changed while it ran, so its results may come from either "
                            "version; the same command runs it again")
    write_json(sub.marker, dict(command=" ".join(sub.command), variables=environment_variables(sub.environment),
                                source=source, seconds=round(seconds, 1),
                                finished=datetime.now(timezone.utc).isoformat()))
    return 0, seconds, ""


def source_digest():
    """A digest of the code the sub-runs execute: sandbox/, the experiments (this script aside), the sweep files."""
    digest = hashlib.sha256()
    for path in sorted([*ROOT.glob("sandbox/**/*.py"), *ROOT.glob("experiments/*.py"),
                        *ROOT.glob("experiments/sweeps/*.toml")]):
        if path.name != Path(__file__).name:
            digest.update(f"{path.relative_to(ROOT)}\n".encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def last_line(text):
    """The last non-empty line of `text`, progress bars' carriage returns counted as line ends."""
    lines = [line.strip() for line in text.replace("\r", "\n").split("\n") if line.strip()]
    return lines[-1] if lines else ""


def measure(args):
    """Run every unfinished sub-run, a line each; return the failures as (sub-run, one-line reason)."""
    runs = sub_runs(args.out, args.figures, args.environments, args.quick)
    pending = [sub for sub in runs if not sub.marker.exists()]
    print(f"{len(runs)} sub-runs ({len(args.figures)} figures x {len(args.environments)} environments"
          f"{', quick protocols' if args.quick else ''}), {len(runs) - len(pending)} finished before, "
          f"{len(pending)} to run; results in {args.out}", flush=True)
    failures, began = [], time.perf_counter()
    try:
        for k, sub in enumerate(pending, 1):
            print(f"[{k}/{len(pending)}] {sub.name}: running {sub.shown}", flush=True)
            status, seconds, reason = run_sub_run(sub)
            if status == 0:
                print(f"[{k}/{len(pending)}] {sub.name}: done in {seconds:.0f} s", flush=True)
            else:
                failures.append((sub, reason))
                print(f"[{k}/{len(pending)}] {sub.name}: FAILED after {seconds:.0f} s: {sub.shown}: "
                      f"{reason} (log: {sub.log})", flush=True)
    except KeyboardInterrupt:
        kept = sum(sub.marker.exists() for sub in runs)
        print(f"\n{kept} of {len(runs)} sub-runs are finished and kept (each with its .finished.json)", file=sys.stderr)
        raise
    print(f"{len(pending) - len(failures)} sub-runs finished and {len(failures)} failed in "
          f"{(time.perf_counter() - began) / 60:.1f} min", flush=True)
    return failures


# %% Comparing.
@dataclass(frozen=True)
class Change:
    """How one quantity moved from own to another environment."""
    part: str
    name: str
    environment: str
    items: int
    changed: int  # items whose value differs in any bit (or that one side lacks)
    change: float  # the largest absolute change of a numeric value present on both sides; NaN if none
    item: str = ""  # where the largest change is (numeric) or the first changed item (categorical)
    own_value: object = None
    value: object = None
    printed: str | None = None
    visible: int = 0  # changed items whose printed form changes too (every changed categorical item)
    numeric: bool = True


def same(a, b):
    """Whether two values are the same bits: equal with the same sign (0.0 is not -0.0), or both NaN."""
    if isinstance(a, float) and isinstance(b, float):
        return (a == b and math.copysign(1.0, a) == math.copysign(1.0, b)) or (math.isnan(a) and math.isnan(b))
    return a == b


def compare(own, other, environment):
    """The `Change` of one quantity from `own` to `other` (two `Quantity` of the same part and name)."""
    mine, theirs = own.values, other.values
    items = list(mine) + [item for item in theirs if item not in mine]
    both = {item for item in items if item in mine and item in theirs}
    differing = [item for item in items if item not in both or not same(mine[item], theirs[item])]
    change, where = math.nan, differing[0] if differing else ""
    visible = len(differing)  # a value one side lacks, or a categorical one changed, is always seen
    if own.numeric:
        visible = 0 if own.printed is None else sum(
            item not in both or format(mine[item], own.printed) != format(theirs[item], own.printed)
            for item in differing)
        finite = [(abs(mine[item] - theirs[item]), item) for item in differing
                  if item in both and math.isfinite(abs(mine[item] - theirs[item]))]
        if finite:
            change, where = max(finite)
    return Change(own.part, own.name, environment, len(items), len(differing), change, where, mine.get(where),
                  theirs.get(where), own.printed, visible, own.numeric)


def compare_figure(measured):
    """Every `Change` of one figure: `measured` maps each environment to its list of `Quantity`, own's first."""
    own = {(q.part, q.name): q for q in measured["own"]}
    changes = []
    for environment, quantities in measured.items():
        if environment == "own":
            continue
        theirs = {(q.part, q.name): q for q in quantities}
        for key, quantity in own.items():
            other = theirs.get(key, Quantity(*key, {}, quantity.printed, quantity.numeric))
            changes.append(compare(quantity, other, environment))
        for key in theirs.keys() - own.keys():  # a quantity own's run did not write at all
            changes.append(compare(Quantity(*key, {}, theirs[key].printed, theirs[key].numeric), theirs[key],
                                   environment))
    return changes


GROUPS = (("BLAS kernels", KERNELS), ("BLAS threads", THREADS), ("NumPy SIMD off", SIMD),
          ("the same command again", AGAIN))


def classify(changes, environments):
    """The class of one figure's part from its changes under `environments` (own left out)."""
    moved = {change.environment for change in changes if change.changed}
    measured = set(environments) - {"own"}
    unmeasured = [name for name in ENVIRONMENTS if name != "own" and name not in measured]
    if not moved:
        label = "bit for bit under every environment" + (" measured" if unmeasured else "")
    elif moved & set(AGAIN):
        label = "moves from one run to the next on this machine, so its other changes may be that too"
    elif not moved - set(SIMD):
        label = "bit for bit across BLAS kernels and thread counts, moves with NumPy's SIMD: bit for bit on one " \
                "machine only"
    else:
        blas = [what for what, names in GROUPS[:2] if moved & set(names)]
        label = f"moves with {' and '.join(blas)}" + (", and with NumPy's SIMD" if moved & set(SIMD) else "")
    return label + (f" (not measured: {', '.join(unmeasured)})" if unmeasured else "")


def how_much(changes):
    """By how much one figure's part moves, group by group of environments, in one paragraph.

    It names the quantities the README prints and the categorical ones; a part that moves
    only in values the README does not print (boxes along the way, IoU at every step)
    says which. changes.csv has every quantity.
    """
    sentences = []
    for group, names in GROUPS:
        mine = [change for change in changes if change.environment in names]
        moved = sorted({change.environment for change in mine if change.changed}, key=ENVIRONMENTS.index)
        if mine and not moved:
            sentences.append(f"{group}: none")
        if not moved:
            continue
        said, unprinted = [], []
        for name in dict.fromkeys(change.name for change in mine if change.changed):
            moves = [change for change in mine if change.name == name and change.changed]
            most, items = max(change.changed for change in moves), moves[0].items
            largest = [change.change for change in moves if math.isfinite(change.change)]
            if moves[0].numeric and moves[0].printed is None:
                unprinted.append(name)
            elif largest:
                said.append(f"{name} up to {max(largest):.2g} ({most} of {items})")
            else:
                said.append(f"{name} {most} of {items}")
        if unprinted:
            said.append(f"{'also ' if said else 'only '}{', '.join(unprinted)}, which the README does not print")
        visible = [change.name for change in mine if change.visible]
        at_precision = (f"changes at the README's precision: {', '.join(dict.fromkeys(visible))}" if visible
                        else "no change at the README's precision")
        sentences.append(f"{group} ({', '.join(moved)}): {'; '.join(said)}; {at_precision}")
    return ". ".join(sentences)


def printed_as(spec):
    if spec is None:
        return "not printed"
    if spec.endswith("e"):
        return f"{int(spec[1:-1]) + 1} significant figures"
    return f"{spec[1:-1]} decimals" if spec != ".0f" else "whole numbers"


def read_measured(args):
    """Each figure's quantities under each environment whose sub-runs all finished on the same code as own's;
    and the problems, one line each: files that could not be read, runs on other code."""
    measured, problems = {}, []
    for figure in args.figures:
        sources = {}
        for environment in args.environments:
            subs = sub_runs(args.out, [figure], [environment], args.quick)
            if not all(sub.marker.exists() for sub in subs):
                continue
            # markers of earlier versions of this script hold no source, and are not checked
            sources[environment] = {json.loads(sub.marker.read_text()).get("source") for sub in subs} - {None}
            if len(sources[environment] | sources.get("own", set())) > 1:
                problems.append(f"{environment} {figure} ran on other code than own's (sandbox/ or experiments/ "
                                f"changed between their sub-runs), so it is not compared: delete the .finished.json "
                                f"of whichever is out of date and run the same command again")
                continue
            try:
                measured.setdefault(figure, {})[environment] = FIGURES[figure].read(args.out / environment / figure)
            except (OSError, KeyError, ValueError, IndexError) as error:
                problems.append(f"{environment} {figure}: its files could not be read: {error}")
    return measured, problems


CHANGE_COLUMNS = ["figure", "part", "quantity", "environment", "items", "changed", "item", "own_value", "value",
                  "change", "printed_as", "changed_when_printed"]


def tables(args, measured):
    """The rows of changes.csv and the text of table.md."""
    rows, lines = [], []
    for figure in args.figures:
        if "own" not in measured.get(figure, {}):
            lines.append(f"| {figure} | `{FIGURES[figure].command(args.quick)}` | not measured: own's run did not "
                         f"finish | |")
            continue
        changes = compare_figure(measured[figure])
        environments = list(measured[figure])
        for part in dict.fromkeys(q.part for q in measured[figure]["own"]):
            mine = [change for change in changes if change.part == part]
            label = f"{figure}: {part}" if part else figure
            lines.append(f"| {label} | `{FIGURES[figure].command(args.quick)}` | {classify(mine, environments)} | "
                         f"{how_much(mine)} |")
        for change in changes:
            rows.append(dict(figure=figure, part=change.part, quantity=change.name, environment=change.environment,
                             items=change.items, changed=change.changed, item=change.item,
                             own_value=change.own_value, value=change.value,
                             change=("" if not change.numeric or (change.changed and math.isnan(change.change))
                                     else f"{change.change:.3g}" if change.changed else 0),
                             printed_as=printed_as(change.printed) if change.numeric else "as written",
                             changed_when_printed=change.visible))
    return rows, "\n".join(header(args) + ["| figure | command | class | how much |", "|---|---|---|---|", *lines]
                           + footer(args, measured)) + "\n"


def header(args):
    """How the table was measured: the command, the date, this machine's kernels, the environments."""
    own = args.probes["own"]
    lines = [f"Re-measured by `python experiments/reproducibility.py{' --quick' if args.quick else ''} --out "
             f"{args.out}`" + (" (reduced protocols: the commands below)" if args.quick else "") + ", on "
             f"{datetime.now().date().isoformat()}. Each figure's command ran under each environment, and every number "
             f"and string behind the figure (changes.csv lists them by quantity) is compared with own's run (this machine: OpenBLAS {', '.join(own['blas'])} "
             f"kernels, {', '.join(map(str, own['threads']))} threads by default and one per worker in "
             f"train_regressor.py and which_loss.py; NumPy SIMD {' '.join(own['simd']) or 'baseline only'}).", ""]
    described = {"again": "none, own's command a second time", "threads-1": "OPENBLAS_NUM_THREADS=1", "threads-2": "OPENBLAS_NUM_THREADS=2",
                 "simd-off": "NPY_DISABLE_CPU_FEATURES (NumPy's baseline, no AVX2 or AVX-512 in the ufuncs)"}
    others = [f"{name}: {described.get(name, f'OPENBLAS_CORETYPE={name}')}" for name in args.environments
              if name != "own"]
    return lines + ["Environments: " + "; ".join(others) + ".", ""]


def footer(args, measured):
    """What the table counts as a change, and the precision it takes for each quantity the README prints."""
    precision = {}
    for figure, by_environment in measured.items():
        for quantity in by_environment.get("own", []):
            if quantity.numeric and quantity.printed is not None:
                label = f"{figure}: {quantity.part}" if quantity.part else figure
                precision.setdefault(label, {}).setdefault(printed_as(quantity.printed), []).append(quantity.name)
    lines = ["", "A value changes when any bit of it differs from own's (a value one run lacks counts too); "
                 "\"up to\" is the largest absolute change, \"(n of N)\" how many of the N values changed under "
                 "the environment where most did. \"At the README's precision\" compares the values formatted as "
                 "the README prints them; a categorical value (outcome, home, rank, chosen rate) counts whenever "
                 "it changes. The precisions used:", ""]
    for label, by_format in precision.items():
        if len(by_format) == 1:
            lines.append(f"- {label}: {next(iter(by_format))}, every number")
        else:
            lines.append(f"- {label}: " + "; ".join(f"{', '.join(names)} {shown}" for shown, names in by_format.items()))
    return lines


def config(args):
    """config.json: the arguments as used, each environment's variables and probe, the package versions."""
    return dict(environments=args.environments, figures=args.figures, quick=args.quick, out=str(args.out),
                variables={name: environment_variables(name) for name in args.environments}, probes=args.probes,
                commands={figure: FIGURES[figure].command(args.quick) for figure in args.figures}, **provenance())


def main(argv=None):
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    try:
        with locked(args.out):
            return run(args)
    except SweepError as error:
        raise SystemExit(f"reproducibility.py: {error}") from None


def run(args):
    """Measure, then compare: write config.json, the sub-runs, changes.csv and table.md under --out."""
    write_json(args.out / "config.json", config(args))
    failures = run_interruptible(lambda: measure(args), args.out, kept="the finished sub-runs", resumes=True)
    measured, problems = read_measured(args)
    rows, markdown = tables(args, measured)
    write_csv(args.out / "changes.csv", CHANGE_COLUMNS, rows)
    atomic_write(args.out / "table.md", lambda tmp: Path(tmp).write_text(markdown))
    print(markdown)
    for sub, reason in failures:
        print(f"FAILED: {sub.name}: {sub.shown}: {reason}", file=sys.stderr)
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"table: {args.out / 'table.md'}; every change: {args.out / 'changes.csv'}")
    return 1 if failures or problems else 0


if __name__ == "__main__":
    sys.exit(main())
