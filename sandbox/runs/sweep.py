"""Declarative ablation sweeps: a TOML file of axes, expanded to cells, run, stored, resumed.

A sweep file names the axes and their values::

    threshold = 0.99                       # final IoU that counts as converged
    target = [-1.0, -0.5, 1.0, 0.5]
    iou_weighting = false                  # first-order steps times (2 - IoU), as the DIoU paper
    record_boxes = false                   # also keep every run's box at every step
    tie = [["method", "lr"]]               # zip these axes instead of crossing them

    [axes]
    loss = ["iou", "giou", "alpha_ciou:alpha=3"]
    method = ["gd", "momentum", "adam"]
    lr = [0.3, 0.03, 0.1]                  # learning rates: first-order methods only
    starts = ["ring"]

    [starts.ring]
    kind = "non_overlapping"               # or "random", "overlapping", "boxes"
    gap = 0.5
    directions = 8

    [starts.far]
    kind = "random"                        # random starts, drawn for each cell from its coordinates,
    count = 16                             # or, with shared = true, from the seed axis alone:
    shared = true                          # the same boxes for every loss, method and rate

    [starts.mine]
    kind = "boxes"                         # these boxes, xyxy, in every cell that names them
    boxes = [[2.0, 2.0, 3.0, 3.5], [-4.0, -1.0, -3.0, 0.5]]
    labels = ["NE", "W"]                   # optional; box0, box1, ... otherwise

    [[exclude]]                            # drop the cells that match every key
    loss = "iou"
    method = ["momentum", "adam"]

A target of five numbers, ``target = [cx, cy, w, h, theta]``, makes a sweep of oriented
boxes (`sandbox.geometry.oriented`): its losses must be oriented ones
(`sandbox.losses.oriented.ORIENTED_LOSSES`), its ``param`` defaults to ``'xywha'``, and
its start sets are made oriented around the target (`sandbox.optim.starts`; a start set
of kind ``boxes`` lists [cx, cy, w, h, theta]). A simulation sweep's ``[simulation]``
table takes ``oriented = true`` for `sandbox.runs.simulation.oriented_protocol`.

A learning sweep (``experiment = "learning"``) trains a network per cell instead
(`sandbox.learning.training.run`): its axes are ``loss``, ``lr`` and ``seed``, and a
``[learning]`` table fixes the rest (`sandbox.learning.training.LEARNING_DEFAULTS`); see
``experiments/sweeps/learning.toml``. Its ``loss`` axis takes, besides loss specs, the
names of detector heads trained with their own losses (``'gfl'``, ``'detr'``:
`sandbox.learning.heads`).

`load` checks every key and value and reports a mistake with its place in the
file; `cells` expands the grid. A cell is one combination of axis values; it fits
every start box of its start set, one run each. `run_cells` runs a group of
cells (`batches`: first-order cells that differ only in learning rate, start set
or seed run as one batched call) and gives each cell the results it would get
alone: they are a pure function of the cell, whose random start boxes are seeded
from its own coordinates, so they do not depend on the order, the grouping, the
workers or the interruptions (a ``shared`` set is seeded from its name and the
seed axis alone, so that every loss, method and rate of a seed meets the same
boxes). `Store`
keeps the results under a folder so that an interrupted sweep loses nothing that
had finished and runs nothing twice.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import math
import time
from itertools import product
from pathlib import Path
from typing import (TYPE_CHECKING, Any, Callable, Collection, Iterator, Mapping, NamedTuple, Optional, Sequence,
                    TypeAlias)

import numpy as np
from numpy.typing import ArrayLike, DTypeLike, NDArray
from scipy.optimize import OptimizeResult

from sandbox._types import FloatArray, StrPath
from sandbox.geometry.boxes import check_boxes
from sandbox.geometry.oriented import check_oriented_boxes
from sandbox.geometry.parameterisations import EVERY_PARAMETERISATION
from sandbox.learning.metrics import METRIC_COLUMNS
from sandbox.losses.formulas import iou
from sandbox.losses.kinds import KINDS
from sandbox.losses.spec import adopt, loss_kind, travelling
from sandbox.optim.batch import regress
from sandbox.optim.fitting import fit_resolved, run_first_order
from sandbox.optim.rules import RULES, not_applicable
from sandbox.optim.settings import (Settings, gradient_backend, learning_rate, loss_spec, method_name, param_name,
                                    schedule_name, whole)
from sandbox.optim.starts import (
    direction_name,
    non_overlapping_starts,
    overlapping_starts,
    random_non_overlapping_starts,
)
from sandbox.runs.simulation import diou_protocol, oriented_protocol
from sandbox.workers import forks, map_tasks, prepare_worker

if TYPE_CHECKING:
    from sandbox.runs.store import Store

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

Sweep: TypeAlias = dict[str, Any]
"""A resolved sweep (`load`, `resolve`): a dict of plain values, as its folder's sweep.json holds it."""
Cell: TypeAlias = dict[str, Any]
"""A cell: axis -> value (`cells`)."""
CellResults: TypeAlias = tuple[list[dict[str, Any]], NDArray[Any], Optional[FloatArray], Optional[dict[str, Any]]]
"""A cell's rows, IoU histories (runs, steps), boxes (runs, steps, 4) or None, and record or None (`run_cells`)."""

