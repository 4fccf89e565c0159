"""Honest ranking of losses: ties within the spread between seeds or the rounding, failures said as such.

The evidence table (``evidence.csv``) holds one tidy row per loss x setting x measure,
`EVIDENCE_COLUMNS`; the ranking (``ranking.csv``) one row per loss x setting,
`RANKING_COLUMNS`. This module makes both kinds of rows and ranks a setting by one
headline measure, by three rules:

- two losses whose values differ by no more than their *tie tolerance*,
  ``max(resolution, spread_a + spread_b)`` (`tie_tolerance`), are not different: the
  spread is the standard deviation over seeds, the resolution the rounding a result is
  known to (a number that moves in its last digit with BLAS threads, or with the last bit of its
  inputs);
- tied losses share a rank, in competition style ("1, 1, 3"), by the rule of
  `rank_with_ties`;
- a loss that fails a setting outright (the IoU loss from non-overlapping starts, whose
  gradient is exactly zero) is reported as failing, with its reason, not ranked low.

`real_differences` says in one line which differences of a setting are real.

    >>> values = {"iou": (0.235, 0.002), "giou": (0.215, 0.025), "l2": (0.128, 0.031)}
    >>> rows = [r for loss, (v, s) in values.items()
    ...         for r in evidence_rows(loss, "learning", {"accuracy_mean": (v, s)})]
    >>> [(r["loss"], r["rank"]) for r in rank_setting(rows, "accuracy_mean")]
    [('iou', 1), ('giou', 1), ('l2', 3)]
    >>> real_differences(rows, "accuracy_mean")
    'iou (0.235 ± 0.002) > l2 (0.128 ± 0.031); giou (0.215 ± 0.025) > l2; iou and giou tied'
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence, Union

import numpy as np
from numpy.typing import ArrayLike

from sandbox._types import FloatArray

Row = dict[str, Any]
"""A row of evidence.csv, ranking.csv or a sweep's results.csv: values, or the strings read back."""
Rows = Sequence[Mapping[str, Any]]
"""Rows as a function reads them: any sequence of mappings, such as `Row` dicts or csv.DictReader's."""
Number = Union[float, str, None]
"""A value or spread as a row holds it: a number, the text read back from a CSV file, or None (missing)."""

EVIDENCE_COLUMNS = ["loss", "setting", "measure", "value", "spread"]
RANKING_COLUMNS = ["loss", "setting", "rank", "failed", "reason"]
SETTINGS = ["single_box", "simulation", "learning"]

METHODS = ("gd", "adam")
"""The optimisers of the single-box setting: gradient descent with the step schedule, and Adam."""
SINGLE_BOX = ("share_home_apart", "share_home_overlapping", "median_iterations_to_0.5", "median_iterations_to_0.9")
MEASURES = {
    # single_box: one box fitted from each start, under each optimiser at its best rate of a shared grid
    "share_home": True,
    **{f"{name}_{method}": name.startswith("share") for method in METHODS for name in SINGLE_BOX},
    # simulation: the DIoU paper's protocol (1,715,000 cases)
    "error_final": False,
    "mean_final_iou": True,
    "share_final_iou_above_0.5": True,
    "share_final_iou_above_0.9": True,
    "iterations_to_tenth_error": False,
    # learning: the box regressor on held-out images (sandbox.learning.metrics names)
    "mean_iou": True,
    "accuracy_50": True,
    "accuracy_75": True,
    "accuracy_mean": True,
}
"""Measure name -> whether a higher value is better.

single_box (one box fitted from each start under each optimiser of `METHODS`, at that
optimiser's best learning rate of a shared grid; mean over the seeds of the random starts):

- ``share_home``: the headline, the share of all starts brought home (final IoU at the
  sweep's threshold), averaged over the optimisers;
- ``share_home_apart_gd``, ``share_home_overlapping_gd``: the share of non-overlapping,
  of overlapping starts brought home under gd (and ``_adam`` under Adam);
- ``median_iterations_to_0.5_gd``, ``median_iterations_to_0.9_gd``: median over all starts
  of the iterations until the IoU first reaches 0.5, 0.9, a start that never does counting
  as infinitely many (lower is better); the same with ``_adam``.

simulation (the DIoU paper's protocol):

- ``error_final``: E(200), the sum over cases of the L1 distance in (x, y, w, h) to the
  target after 200 iterations (lower is better);
- ``mean_final_iou``: the headline, mean IoU after the last iteration;
- ``share_final_iou_above_0.5``, ``share_final_iou_above_0.9``: share of cases ending
  above that IoU;
- ``iterations_to_tenth_error``: iterations until E(t) < 0.1 E(0), infinite if never
  (lower is better).

learning (`sandbox.learning.metrics.evaluate` on the test split, at the rate chosen on the
validation split, mean over seeds):

- ``mean_iou``: mean IoU of predicted and true boxes;
- ``accuracy_50``, ``accuracy_75``: share of images whose box reaches IoU 0.5, 0.75;
- ``accuracy_mean``: the headline, the mean of the accuracies at 0.50, 0.55, ..., 0.95.
"""
SETTING_MEASURES = {
    "single_box": ["share_home", *(f"{name}_{method}" for method in METHODS for name in SINGLE_BOX)],
    "simulation": ["error_final", "mean_final_iou", "share_final_iou_above_0.5", "share_final_iou_above_0.9",
                   "iterations_to_tenth_error"],
    "learning": ["mean_iou", "accuracy_50", "accuracy_75", "accuracy_mean"],
}
"""The measures of each setting, in the order evidence.csv gives them."""
HEADLINES = {"single_box": ("share_home", 0.0), "simulation": ("mean_final_iou", 1e-3),
             "learning": ("accuracy_mean", 1e-3)}
"""Setting -> (the measure it is ranked by, the rounding that measure is known to).

The simulation's mean final IoU is known to 1e-3 at the full protocol, and less well with fewer
cases (`simulation_resolution`, which `simulation_evidence` gives). The learning numbers are
printed to three decimals and their seeds' spread is larger. The single-box shares are counts of
starts, their spread the seeds'."""

ROUNDING_MEASURED = (2.6e-4, 171_500)
"""The largest change of the simulation's mean final IoU over the registry's losses when every
anchor moves by one ulp (``np.nextafter(anchors, inf)``), on the fused kernels, and the number of
cases it was measured on (500 anchor centres): 2.56e-4, for inner_eiou, rounded up. Runs that
oscillate across a kink amplify the last bit; each case that flips moves the mean by its own share,
so the change shrinks as 1 / sqrt(cases). Measured by ``python experiments/simulation_rounding.py
--points 500 --gradient fused`` (`sandbox.runs.simulation.rounding_sensitivity`).

Losses are compared on one gradient backend: which_loss.py's simulation names the fused kernels,
so this is the fused backend's own rounding, and the difference between the backends is not part
of it. The same command prints that difference too, for the record: up to 3.6e-4 on the same
cases (alpha_ciou: 0.090289 fused, 0.089932 with autograd)."""


def simulation_resolution(cases: int) -> float:
    """The rounding the simulation's mean final IoU over `cases` cases, all on one gradient backend,
    is known to: twice `ROUNDING_MEASURED` (a one-ulp shift of the anchors) scaled by 1 / sqrt(cases),
    and never below 1e-3.

    >>> simulation_resolution(1_715_000), round(simulation_resolution(6860), 4)
    (0.001, 0.0026)
    """
    change, measured_on = ROUNDING_MEASURED
    return max(1e-3, 2 * change * math.sqrt(measured_on / cases))

# Differences at the tolerance itself count as ties; this slack keeps a gap of exactly
# one rounding unit (0.236 - 0.235 = 0.0010000000000000009) a tie, as it reads.
_SLACK = 1e-9


def _direction(measure: str, higher_is_better: bool | None = None) -> bool:
    """`higher_is_better` if given, else whether a higher `measure` is better, from `MEASURES`."""
    if higher_is_better is not None:
        return bool(higher_is_better)
    if measure not in MEASURES:
        raise ValueError(f"unknown measure {measure!r}; known measures are {', '.join(MEASURES)}"
                         "; or pass higher_is_better explicitly")
    return MEASURES[measure]


def _spread(spread: Number) -> float:
    """A spread as a float, no spread (None, '', NaN: no seeds) as 0."""
    if spread is None or spread == "":
        return 0.0
    spread = float(spread)
    return 0.0 if math.isnan(spread) else abs(spread)


def _value(value: Number) -> float:
    """A value as a float, a missing one (None, '') as NaN."""
    return math.nan if value is None or value == "" else float(value)