AXES = ("loss", "method", "param", "lr", "schedule", "starts", "maxiter", "seed")
FIRST_ORDER_AXES = ("lr", "schedule")
"""Axes that only first-order methods have; for any other method a cell holds None there."""
DEFAULTS: dict[str, list[Any]] = {"loss": ["giou"], "method": ["gd"], "param": ["xyxy"], "lr": [None],
                                  "schedule": ["step"], "maxiter": [200], "seed": [0]}
TOP_LEVEL = ("axes", "starts", "tie", "exclude", "threshold", "target", "iou_weighting", "record_boxes",
             "gradient", "experiment")
DEFAULT_TARGET = [-1.0, -0.5, 1.0, 0.5]
START_KINDS: dict[str, dict[str, Any]] = {
    "non_overlapping": {"gap": 0.5, "directions": 8, "size": [1.0, 1.5]},  # the headline's starts
    "random": {"count": 8, "radius": 4.0, "scale": [0.5, 2.0], "min_gap": 0.05},
    "overlapping": {"count": 8, "iou_range": [0.05, 0.7], "scale": [0.5, 2.0]},
    "boxes": {"boxes": None, "labels": None},
}
SHARED_KINDS = ("random", "overlapping")
"""Random start sets that may be ``shared = true``: drawn from the seed axis alone, not the whole cell.
The key is recorded only when true, so that sweeps saved before it existed still match."""
RESULT_COLUMNS = [*AXES, "start", "start_box", "final_iou", "final_giou", "iterations", "stalled", "converged",
                  "outcome", "iterations_to_iou_0.5", "iterations_to_iou_0.9", "seconds", "cell", "runs"]
"""A row per run: the axis values, the run's start and results, then its cell and the cell's number of runs."""
LEARNING_COLUMNS = ["loss", "lr", "seed", "diverged", "converged",
                    *(f"{split}_{m}" for split in ("val", "test") for m in METRIC_COLUMNS), "seconds", "cell", "runs"]
"""A row per trained network: its loss, rate and seed, its validation and test metrics (`sandbox.learning.metrics`)."""
SIMULATION_COLUMNS = ["loss", "seed", "cases", "error_initial", "error_final", "mean_final_iou",
                      "share_final_iou_above_0.5", "share_final_iou_above_0.9", "iterations_to_tenth_error",
                      "cases_apart", "share_apart_moved", "seconds", "cell", "runs"]
"""A row per simulation: E(0) and E(T), the final IoU's mean and shares above 0.5 and 0.9, the first t
with E(t) < E(0) / 10 (empty if none), how many cases start apart and the share of them whose box moved."""
SIMULATION_DEFAULTS: dict[str, Any] = dict(points=5000, iterations=200, gradient="autograd")
"""The settings of a simulation sweep (``[simulation]``): the DIoU paper's protocol (`sandbox.runs.simulation`).
``oriented = true`` runs its oriented counterpart; the key is recorded only when true, so that sweeps saved
before it existed still match."""


class Experiment(NamedTuple):
    """A kind of sweep other than boxes: its axes and their defaults, its results' columns, and the
    name of the table of settings every cell shares (``[learning]``, ``[simulation]``)."""

    axes: tuple[str, ...]
    axis_defaults: dict[str, list[Any]]
    columns: list[str]
    table: str


EXPERIMENTS = {
    "learning": Experiment(("loss", "lr", "seed"), {"loss": ["giou"], "lr": [1e-3], "seed": [0]},
                           LEARNING_COLUMNS, "learning"),
    "simulation": Experiment(("loss", "seed"), {"loss": ["giou"], "seed": [0]}, SIMULATION_COLUMNS, "simulation"),
}
"""``experiment = "learning"``: a cell trains one network (`sandbox.learning.training.run`), its settings in
[learning] (`sandbox.learning.training.LEARNING_DEFAULTS`). ``experiment = "simulation"``: a cell runs the DIoU
paper's simulation (`sandbox.optim.batch.regress` on `sandbox.runs.simulation.diou_protocol`) with one loss, its
anchor centres drawn with the cell's seed, its size in [simulation] (`SIMULATION_DEFAULTS`)."""


def axis_names(sweep: Sweep) -> tuple[str, ...]:
    """The axes of `sweep`'s cells: `AXES`, or those of its kind (`EXPERIMENTS`)."""
    return EXPERIMENTS[sweep["experiment"]].axes if "experiment" in sweep else AXES


def result_columns(sweep: Sweep) -> list[str]:
    """The columns of `sweep`'s results.csv."""
    return EXPERIMENTS[sweep["experiment"]].columns if "experiment" in sweep else RESULT_COLUMNS


class SweepError(ValueError):
    """A mistake in a sweep file, with its place."""