def tie_tolerance(spread_a: Number = None, spread_b: Number = None, resolution: float = 0.0) -> float:
    """The largest difference between two values that is no difference: ``max(resolution, spread_a + spread_b)``.

    Parameters
    ----------
    spread_a, spread_b : float or None
        Standard deviations over seeds; None, '' or NaN (no seeds) count as 0.
    resolution : float
        The rounding a value is known to.

    >>> tie_tolerance(0.025, 0.036), tie_tolerance(None, float("nan"), resolution=0.001)
    (0.061, 0.001)
    """
    return max(float(resolution), _spread(spread_a) + _spread(spread_b))


def tied(value_a: Number, value_b: Number, spread_a: Number = None, spread_b: Number = None,
         resolution: float = 0.0) -> bool:
    """Whether two values differ by no more than their `tie_tolerance` (pairwise, not transitive).

    >>> tied(0.215, 0.170, 0.025, 0.036), tied(0.235, 0.128, 0.002, 0.031)
    (True, False)
    """
    tolerance = tie_tolerance(spread_a, spread_b, resolution)
    return abs(_value(value_a) - _value(value_b)) <= tolerance + _SLACK * max(tolerance, 1e-3)


def rank_with_ties(values: ArrayLike, spreads: ArrayLike | None = None, resolution: float = 0.0,
                   higher_is_better: bool = True) -> FloatArray:
    """Competition ranks ("1, 2, 2, 4") in which values within their tie tolerance share a rank.

    Being within the tolerance (`tied`) is not transitive: a ~ b and b ~ c can hold while a
    and c differ, and letting such chains merge would tie the best and the worst of a long
    list. The rule here: sort the finite values best first (stable, so equal values keep
    their input order) and walk down; an entry joins the current tie group if it is tied
    with *every* member of the group, and otherwise opens a new group. A group's rank is
    1 + the number of entries ranked before it. So a shared rank never hides a real
    difference (every two losses of a group are tied), which a group anchored on its best
    entry alone would not promise: with a wide spread, the best entry can be tied with two
    entries that differ from each other (1.0 ± 0.3 against 0.9 and 0.75). The converse does not
    hold: two losses of different ranks may still
    be tied (in a ~ b ~ c with a and c apart, a and b rank 1, c rank 3, though b ~ c);
    `real_differences` says which differences are real.

    Parameters
    ----------
    values : array_like, shape (n,)
        One value per entry; NaN or infinite values are not ranked.
    spreads : array_like, shape (n,), optional
        Standard deviation over seeds per entry; None or NaN entries count as 0.
    resolution : float
        The rounding the values are known to: smaller differences are ties.
    higher_is_better : bool
        Whether rank 1 goes to the largest value (True) or the smallest.

    Returns
    -------
    ranks : ndarray, shape (n,)
        Float ranks, 1 for the best group; NaN for non-finite values.

    Examples
    --------
    >>> rank_with_ties([0.9, 0.5, 0.5, 0.1])
    array([1., 2., 2., 4.])
    >>> rank_with_ties([3.0, 2.9, 2.8], resolution=0.1)    # 3.0 ~ 2.9 ~ 2.8, but 3.0 and 2.8 apart
    array([1., 1., 3.])
    >>> rank_with_ties([10, 12, float("nan")], spreads=[1, 1, 0], higher_is_better=False)
    array([ 1.,  1., nan])
    """
    values = np.array([_value(v) for v in np.ravel(np.asarray(values, dtype=object))], dtype=float)
    spreads = (np.zeros(len(values)) if spreads is None
               else np.array([_spread(s) for s in np.ravel(np.asarray(spreads, dtype=object))]))
    if spreads.shape != values.shape:
        raise ValueError(f"spreads has {spreads.size} entries, values {values.size}; give one spread per value")
    ranks = np.full(len(values), np.nan)
    finite = [i for i in range(len(values)) if np.isfinite(values[i])]
    order = sorted(finite, key=lambda i: -values[i] if higher_is_better else values[i])
    group: list[int] = []
    group_rank = 1
    for position, i in enumerate(order, start=1):
        if not all(tied(values[i], values[j], spreads[i], spreads[j], resolution) for j in group):
            group, group_rank = [], position
        group.append(i)
        ranks[i] = group_rank
    return ranks