def load(path: StrPath) -> Sweep:
    """Read and check a sweep file; return the resolved sweep, a dict of plain values."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except OSError as error:
        raise SweepError(f"cannot read sweep file {path}: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise SweepError(f"{path}: not valid TOML: {error}") from None
    return resolve(raw, str(path))


def resolve(raw: Mapping[str, Any], where: str = "sweep") -> Sweep:
    """Check a parsed sweep and fill in the defaults."""
    experiment = raw.get("experiment", "boxes")
    if experiment in EXPERIMENTS:
        return _resolve_experiment(raw, where, experiment)
    if experiment != "boxes":
        raise SweepError(f"{where}: experiment must be 'boxes' (the default), {' or '.join(map(repr, EXPERIMENTS))}; "
                         f"got {experiment!r}")
    raw = {key: value for key, value in raw.items() if key != "experiment"}
    _keys(raw, TOP_LEVEL, where, "the top level")
    threshold = raw.get("threshold", 0.99)
    if not (_number(threshold) and 0 < threshold <= 1):
        raise SweepError(f"{where}: threshold must be a number in (0, 1]; got {threshold!r}")
    target = raw.get("target", DEFAULT_TARGET)
    aligned = (isinstance(target, list) and len(target) == 4 and all(map(_number, target))
               and target[2] > target[0] and target[3] > target[1])
    oriented = (isinstance(target, list) and len(target) == 5 and all(map(_number, target))
                and target[2] > 0 and target[3] > 0)
    if not (aligned or oriented):
        raise SweepError(f"{where}: target must be [x1, y1, x2, y2] with x2 > x1 and y2 > y1, or an oriented box "
                         f"[cx, cy, w, h, theta] with w > 0 and h > 0; got {target!r}")
    switches: dict[str, Any] = {}
    for key in ("iou_weighting", "record_boxes"):
        switches[key] = raw.get(key, False)
        if not isinstance(switches[key], bool):
            raise SweepError(f"{where}: {key} must be true or false; got {switches[key]!r}")
    if "gradient" in raw:  # recorded only when given, so that sweeps saved before it existed (autograd) still match
        try:
            switches["gradient"] = gradient_backend(raw["gradient"])
        except ValueError as error:
            raise SweepError(f"{where}: {error}") from None
    starts = _start_sets(raw.get("starts", {"ring": {"kind": "non_overlapping"}}), target, where)
    axes = _axes(raw.get("axes", {}), starts, where)
    if oriented and "param" not in raw.get("axes", {}):
        axes["param"] = [KINDS["oriented"].default_param]
    _same_kind(axes, len(target), where)
    ties = _ties(raw.get("tie", []), axes, where)
    excludes = _excludes(raw.get("exclude", []), axes, where)
    sweep = dict(threshold=float(threshold), target=[float(v) for v in target], **switches, starts=starts,
                 axes=axes, tie=ties, exclude=excludes)
    if not cells(sweep):
        raise SweepError(f"{where}: no cells are left once the exclusions are applied")
    return sweep


def _same_kind(axes: Mapping[str, list[Any]], size: int, where: str) -> None:
    """Every loss and parameterisation of a box sweep moves the target's kind of box; SweepError naming the first
    that does not."""
    kind = "oriented" if size == 5 else "axis-aligned"
    for i, loss in enumerate(axes["loss"]):
        if loss_kind(loss).size != size:
            raise SweepError(f"{where}: [axes] loss, item {i + 1}: {loss!r} measures "
                             f"{'oriented' if size == 4 else 'axis-aligned'} boxes, and the target is {kind}")
    for i, param in enumerate(axes["param"]):
        if EVERY_PARAMETERISATION[param].size != size:
            raise SweepError(f"{where}: [axes] param, item {i + 1}: {param!r} does not move {kind} boxes")


def _resolve_experiment(raw: Mapping[str, Any], where: str, experiment: str) -> Sweep:
    """A learning or simulation sweep: its axes, and the settings of its table that every cell shares."""
    kind = EXPERIMENTS[experiment]
    _keys(raw, ("experiment", kind.table, "axes", "tie", "exclude"), where, f"the top level of a {experiment} sweep")
    defaults, check = _table_rules(experiment)
    given = raw.get(kind.table, {})
    _keys(given, [*defaults, *("oriented",) * (experiment == "simulation")], where, f"[{kind.table}]")
    try:
        config = check({**defaults, **given})
    except ValueError as error:
        raise SweepError(f"{where}: [{kind.table}]: {error}") from None
    axes = _axes(raw.get("axes", {}), {}, where, kind.axes, kind.axis_defaults, experiment)
    ties = _ties(raw.get("tie", []), axes, where, kind.axes)
    excludes = _excludes(raw.get("exclude", []), axes, where, kind.axes, experiment)
    if experiment == "learning":
        from sandbox.learning.heads import recipe_for
        for i, loss in enumerate(axes["loss"]):
            try:  # a head that cannot start as [learning] says (init = "apart" for gfl)
                recipe_for(loss, config["param"], config["init"])
            except ValueError as error:
                raise SweepError(f"{where}: [axes] loss, item {i + 1}: {error}") from None
    sweep = {"experiment": experiment, kind.table: config, "axes": axes, "tie": ties, "exclude": excludes}
    if not cells(sweep):
        raise SweepError(f"{where}: no cells are left once the exclusions are applied")
    return sweep


def _table_rules(experiment: str) -> tuple[Mapping[str, object], Callable[[dict[str, Any]], dict[str, Any]]]:
    """The defaults of an experiment's table and the function that checks it (ValueError naming the key)."""
    if experiment == "learning":
        from sandbox.learning import training
        return training.LEARNING_DEFAULTS, training.check_config
    return SIMULATION_DEFAULTS, _check_simulation