def evidence_rows(loss: str, setting: str, measures: Mapping[str, Any]) -> list[Row]:
    """Tidy `EVIDENCE_COLUMNS` rows of one loss in one setting.

    Parameters
    ----------
    loss : str
        The loss's name as the registry spells it.
    setting : str
        One of `SETTINGS`.
    measures : dict
        Measure name -> (value, spread), or -> value; the spread is the standard
        deviation over seeds, None where there are no seeds.

    Returns
    -------
    list of dict
        One row per measure, in the order given; ``spread`` is None without seeds.

    >>> evidence_rows("giou", "simulation", {"mean_final_iou": 0.97})
    [{'loss': 'giou', 'setting': 'simulation', 'measure': 'mean_final_iou', 'value': 0.97, 'spread': None}]
    """
    if setting not in SETTINGS:
        raise ValueError(f"unknown setting {setting!r}; settings are {', '.join(SETTINGS)}")
    rows = []
    for measure, entry in measures.items():
        value, spread = entry if isinstance(entry, (tuple, list)) else (entry, None)
        spread = None if spread is None or spread == "" or math.isnan(float(spread)) else float(spread)
        rows.append(dict(loss=loss, setting=setting, measure=measure, value=_value(value), spread=spread))
    return rows


def _measure_rows(rows: Rows, measure: str, setting: str | None) -> tuple[list[Mapping[str, Any]], str | None]:
    """The rows of one measure (and setting), checked to belong to one setting, one per loss."""
    chosen = [r for r in rows if r["measure"] == measure and (setting is None or r["setting"] == setting)]
    settings = sorted({r["setting"] for r in chosen})
    if len(settings) > 1:
        raise ValueError(f"measure {measure!r} has rows in settings {', '.join(settings)}; "
                         "pass setting= to rank one of them")
    losses = [r["loss"] for r in chosen]
    repeated = sorted({loss for loss in losses if losses.count(loss) > 1})
    if repeated:
        raise ValueError(f"losses {', '.join(repeated)} have more than one {measure!r} row; give one per loss")
    return chosen, (settings[0] if settings else setting)


def rank_setting(rows: Rows, measure: str, higher_is_better: bool | None = None, resolution: float = 0.0,
                 failed: Mapping[str, str] | None = None, setting: str | None = None) -> list[Row]:
    """Rank the losses of one setting by one measure: `RANKING_COLUMNS` rows, failures said, not ranked.

    Parameters
    ----------
    rows : list of dict
        Evidence rows (`EVIDENCE_COLUMNS`, e.g. from `evidence_rows` or read back from
        evidence.csv); only those of `measure` (and `setting`, if given) are used.
    measure : str
        The setting's headline measure.
    higher_is_better : bool, optional
        Default: from `MEASURES`.
    resolution : float
        The rounding the values are known to (see `rank_with_ties`).
    failed : dict, optional
        Loss -> reason, for losses that fail the setting outright, e.g.
        ``{"iou": "IoU from non-overlapping starts: gradient exactly zero"}``. They get
        no rank, ``failed`` True and their reason, whatever their value.
    setting : str, optional
        Which setting's rows to use, when `rows` holds several.

    Returns
    -------
    list of dict
        One row per loss: the ranked ones by rank (best value first within a rank), then those
        without a finite value (rank None, reason says so), then the failing ones (rank None).
        Ranks are ints.
    """
    failed = dict(failed or {})
    higher = _direction(measure, higher_is_better)
    chosen, setting = _measure_rows(rows, measure, setting)
    ranked = [r for r in chosen if r["loss"] not in failed]
    ranks = rank_with_ties([r["value"] for r in ranked], [r["spread"] for r in ranked], resolution, higher)
    best_first = sorted(range(len(ranked)), key=lambda i: (ranks[i], -_value(ranked[i]["value"]) if higher
                                                               else _value(ranked[i]["value"])))
    out = [dict(loss=ranked[i]["loss"], setting=setting, rank=int(ranks[i]), failed=False, reason="")
           for i in best_first if np.isfinite(ranks[i])]
    out += [dict(loss=r["loss"], setting=setting, rank=None, failed=False,
                 reason=f"no finite {measure} ({r['value']})")
            for k, r in zip(ranks, ranked) if not np.isfinite(k)]
    out += [dict(loss=loss, setting=setting, rank=None, failed=True, reason=reason)
            for loss, reason in failed.items()]
    return out


def format_value(value: Number, spread: Number = None) -> str:
    """'0.215 ± 0.025' below 10; '57', '12.5' up to 1000; '3457' past it; no '± ...' without seeds
    (a spread of None, '' or NaN), and '± 0.000' where the seeds agree."""
    value = _value(value)
    if abs(value) >= 1000 or (abs(value) >= 10 and value == round(value)):
        digits = 0
    else:
        digits = 1 if abs(value) >= 10 else 3
    text = f"{value:.{digits}f}"
    if spread is None or spread == "" or math.isnan(float(spread)):
        return text
    spread = _spread(spread)
    spread_digits = 3 if spread < 1 else digits   # a spread under 1 on a whole value keeps its digits
    return f"{text} ± {spread:.{spread_digits}f}"


def real_difference_pairs(rows: Rows, measure: str, higher_is_better: bool | None = None, resolution: float = 0.0,
                          failed: Mapping[str, str] | None = None, setting: str | None = None) -> list[tuple[str, str]]:
    """The pairs (better, worse) of non-failing losses whose difference exceeds their tie tolerance.

    Arguments as for `rank_setting`. Pairs come best first, each loss's worse partners
    in order of value.

    >>> rows = [r for loss, v in [("a", 3.0), ("b", 2.9), ("c", 2.8)]
    ...         for r in evidence_rows(loss, "simulation", {"mean_final_iou": v})]
    >>> real_difference_pairs(rows, "mean_final_iou", resolution=0.1)
    [('a', 'c')]
    """
    failed = failed or {}
    higher = _direction(measure, higher_is_better)
    chosen, _ = _measure_rows(rows, measure, setting)
    chosen = [r for r in chosen if r["loss"] not in failed and np.isfinite(_value(r["value"]))]
    chosen = sorted(chosen, key=lambda r: -_value(r["value"]) if higher else _value(r["value"]))
    return [(a["loss"], b["loss"]) for n, a in enumerate(chosen) for b in chosen[n + 1:]
            if not tied(a["value"], b["value"], a["spread"], b["spread"], resolution)]


def real_differences(rows: Rows, measure: str, higher_is_better: bool | None = None, resolution: float = 0.0,
                     failed: Mapping[str, str] | None = None, setting: str | None = None) -> str:
    """One line saying which differences of a setting are real, which losses are tied, which fail.

    Each loss that is really better than others is named with its value, then the losses
    it beats ("giou (0.215 ± 0.025) > smooth_l1, l2"); then the tie groups of
    `rank_with_ties` with more than one member ("iou and giou tied"); then the failures.
    Arguments as for `rank_setting`.

    Returns
    -------
    str
        The line; "no real difference" when every gap is within the tolerance.
    """
    failed = failed or {}
    chosen, _ = _measure_rows(rows, measure, setting)
    by_loss = {r["loss"]: r for r in chosen}
    pairs = real_difference_pairs(rows, measure, higher_is_better, resolution, failed, setting)
    parts, named = [], set()

    def named_with_value(loss: str) -> str:  # a loss's value is given where it is first named
        return loss if loss in named else f"{loss} ({format_value(by_loss[loss]['value'], by_loss[loss]['spread'])})"

    for better in dict.fromkeys(a for a, _ in pairs):
        worse = []
        for a, b in pairs:
            if a == better:
                worse.append(named_with_value(b))
                named.add(b)
        head = named_with_value(better)
        named.add(better)
        parts.append(f"{head} > {', '.join(worse)}")
    ranking = rank_setting(rows, measure, higher_is_better, resolution, failed, setting)
    groups: dict[int, list[str]] = {}
    for r in ranking:
        if r["rank"] is not None:
            groups.setdefault(r["rank"], []).append(r["loss"])
    for members in groups.values():
        if len(members) > 1:
            parts.append(f"{', '.join(members[:-1])} and {members[-1]} tied")
    parts += [f"{r['loss']} fails ({r['reason']})" for r in ranking if r["failed"]]
    if not pairs:
        parts.insert(0, "no real difference")
    return "; ".join(parts)


# The evidence of each setting, from the rows of its sweep's results.csv (values as text or numbers).
APART, OVERLAPPING = "apart", "overlapping"
"""The names of the single-box sweep's two start sets: non-overlapping and overlapping starts."""


def _mean_spread(values: ArrayLike) -> tuple[float, float | None]:
    """(mean, standard deviation over seeds) of per-seed values; the spread None for one seed, an
    infinite mean (a seed whose median never came) with no spread."""
    values = np.asarray(values, dtype=float)
    mean = float(np.mean(values))
    if len(values) < 2 or not math.isfinite(mean):
        return mean, None
    return mean, float(np.std(values, ddof=1))