def _check_simulation(config: Mapping[str, Any]) -> dict[str, Any]:
    for key in ("points", "iterations"):
        whole(config[key], key)
    checked = dict(config, gradient=gradient_backend(config["gradient"]))
    if not isinstance(checked.get("oriented", False), bool):
        raise ValueError(f"oriented must be true or false; got {checked['oriented']!r}")
    if not checked.get("oriented", True):
        del checked["oriented"]  # recorded only when true
    return checked


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _keys(table: object, valid: Collection[str], where: str, place: str) -> None:
    if not isinstance(table, dict):
        raise SweepError(f"{where}: {place} must be a table")
    for key in table:
        if key not in valid:
            raise SweepError(f"{where}: {place} has no key {key!r}; valid keys: {', '.join(valid)}")


def _start_sets(raw: object, target: list[float], where: str) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, dict) or not raw:
        raise SweepError(f"{where}: [starts] must hold at least one start set, as [starts.NAME]")
    sets: dict[str, dict[str, Any]] = {}
    for name, spec in raw.items():
        place = f"[starts.{name}]"
        if not isinstance(spec, dict):
            raise SweepError(f"{where}: {place} must be a table with a kind")
        kind = spec.get("kind")
        if kind not in START_KINDS:
            raise SweepError(f"{where}: {place} kind must be one of {', '.join(START_KINDS)}; got {kind!r}")
        _keys(spec, ("kind", *START_KINDS[kind], *("shared",) * (kind in SHARED_KINDS)), where, place)
        resolved = dict(kind=kind, **{k: spec.get(k, default) for k, default in START_KINDS[kind].items()})
        if not isinstance(spec.get("shared", False), bool):
            raise SweepError(f"{where}: {place} shared must be true or false; got {spec['shared']!r}")
        if spec.get("shared"):
            resolved["shared"] = True
        try:  # make the set once, so that every mistake in it shows now
            boxes, _ = make_starts(resolved, target, seed=0)
        except (TypeError, ValueError) as error:
            raise SweepError(f"{where}: {place}: {error}") from None
        if kind == "boxes":
            resolved["boxes"] = boxes.tolist()
        sets[name] = resolved
    return sets


def _axes(raw: dict[str, Any], starts: Mapping[str, Any], where: str, names: Sequence[str] = AXES,
          defaults: Mapping[str, list[Any]] = DEFAULTS, experiment: str = "boxes") -> dict[str, list[Any]]:
    _keys(raw, names, where, "[axes]")
    axes: dict[str, list[Any]] = {}
    for name in names:
        if name not in raw:
            axes[name] = list(starts)[:1] if name == "starts" else defaults[name]
            continue
        values = raw[name]
        if not isinstance(values, list) or not values:
            raise SweepError(f"{where}: [axes] {name} must be a non-empty list; got {values!r}")
        checked = [_check_value(name, value, starts, f"{where}: [axes] {name}, item {i + 1}", experiment)
                   for i, value in enumerate(values)]
        if len(set(map(json.dumps, checked))) < len(checked):
            raise SweepError(f"{where}: [axes] {name} lists a value more than once")
        axes[name] = checked
    return axes


def _check_value(axis: str, value: Any, starts: Mapping[str, Any], place: str, experiment: str = "boxes") -> object:
    """The canonical form of one axis value in a sweep of kind `experiment`; SweepError naming the place and the
    valid values. A learning sweep's loss may also be a head recipe (`sandbox.learning.heads`)."""
    try:
        if axis == "loss":
            from sandbox.learning.heads import RECIPES, is_recipe, loss_name
            recipes = f" or, in a learning sweep only, a head recipe ({', '.join(RECIPES)})"
            if not isinstance(value, str):
                raise ValueError(f"must be a loss such as 'giou', 'alpha_ciou:alpha=3', 'package.module:function' "
                                 f"or '5*l1+2*giou'{recipes}; got {value!r}")
            if experiment == "learning":
                return loss_name(value)
            if is_recipe(value):
                kind = "box" if experiment == "boxes" else experiment
                raise ValueError(f"{value!r} is a head recipe, which only a learning sweep (experiment = "
                                 f"\"learning\") trains; a {kind} sweep takes a loss spec such as 'giou', "
                                 f"'alpha_ciou:alpha=3', 'package.module:function' or '5*l1+2*giou'")
            return loss_spec(value)
        if axis == "method":
            return method_name(value)
        if axis == "param":
            return param_name(value)
        if axis == "lr":
            if value is None or not _number(value):
                raise ValueError(f"must be a positive number; got {value!r}")
            return learning_rate(value, None)
        if axis == "schedule":
            if not isinstance(value, str):
                raise ValueError(f"must be a schedule name; got {value!r}")
            return schedule_name(value)
        if axis == "starts":
            if value not in starts:
                raise ValueError(f"no start set {value!r}; defined: {', '.join(starts)}")
            return value
        return whole(value, axis, 1 if axis == "maxiter" else 0)
    except ValueError as error:
        raise SweepError(f"{place}: {error}") from None


def axis_value(axis: str, text: str, place: str = "value", experiment: str = "boxes") -> object:
    """An axis value written as text (a command line, a results.csv field) in the form a cell holds it.

    The sweep file's own rules (`_check_value`) for a sweep of kind `experiment`: names
    match in any case and come back in their own spelling (``loss=GIoU`` is ``giou``),
    numbers are numbers; SweepError naming `place` for a bad one.
    """
    if axis in ("lr", "maxiter", "seed"):
        try:
            number = float(text)
        except ValueError:
            raise SweepError(f"{place}: {axis} must be a number; got {text!r}") from None
        return _check_value(axis, int(number) if axis != "lr" and number.is_integer() else number, {}, place,
                            experiment)
    if axis == "starts":
        return text
    return _check_value(axis, text, {}, place, experiment)


def _ties(raw: object, axes: Mapping[str, list[Any]], where: str, names: Sequence[str] = AXES) -> list[list[str]]:
    if not isinstance(raw, list) or not all(isinstance(group, list) for group in raw):
        raise SweepError(f"{where}: tie must be a list of lists of axis names, as [[\"method\", \"lr\"]]")
    seen: set[str] = set()
    for i, group in enumerate(raw):
        place = f"{where}: tie, group {i + 1}"
        if len(group) < 2:
            raise SweepError(f"{place}: tie at least two axes together; got {group!r}")
        for name in group:
            if name not in names:
                raise SweepError(f"{place}: no axis {name!r}; valid axes: {', '.join(names)}")
            if name in seen:
                raise SweepError(f"{place}: axis {name!r} is tied more than once")
            seen.add(name)
        lengths = {name: len(axes[name]) for name in group}
        if len(set(lengths.values())) > 1:
            raise SweepError(f"{place}: tied axes need as many values each; got "
                             + ", ".join(f"{n} {k}" for n, k in lengths.items()))
    return raw


def _excludes(raw: object, axes: Mapping[str, list[Any]], where: str, names: Sequence[str] = AXES,
              experiment: str = "boxes") -> list[dict[str, list[object]]]:
    if not isinstance(raw, list):
        raise SweepError(f"{where}: exclude must be a list of tables, as [[exclude]]")
    rules: list[dict[str, list[object]]] = []
    for i, rule in enumerate(raw):
        place = f"exclude, rule {i + 1}"
        _keys(rule, names, where, place)
        if not rule:
            raise SweepError(f"{where}: {place} is empty: it would exclude every cell")
        resolved: dict[str, list[object]] = {}
        for name, values in rule.items():
            values = values if isinstance(values, list) else [values]
            canonical = [_check_value(name, v, {s: None for s in axes.get("starts", [])}, f"{where}: {place}, {name}",
                                      experiment) for v in values]
            for value in canonical:
                if value not in axes[name]:
                    raise SweepError(f"{where}: {place}, {name}: {value!r} is not a value of the axis "
                                     f"(its values: {', '.join(map(str, axes[name]))})")
            resolved[name] = canonical
        rules.append(resolved)
    return rules


def cells(sweep: Sweep, rows: Sequence[Mapping[str, Any]] | None = None) -> list[Cell]:
    """Every cell of the grid, in a fixed order: dicts axis -> value, ties zipped, exclusions dropped.

    Axes a method has no use for (a learning rate for BFGS) hold None, and the
    cells that become alike are kept once; a first-order cell without a learning
    rate gets its method's default (`sandbox.optim.rules.DEFAULT_LEARNING_RATES`).

    A learning sweep's cells depend on its results (`sandbox.learning.training.protocol_cells`:
    the rate grid grows where a loss's best rate is at its end, and the seeds beyond the
    tuning seeds train at the chosen rate only): `rows` are the finished cells' rows of
    results.csv, and the cells returned are those that the rows show to be needed.
    """
    tied = {name for group in sweep["tie"] for name in group}
    groups = [[dict(zip(group, values)) for values in zip(*(sweep["axes"][n] for n in group))]
              for group in sweep["tie"]]
    names = axis_names(sweep)
    groups += [[{name: value} for value in sweep["axes"][name]] for name in names if name not in tied]
    result: list[Cell] = []
    seen: set[str] = set()
    for parts in product(*groups):
        cell: Cell = {name: None for name in names}
        for part in parts:
            cell.update(part)
        if "method" in cell and cell["method"] not in RULES:  # (a learning cell has no method)
            cell.update({name: None for name in FIRST_ORDER_AXES})
        elif "method" in cell:  # each method's own rate where none is given, recorded as the value used
            cell["lr"] = learning_rate(cell["lr"], cell["method"])
        key = json.dumps(cell, sort_keys=True)
        if key in seen or any(all(cell[n] in values for n, values in rule.items()) for rule in sweep["exclude"]):
            continue
        seen.add(key)
        result.append(cell)
    if sweep.get("experiment") == "learning":
        from sandbox.learning.training import protocol_cells
        return [cell for cell in protocol_cells(sweep, result, rows or [])
                if not any(all(cell[n] in values for n, values in rule.items()) for rule in sweep["exclude"])]
    return result