def _iterations(text: Number) -> float:
    return math.inf if text in (None, "") else float(text)


def _true(text: object) -> bool:
    return text in (True, "True")


def single_box_evidence(rows: Rows) -> tuple[list[Row], dict[tuple[str, str], float], dict[str, str]]:
    """Evidence rows, chosen rates and failures of the single-box setting, from its sweep's rows.

    Parameters
    ----------
    rows : list of dict
        The rows of a boxes sweep (`sandbox.runs.sweep.RESULT_COLUMNS`) whose methods are
        `METHODS`, whose start sets are named `APART` and `OVERLAPPING`, with one or more
        seeds and learning rates.

    Returns
    -------
    evidence : list of dict
        `EVIDENCE_COLUMNS` rows, per loss: ``share_home`` then each method's measures.
    rates : dict
        (loss, method) -> the learning rate chosen: the most starts brought home (mean over
        seeds), then the fewer median iterations to IoU 0.9, then the smaller rate; the same
        rule for every loss.
    failed : dict
        loss -> reason, for a loss under which no run from a non-overlapping start ever
        moved, under any optimiser and rate: its gradient there is exactly zero.
    """
    runs: dict[tuple[str, str, float, int], list[Mapping[str, Any]]] = {}  # (loss, method, lr, seed) -> rows
    for row in rows:
        runs.setdefault((row["loss"], row["method"], float(row["lr"]), int(row["seed"])), []).append(row)

    def per_seed(group: list[Mapping[str, Any]]) -> dict[str, Any]:  # measure -> a NumPy or Python float
        home = {kind: np.mean([_true(r["converged"]) for r in group if r["starts"] == kind]) for kind in
                (APART, OVERLAPPING)}
        medians = {level: float(np.median([_iterations(r[f"iterations_to_iou_{level}"]) for r in group]))
                   for level in ("0.5", "0.9")}
        return dict(share_home=np.mean([_true(r["converged"]) for r in group]),
                    share_home_apart=home[APART], share_home_overlapping=home[OVERLAPPING],
                    **{f"median_iterations_to_{level}": m for level, m in medians.items()})

    measured = {key: per_seed(group) for key, group in runs.items()}
    losses = list(dict.fromkeys(key[0] for key in runs))
    evidence, rates, failed = [], {}, {}
    for loss in losses:
        by_seed: dict[int, list[Any]] = {}
        measures = {}
        for method in METHODS:
            grid = sorted({key[2] for key in runs if key[:2] == (loss, method)})
            if not grid:
                raise ValueError(f"no single-box runs of {loss} under {method}; the setting needs {', '.join(METHODS)}")

            def score(rate: float) -> tuple[Any, Any, float]:
                seeds = [m for key, m in measured.items() if key[:3] == (loss, method, rate)]
                return (np.mean([m["share_home"] for m in seeds]),
                        -np.mean([m["median_iterations_to_0.9"] for m in seeds]), -rate)
            rate = rates[loss, method] = max(grid, key=score)
            seeds = {key[3]: m for key, m in measured.items() if key[:3] == (loss, method, rate)}
            for seed, m in seeds.items():
                by_seed.setdefault(seed, []).append(m["share_home"])
            for name in SINGLE_BOX:
                measures[f"{name}_{method}"] = _mean_spread([m[name] for m in seeds.values()])
        shares = [np.mean(v) for v in by_seed.values() if len(v) == len(METHODS)]
        evidence += evidence_rows(loss, "single_box", {"share_home": _mean_spread(shares), **measures})
        apart = [r for r in rows if r["loss"] == loss and r["starts"] == APART]
        if apart and all(_true(r["stalled"]) for r in apart):
            failed[loss] = ("never moves from a non-overlapping start, under any optimiser or rate: "
                            "its gradient there is exactly zero")
    return evidence, rates, failed


def simulation_evidence(rows: Rows) -> tuple[list[Row], dict[str, str], float]:
    """Evidence rows, failures and resolution of the simulation setting, from a simulation sweep's rows
    (`sandbox.runs.sweep.SIMULATION_COLUMNS`); mean ± std over its seeds if it has several.

    A loss fails when no case that starts apart moves: its gradient there is exactly zero. The
    resolution is `simulation_resolution` of the fewest cases a row has.
    """
    names = {name: _iterations if name == "iterations_to_tenth_error" else float
             for name in SETTING_MEASURES["simulation"]}
    evidence, failed = [], {}
    for loss in dict.fromkeys(r["loss"] for r in rows):
        mine = [r for r in rows if r["loss"] == loss]
        evidence += evidence_rows(loss, "simulation", {name: _mean_spread([read(r[name]) for r in mine])
                                                       for name, read in names.items()})
        if all(float(r["share_apart_moved"]) == 0 and int(r["cases_apart"]) > 0 for r in mine):
            failed[loss] = "no case that starts apart moves: its gradient there is exactly zero"
    return evidence, failed, simulation_resolution(min(int(r["cases"]) for r in rows))


def learning_evidence(rows: Rows) -> tuple[list[Row], dict[str, float], dict[str, str]]:
    """Evidence rows, chosen rates and failures of the learning setting, from a learning sweep's rows
    (`sandbox.runs.sweep.LEARNING_COLUMNS`).

    Each loss is reported at the rate that does best on the validation split, averaged over
    seeds (`sandbox.learning.training.choose_rates`, the same rule for every loss), on the test split,
    mean ± std over seeds. A loss fails when every one of its runs diverged.
    """
    from sandbox.learning.training import choose_rates
    rows = [dict(r, lr=float(r["lr"])) for r in rows]
    rates = choose_rates(rows)
    evidence, failed = [], {}
    for loss, rate in rates.items():
        mine = [r for r in rows if r["loss"] == loss]
        if all(_true(r["diverged"]) for r in mine):
            failed[loss] = "diverges at every learning rate of the grid"
        at_rate = [r for r in mine if r["lr"] == rate]
        evidence += evidence_rows(loss, "learning", {name: _mean_spread([float(r[f"test_{name}"]) for r in at_rate])
                                                     for name in SETTING_MEASURES["learning"]})
    return evidence, rates, failed


def _headline(setting: str, resolutions: Mapping[str, float] | None) -> tuple[str, float]:
    measure, resolution = HEADLINES[setting]
    return measure, (resolutions or {}).get(setting, resolution)


def rank_settings(evidence: Rows, failed: Mapping[str, Mapping[str, str]],
                  resolutions: Mapping[str, float] | None = None) -> list[Row]:
    """`RANKING_COLUMNS` rows for every setting with evidence, each ranked by its `HEADLINES` measure.

    `failed`: setting -> {loss: reason}; `resolutions`: setting -> the rounding its measure is
    known to, where it differs from `HEADLINES` (the simulation's, from `simulation_evidence`).
    """
    ranking = []
    for setting in SETTINGS:
        if any(r["setting"] == setting for r in evidence):
            measure, resolution = _headline(setting, resolutions)
            ranking += rank_setting(evidence, measure, resolution=resolution, failed=failed.get(setting),
                                    setting=setting)
    return ranking