def unused_settings(sweep: Sweep) -> str | None:
    """A note on the settings some cells have no use for (a learning rate for BFGS), or None."""
    if "experiment" in sweep:
        return None
    given = [name for name in FIRST_ORDER_AXES if sweep["axes"][name] != DEFAULTS[name]]
    return not_applicable(given + ["iou_weighting"] * sweep["iou_weighting"], sweep["axes"]["method"])


def cell_id(cell: Cell) -> str:
    """A short name for a cell that depends on its coordinates only."""
    return hashlib.sha256(json.dumps(cell, sort_keys=True).encode()).hexdigest()[:16]


def cell_seed(cell: Cell) -> int:
    """The seed of a cell's random starts: from its coordinates, so any order gives the same boxes."""
    return int(cell_id(dict(cell, purpose="starts")), 16) % 2 ** 32


def start_seed(cell: Cell, spec: Mapping[str, Any]) -> int:
    """The seed of the random starts of `cell`'s start set `spec`: `cell_seed` of the whole cell, or of its
    start set and seed alone for a ``shared`` set."""
    return cell_seed({"starts": cell["starts"], "seed": cell["seed"]} if spec.get("shared") else cell)


def make_starts(spec: Mapping[str, Any], target: ArrayLike, seed: int) -> tuple[FloatArray, list[str]]:
    """The start boxes of a start set, shape (n, 4), and their labels."""
    kind = spec["kind"]
    if kind == "non_overlapping":
        directions = spec["directions"]
        angles = np.arange(directions) * 360.0 / directions if np.ndim(directions) == 0 else directions
        boxes = non_overlapping_starts(target, spec["gap"], angles, spec["size"])
        return boxes, [direction_name(a) for a in np.atleast_1d(angles)]
    if kind == "boxes":
        if spec["boxes"] is None:
            raise ValueError("a start set of kind 'boxes' needs boxes = [[x1, y1, x2, y2], ...]")
        oriented = np.shape(target)[-1:] == (5,)
        boxes = (check_oriented_boxes if oriented else check_boxes)(spec["boxes"], "start")
        layout = "[cx, cy, w, h, theta]" if oriented else "[x1, y1, x2, y2]"
        if boxes.ndim != 2 or len(boxes) == 0:
            raise ValueError(f"boxes must be a non-empty list of {layout}; got {spec['boxes']!r}")
        labels = spec["labels"] if spec["labels"] is not None else [f"box{i}" for i in range(len(boxes))]
        if not (isinstance(labels, list) and len(labels) == len(boxes) and all(isinstance(s, str) for s in labels)):
            raise ValueError(f"labels must be a list of {len(boxes)} strings, one per box; got {labels!r}")
        return boxes, labels
    if kind == "random":
        boxes = random_non_overlapping_starts(target, spec["count"], seed, spec["radius"], spec["scale"],
                                              spec["min_gap"])
    else:
        boxes = overlapping_starts(target, spec["count"], seed, spec["iou_range"], spec["scale"])
    return boxes, [f"{kind}{i}" for i in range(len(boxes))]


BATCH_BOXES = 8192
"""At most this many boxes in one batched call of cells run together (unless one cell has more)."""


def batches(pending: Sequence[Cell], sweep: Sweep, batched: bool = True) -> list[list[Cell]]:
    """The pending cells in groups that run as one call of `run_cells`, in their order.

    First-order cells that agree on the loss, the method, the parameterisation, the
    schedule and the iteration limit are grouped, up to `BATCH_BOXES` starts, since
    one `fit_many` call fits them all: the learning rate, the start set and the seed
    may differ from box to box. Any other cell, and every cell when not `batched`,
    is a group of its own.
    """
    groups: list[list[Cell]] = []
    open_groups: dict[tuple[Any, ...], list[Any]] = {}  # key -> [its open group's cells, their starts]
    for cell in pending:
        if not (batched and cell.get("method") in RULES):
            groups.append([cell])
            continue
        key = tuple(cell[name] for name in ("loss", "method", "param", "schedule", "maxiter"))
        size = _start_count(sweep["starts"][cell["starts"]])
        group = open_groups.get(key)
        if group is None or group[1] + size > BATCH_BOXES:
            group = open_groups[key] = [[], 0]
            groups.append(group[0])
        group[0].append(cell)
        group[1] += size
    return groups


def _start_count(spec: Mapping[str, Any]) -> int:
    """How many starts a start set makes (`make_starts`), without making them."""
    if spec["kind"] == "boxes":
        return len(spec["boxes"])
    if spec["kind"] == "non_overlapping":  # a count of directions, or the list of their angles
        return spec["directions"] if np.ndim(spec["directions"]) == 0 else len(spec["directions"])
    return spec["count"]