def summary(evidence: Rows, failed: Mapping[str, Mapping[str, str]],
            resolutions: Mapping[str, float] | None = None) -> str:
    """Which differences are real, per setting: a table of the losses by rank, each with its headline
    value and the losses it is really better than (beyond the tie tolerance), then the failures.

    `failed` and `resolutions` as for `rank_settings`. Read a line as "this loss is really better than these";
    a loss below it that is not named is within the tolerance of it.

    >>> rows = [r for loss, v in [("giou", (0.215, 0.025)), ("iou", (0.235, 0.002)), ("l2", (0.128, 0.031))]
    ...         for r in evidence_rows(loss, "learning", {"accuracy_mean": v})]
    >>> print(summary(rows, {"learning": {"focal_eiou": "diverges at every rate"}}))
    learning: ranked by accuracy_mean (higher is better); tied within the seeds' spreads added, or 0.001
       rank  loss        accuracy_mean    really better than
          1  iou         0.235 ± 0.002    l2
          1  giou        0.215 ± 0.025    all 1 below
          3  l2          0.128 ± 0.031    -
      fails  focal_eiou  diverges at every rate
    """
    parts = []
    for setting in SETTINGS:
        chosen = [r for r in evidence if r["setting"] == setting]
        if not chosen:
            continue
        measure, resolution = _headline(setting, resolutions)
        fails = failed.get(setting) or {}
        ranking = rank_setting(chosen, measure, resolution=resolution, failed=fails, setting=setting)
        pairs = real_difference_pairs(chosen, measure, resolution=resolution, failed=fails, setting=setting)
        by_loss = {r["loss"]: r for r in chosen if r["measure"] == measure}
        higher = MEASURES[measure]
        tolerance = "tied within the seeds' spreads added" + (f", or {resolution:g}" if resolution else "")
        width = max(len("loss"), *(len(r["loss"]) for r in ranking))
        lines = [f"{setting}: ranked by {measure} ({'higher' if higher else 'lower'} is better); {tolerance}",
                 f"  {'rank':>5}  {'loss':<{width}}  {measure:<15}  really better than"]
        ranked = [r for r in ranking if r["rank"] is not None]
        for r in ranked:
            value = _value(by_loss[r["loss"]]["value"])
            below = [o["loss"] for o in ranked if (_value(by_loss[o["loss"]]["value"]) < value if higher
                                                   else _value(by_loss[o["loss"]]["value"]) > value)]
            beaten = [b for a, b in pairs if a == r["loss"]]
            if not beaten:
                said = "-"
            elif len(beaten) == len(below):
                said = f"all {len(below)} below"
            elif len(below) - len(beaten) < len(beaten):
                said = f"{len(beaten)} of the {len(below)} below, all but " + ", ".join(
                    b for b in below if b not in beaten)
            else:
                said = ", ".join(beaten)
            shown = format_value(by_loss[r["loss"]]["value"], by_loss[r["loss"]]["spread"])
            lines.append(f"  {r['rank']:>5}  {r['loss']:<{width}}  {shown:<15}  {said}")
        lines += [f"  {'fails' if r['failed'] else '-':>5}  {r['loss']:<{width}}  {r['reason']}"
                  for r in ranking if r["rank"] is None]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def rank_of(row: Mapping[str, Any]) -> float:
    """A ranking row's rank as a float, NaN when it has none (None, '' as read back from ranking.csv)."""
    value = row.get("rank")
    return math.nan if value in (None, "") or (isinstance(value, float) and math.isnan(value)) else float(value)


def is_failed(row: Mapping[str, Any]) -> bool:
    return row.get("failed") in (True, "True")


def order_losses(ranking: Rows, settings: Sequence[str] | None = None) -> list[str]:
    """The losses of `ranking` best first by their mean rank over `settings` (default all present), a
    failure counting as one place below the last ranked loss of its setting; ties keep the input order."""
    settings = [s for s in SETTINGS if any(r["setting"] == s for r in ranking)] if settings is None else settings
    ranked = {s: sum(r["setting"] == s and math.isfinite(rank_of(r)) for r in ranking) for s in settings}
    places: dict[str, list[float]] = {}
    for r in ranking:
        if r["setting"] in settings:
            place = ranked[r["setting"]] + 1 if is_failed(r) else rank_of(r)
            if math.isfinite(place):
                places.setdefault(r["loss"], []).append(place)
    losses = list(dict.fromkeys(r["loss"] for r in ranking))
    return sorted(losses, key=lambda loss: np.mean(places[loss]) if loss in places else math.inf)


def shared(ranking: Rows, row: Mapping[str, Any]) -> bool:
    """Whether `row`'s rank is shared with another loss of its setting."""
    rank = rank_of(row)
    return math.isfinite(rank) and sum(rank_of(r) == rank and r["setting"] == row["setting"] for r in ranking) > 1


def rank_table(evidence: Rows, ranking: Rows) -> str:
    """A Markdown table: a row per loss (`order_losses`), a column per setting, each cell its rank
    ("=3" when shared) and headline value, or "fails"."""
    settings = [s for s in SETTINGS if any(r["setting"] == s for r in ranking)]
    cells = {(r["loss"], r["setting"]): r for r in ranking}
    values = {(r["loss"], r["setting"]): r for r in evidence if r["measure"] == HEADLINES[r["setting"]][0]}
    lines = ["| loss | " + " | ".join(f"{s}: {HEADLINES[s][0]}" for s in settings) + " |",
             "|---|" + "---|" * len(settings)]
    for loss in order_losses(ranking, settings):
        row = []
        for setting in settings:
            r = cells.get((loss, setting))
            if r is None:
                row.append("")
            elif is_failed(r):
                row.append("fails")
            elif not math.isfinite(rank_of(r)):
                row.append("-")
            else:
                value = values[loss, setting]
                row.append(f"{'=' if shared(ranking, r) else ''}{rank_of(r):.0f}: "
                           f"{format_value(value['value'], value['spread'])}")
        lines.append(f"| `{loss}` | " + " | ".join(row) + " |")
    return "\n".join(lines)