def run_cells(group: Sequence[Cell], sweep: Sweep, batched: bool = True,
              registered: dict[str, str] | None = None) -> list[CellResults]:
    """Fit every start of each cell of `group`; return (rows, IoU histories, boxes) per cell.

    The histories have shape (runs, steps); the boxes, each run's box at every step,
    shape (runs, steps, 4), if the sweep has ``record_boxes`` (None otherwise); both
    NaN after a run's last step. `registered`: the losses a worker registers first
    (`sandbox.losses.travelling`).

    The cells of a first-order group (see `batches`) run as one `fit_many` call over
    all their starts, each box exactly as `fit` runs it alone, with its own cell's
    learning rate; the rows share the call's time. A scipy method, or any method with
    ``batched=False`` (as sandbox 0.3 ran every cell, for benchmarks), fits one start
    at a time.
    """
    adopt(registered or {})
    if "experiment" in sweep:
        results_of = _learning_results if sweep["experiment"] == "learning" else _simulation_results
        return [results_of(cell, sweep) for cell in group]
    specs = [sweep["starts"][cell["starts"]] for cell in group]
    starts = [make_starts(spec, sweep["target"], start_seed(cell, spec)) for cell, spec in zip(group, specs)]
    first = group[0]
    if batched and first["method"] in RULES:
        boxes = np.concatenate([boxes for boxes, _ in starts])
        rates = np.concatenate([np.full(len(boxes), cell["lr"]) for cell, (boxes, _) in zip(group, starts)])
        began = time.perf_counter()
        batch = run_first_order(boxes, np.array(sweep["target"]), dataclasses.replace(cell_settings(first, sweep),
                                                                                      lr=rates))
        seconds = (time.perf_counter() - began) / len(boxes)
        runs = iter([(OptimizeResult({key: batch[key][i, :batch.nit[i] + 1] for key in ("ious", "gious", "boxes")},
                                     nit=batch.nit[i], stalled=batch.stalled[i], outcome=batch.outcome[i]),
                      seconds) for i in range(len(boxes))])
        return [_cell_results(cell, boxes, labels, [next(runs) for _ in boxes], sweep)
                for cell, (boxes, labels) in zip(group, starts)]
    results: list[CellResults] = []
    for cell, (boxes, labels) in zip(group, starts):
        settings = cell_settings(cell, sweep)
        cell_runs: list[tuple[OptimizeResult, float]] = []
        for start in boxes:
            began = time.perf_counter()
            result = fit_resolved(start, np.array(sweep["target"]), settings)
            cell_runs.append((result, time.perf_counter() - began))
        results.append(_cell_results(cell, boxes, labels, cell_runs, sweep))
    return results


def cell_settings(cell: Cell, sweep: Sweep) -> Settings:
    """The `Settings` of a box sweep's cell, from values the sweep file's check resolved (`load`)."""
    if cell["method"] not in RULES:
        return Settings(loss=cell["loss"], method=cell["method"], param=cell["param"], maxiter=cell["maxiter"],
                        gtol=None, home_iou=sweep["threshold"])
    return Settings(loss=cell["loss"], method=cell["method"], param=cell["param"], maxiter=cell["maxiter"],
                    lr=cell["lr"], schedule=cell["schedule"], iou_weighting=sweep["iou_weighting"],
                    home_iou=sweep["threshold"], gradient=sweep.get("gradient", "autograd"))


def _cell_results(cell: Cell, boxes: FloatArray, labels: Sequence[str], runs: Sequence[tuple[OptimizeResult, float]],
                  sweep: Sweep) -> CellResults:
    """A cell's rows, IoU histories and (with ``record_boxes``) boxes, NaN-padded to its longest run,
    from (result, seconds) per start."""
    rows: list[dict[str, Any]] = []
    for label, start, (result, seconds) in zip(labels, boxes, runs):
        ious = result.ious
        rows.append(dict(cell, cell=cell_id(cell), runs=len(boxes), start=label,
                         start_box=" ".join(f"{v:.6g}" for v in start),
                         final_iou=f"{ious[-1]:.6f}", final_giou=f"{result.gious[-1]:.6f}",
                         iterations=result.nit, stalled=result.stalled,
                         converged=bool(ious[-1] >= sweep["threshold"]), outcome=result.outcome,
                         **{f"iterations_to_iou_{level}": _first(ious >= float(level)) for level in ("0.5", "0.9")},
                         seconds=f"{seconds:.4f}"))
    results = [result for result, _ in runs]
    kept_boxes = _padded([r.boxes for r in results], np.float64) if sweep["record_boxes"] else None
    return rows, _padded([r.ious for r in results], np.float32), kept_boxes, None


def _learning_results(cell: Cell, sweep: Sweep) -> CellResults:
    """A learning cell's row, its validation accuracy over 0.50:0.95 after each epoch (1, epochs),
    and its whole record (`sandbox.learning.training.run`)."""
    from sandbox.learning.training import run
    began = time.perf_counter()
    record = run((sweep["learning"], cell["loss"], cell["seed"], cell["lr"]))
    row = dict(cell, diverged=record["diverged"], converged=record["converged"], **{f"{split}_{m}": record[split][m] for split in ("val", "test")
                                                     for m in METRIC_COLUMNS},
               seconds=f"{time.perf_counter() - began:.1f}", cell=cell_id(cell), runs=1)
    return [row], np.array([record["history"]["accuracy_mean"]], dtype=np.float32), None, record


def _simulation_results(cell: Cell, sweep: Sweep) -> CellResults:
    """A simulation cell's row (`SIMULATION_COLUMNS`), its mean IoU at every iteration, and its
    record: E(t) and the mean IoU, t = 0 the start."""
    settings = sweep["simulation"]
    protocol = (oriented_protocol if settings.get("oriented") else diou_protocol)(settings["points"], seed=cell["seed"])
    result = regress(protocol.anchors, protocol.targets, loss=cell["loss"], iterations=settings["iterations"],
                     gradient=settings["gradient"])
    errors = result.errors
    below = np.flatnonzero(errors < errors[0] / 10)
    apart = (KINDS["oriented"].iou if settings.get("oriented") else iou)(protocol.anchors, protocol.targets) == 0
    # moved beyond the rounding of the round trip through (x, y, w, h)
    moved = ~np.all(np.isclose(result.final_boxes[apart], protocol.anchors[apart], rtol=1e-9, atol=0), axis=-1)
    row = dict(cell, cases=result.cases, error_initial=f"{errors[0]:.6g}", error_final=f"{errors[-1]:.6g}",
               mean_final_iou=f"{result.mean_iou[-1]:.6f}",
               **{f"share_final_iou_above_{level}": f"{np.mean(result.final_ious > level):.6f}"
                  for level in (0.5, 0.9)},
               iterations_to_tenth_error=int(below[0]) if len(below) else None, cases_apart=int(apart.sum()),
               share_apart_moved=f"{moved.mean() if len(moved) else math.nan:.6f}",
               seconds=f"{result.seconds:.1f}", cell=cell_id(cell), runs=1)
    record = dict(errors=errors.tolist(), mean_iou=result.mean_iou.tolist(), settings=result.settings)
    return [row], np.array([result.mean_iou], dtype=np.float32), None, record


def _padded(histories: Sequence[NDArray[Any]], dtype: DTypeLike) -> NDArray[Any]:
    """Runs of different lengths as one array, (runs, longest, ...), NaN after each run's last step."""
    padded = np.full((len(histories), max(map(len, histories)), *np.shape(histories[0])[1:]), np.nan, dtype=dtype)
    for i, history in enumerate(histories):
        padded[i, :len(history)] = history
    return padded


def _first(flags: ArrayLike) -> int | str:
    hits = np.flatnonzero(flags)
    return int(hits[0]) if hits.size else ""


def run(sweep: Sweep, store: Store, workers: int = 1, scheduler: str | None = None,
        progress: Callable[[int, int], object] | None = None, batch: bool = True) -> int:
    """Run every cell the store has not finished, storing each as it finishes.

    Cells go to `workers` local processes, or to the Dask cluster whose scheduler
    listens at `scheduler` (``dask.distributed`` must be installed). `progress` is
    called as ``progress(done, total)`` after each cell. ``batch=False`` fits one
    start at a time in every cell, as sandbox 0.3 did (`run_cells`), for benchmarks.
    """
    ran = 0
    while True:  # rounds: a learning sweep's later cells depend on its earlier ones (`cells`)
        every = cells(sweep, store.rows())
        pending = [cell for cell in every if cell_id(cell) not in store.finished]
        done = len(every) - len(pending)
        if progress is not None:
            progress(done, len(every))
        if not pending:
            return ran
        for results in _results(batches(pending, sweep, batch), sweep, workers, scheduler, batch):
            for rows, histories, boxes, record in results:
                store.append(rows, histories, boxes, record)
                done += 1
            if progress is not None:
                progress(done, len(every))
        ran += len(pending)


def _results(groups: Sequence[Sequence[Cell]], sweep: Sweep, workers: int, scheduler: str | None, batched: bool
             ) -> Iterator[list[CellResults]]:
    """The results of each group of cells (`run_cells`), in the order the groups finish (`map_tasks`).

    Before any cell runs, every loss is checked to reach the workers (refused with
    the reason otherwise); on a Dask cluster, every worker builds each loss once. A
    learning sweep's head recipes (`sandbox.learning.heads`) are the sandbox's own
    code, which every worker has.
    """
    if not groups:
        return
    losses = list(dict.fromkeys(cell["loss"] for group in groups for cell in group))
    if sweep.get("experiment") == "learning":
        from sandbox.learning.heads import is_recipe
        losses = [loss for loss in losses if not is_recipe(loss)]
    registered: dict[str, str] = {}
    try:
        if scheduler is not None or workers > 1:
            for loss in losses:
                registered.update(travelling(loss, forked=scheduler is None and forks()))
        tasks = [(group, sweep, batched, registered) for group in groups]
        yield from map_tasks(_run_cells_star, tasks, workers, scheduler,
                             functools.partial(prepare_worker, losses, registered), ordered=False)
    except ValueError as error:  # a loss that cannot reach the workers, or no dask.distributed
        raise SweepError(str(error)) from None


def _run_cells_star(arguments: tuple[Sequence[Cell], Sweep, bool, dict[str, str]]) -> list[CellResults]:
    return run_cells(*arguments)
