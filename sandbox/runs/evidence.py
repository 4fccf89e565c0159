"""Honest ranking of losses: ties decided on paired differences (or the rounding), failures said as such.

The evidence table (``evidence.csv``) holds one tidy row per loss x setting x measure,
`EVIDENCE_COLUMNS`; the pairs table (``pairs.csv``) one row per pair of losses x measure,
`PAIR_COLUMNS`; the ranking (``ranking.csv``) one row per loss x setting, `RANKING_COLUMNS`.
This module makes all three and ranks a setting by one headline measure, by three rules:

- two losses are tied when the data do not say which is better. Where both losses were
  measured on the same items (learning: within a seed the same initial weights and
  minibatches, and the same test images; single boxes: within a seed the same start
  boxes), the difference is paired, item by item, and they are tied when its 95 %
  interval contains 0: a two-way bootstrap over the seeds and the test images in
  learning (`paired_difference`), a bootstrap over the starts within each seed for single
  boxes (`stratified_difference`), every pair in `pair_rows`. Where there are no paired
  items, in the simulation (its rows hold each loss's mean over the cases, not the
  cases), two values are tied when they differ by no more than their *tie tolerance*,
  ``max(resolution, spread_a + spread_b)`` (`tie_tolerance`): the spread is the
  standard deviation over seeds, the resolution the rounding a result is known to (a
  number that moves with the last bit of its inputs);
- tied losses share a rank, in competition style ("1, 1, 3"), by the rule of
  `rank_with_ties`: within a shared rank every two losses are tied;
- a loss that fails a setting outright (the IoU loss from non-overlapping starts, whose
  gradient is exactly zero) is reported as failing, with its reason, not ranked low.

Pairing matters: an image hard for every loss makes each loss's accuracy vary from seed to
seed (or from test set to test set), and adding the two spreads counts that twice, though it
cancels in the difference. Three losses, scored on 400 test images in 3 seeds:

    >>> rng = np.random.default_rng(1)
    >>> hardness = rng.uniform(0, 1, 400)                  # the same for every loss and seed
    >>> seed_shift = rng.normal(0, 0.05, (3, 1))          # a seed good or bad for every loss
    >>> scores = {loss: hardness + seed_shift + rng.normal(gain, 0.1, (3, 400))
    ...           for loss, gain in [("iou", 0.03), ("giou", 0.025), ("l2", 0.0)]}
    >>> pairs = pair_rows(scores, "accuracy_mean", "learning")
    >>> [(p["loss_a"], p["loss_b"], p["tied"]) for p in pairs]
    [('iou', 'giou', True), ('iou', 'l2', False), ('giou', 'l2', False)]
    >>> rows = [r for loss, s in scores.items()
    ...         for r in evidence_rows(loss, "learning", {"accuracy_mean": _mean_spread(s.mean(axis=1))})]
    >>> [(r["loss"], r["rank"]) for r in rank_setting(rows, "accuracy_mean", pairs=pairs)]
    [('iou', 1), ('giou', 1), ('l2', 3)]
    >>> [(r["loss"], r["rank"]) for r in rank_setting(rows, "accuracy_mean")]    # the spreads added
    [('iou', 1), ('giou', 1), ('l2', 1)]

`real_differences` says in one line which differences of a setting are real:

    >>> real_differences(rows, "accuracy_mean", pairs=pairs)
    'iou (0.487 ± 0.051) > l2 (0.457 ± 0.050); giou (0.486 ± 0.051) > l2; iou and giou tied'
"""
from __future__ import annotations

import math
from typing import Any, Mapping, NamedTuple, Sequence, Union

import numpy as np
from numpy.typing import ArrayLike, NDArray

from sandbox._types import BoolArray, FloatArray
from sandbox.learning.metrics import ACCURACY_KEYS, SIZE_CLASSES, THRESHOLDS

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

The rounding enters the tie tolerance, which ranks a setting without paired differences: the
simulation, whose mean final IoU is known to 1e-3 at the full protocol, and less well with fewer
cases (`simulation_resolution`, which `simulation_evidence` gives). Single boxes and learning are
ranked by their pairs (`pair_rows`) where they are given, and the rounding is then not used;
without them, the learning numbers are printed to three decimals and the single-box shares are
counts of starts."""

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


# Paired differences: the same test items under both losses, and how well their mean difference is known.
PAIR_COLUMNS = ["loss_a", "loss_b", "setting", "measure", "difference", "low", "high", "half_width", "tied",
                "method", "confidence", "items"]
"""A row of pairs.csv (`pair_rows`): one pair of losses and one measure.

``difference`` is loss_a's mean minus loss_b's over the same test items; ``low`` and ``high`` the
interval around it (`paired_difference`, `stratified_difference`), ``half_width`` half its width;
``tied`` whether it contains 0; ``method`` how it was made (`PAIRED_METHODS`), ``confidence`` its
level; ``items`` how many paired scores the difference is a mean of (seeds x test images in
learning, the starts of all seeds for a single box)."""
PAIRED_METHODS = {
    "two_way_bootstrap": "a two-way bootstrap over the seeds and the test items",
    "stratified_bootstrap": "a bootstrap over the starts within each seed and start set",
    "t_over_seeds": "a t interval over the seeds' mean differences, the test items held fixed",
}
"""The ways an interval of a paired difference is made, as the ``method`` column names them."""
CONFIDENCE = 0.95
REPLICATES = 2000
"""The bootstrap's replicates, the usual number for a 95 % percentile interval (Efron and Tibshirani
1993, section 19.3)."""
BOOTSTRAP_SEED = 0
"""The seed of the bootstrap's generator: the same scores give the same interval, bit for bit, on one machine."""
_GATHERED = 1 << 22  # scores a bootstrap gathers at once (32 MB of floats); replicates go in chunks of that


class PairedDifference(NamedTuple):
    """The mean difference of two losses' scores on the same items, and an interval around it."""

    difference: float
    low: float
    high: float
    method: str
    """A key of `PAIRED_METHODS`."""
    confidence: float
    items: int
    """The number of paired scores the difference is a mean of."""

    @property
    def half_width(self) -> float:
        """Half the interval's width (a percentile interval need not be centred on the difference)."""
        return (self.high - self.low) / 2

    @property
    def tied(self) -> bool:
        """Whether the interval contains 0: the data do not say which loss is better."""
        return self.low <= 0.0 <= self.high


def _check_bootstrap(confidence: float, replicates: int, seed: int) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.95; got {confidence!r}")
    if not (isinstance(replicates, (int, np.integer)) and replicates >= 1):
        raise ValueError(f"replicates must be a whole number >= 1; got {replicates!r}")
    if not (isinstance(seed, (int, np.integer)) and seed >= 0):
        raise ValueError(f"seed must be a whole number >= 0; got {seed!r}")


def _scores(scores: Mapping[str, ArrayLike], ndim: int, layout: str) -> tuple[list[str], FloatArray]:
    """The losses and their scores stacked, shape (losses, *one loss's shape), checked to be finite and alike."""
    losses = list(scores)
    if not losses:
        raise ValueError("no scores given; give one array of scores per loss")
    arrays = [np.asarray(scores[loss], dtype=float) for loss in losses]
    for loss, array in zip(losses, arrays):
        if array.ndim != ndim or array.size == 0:
            raise ValueError(f"the scores of {loss!r} have shape {array.shape}; give a non-empty array of shape "
                             f"{layout}")
        if array.shape != arrays[0].shape:
            raise ValueError(f"the scores of {loss!r} have shape {array.shape}, those of {losses[0]!r} "
                             f"{arrays[0].shape}; paired scores need one shape, {layout}, the same items in the "
                             f"same order")
        if not np.all(np.isfinite(array)):
            raise ValueError(f"the scores of {loss!r} hold NaN or infinite values; give a finite score per item")
    return losses, np.stack(arrays)


def _item_index(chosen: ArrayLike | None, count: int) -> NDArray[np.intp]:
    """The positions `chosen` selects among `count` items (a mask of `count` booleans, or positions); all by default."""
    if chosen is None:
        return np.arange(count)
    chosen = np.asarray(chosen)
    if chosen.dtype == bool:
        if chosen.shape != (count,):
            raise ValueError(f"items is a mask of {chosen.size} values for {count} items; give one per item")
        index = np.flatnonzero(chosen)
    else:
        index = chosen.astype(np.intp).ravel()
        if np.any((index < 0) | (index >= count)):
            raise ValueError(f"items holds positions outside 0..{count - 1}")
    if index.size == 0:
        raise ValueError("items selects no item; give a subset with at least one item")
    return index


def _two_way_replicates(scores: FloatArray, replicates: int, seed: int) -> FloatArray:
    """Each loss's mean over the same resampled grids of seeds x items: shape (losses, replicates).

    `scores` has shape (losses, seeds, items). A replicate draws the seeds with replacement and,
    independently, the items with replacement, and takes the mean over every (seed, item) of the
    two draws: Owen's pigeonhole bootstrap for a crossed design (Owen 2007, Ann. Appl. Stat. 1(2)).
    The draws depend on the shape and `seed` alone, so every loss meets the same replicates.
    """
    losses, seeds, items = scores.shape
    rng = np.random.default_rng(seed)
    means = np.empty((losses, replicates))
    chunk = max(1, _GATHERED // (seeds * items))
    for start in range(0, replicates, chunk):
        count = min(chunk, replicates - start)
        # drawn in the smallest integer type that holds them (faster), then used as native positions
        drawn_items = rng.integers(0, items, size=(count, items), dtype=np.min_scalar_type(items - 1)).astype(np.intp)
        drawn_seeds = rng.integers(0, seeds, size=(count, seeds)).astype(np.intp)
        for loss in range(losses):
            per_seed = np.take(scores[loss], drawn_items, axis=1).mean(axis=2).T  # (count, seeds): drawn items' mean
            means[loss, start:start + count] = np.take_along_axis(per_seed, drawn_seeds, axis=1).mean(axis=1)
    return means


def _stratified_replicates(scores: FloatArray, strata: NDArray[np.intp], replicates: int, seed: int) -> FloatArray:
    """Each loss's mean over the same resamples of the items within each stratum: shape (losses, replicates).

    `scores` has shape (losses, items), `strata` numbers each item's stratum 0, 1, ...; a replicate
    draws, within each stratum, as many of its items as it has, with replacement.
    """
    losses, items = scores.shape
    rng = np.random.default_rng(seed)
    totals = np.zeros((losses, replicates))
    members = [np.flatnonzero(strata == stratum) for stratum in range(int(strata.max()) + 1)]
    chunk = max(1, _GATHERED // items)
    for start in range(0, replicates, chunk):
        count = min(chunk, replicates - start)
        for group in members:
            drawn = group[rng.integers(0, len(group), size=(count, len(group)))]
            for loss in range(losses):
                totals[loss, start:start + count] += scores[loss][drawn].sum(axis=1)
    return totals / items


def _percentile_interval(means_a: FloatArray, means_b: FloatArray, confidence: float) -> tuple[float, float]:
    low, high = np.quantile(means_a - means_b, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def _t_over_seeds(scores_a: FloatArray, scores_b: FloatArray, confidence: float) -> tuple[float, float]:
    from scipy import stats
    per_seed = scores_a.mean(axis=1) - scores_b.mean(axis=1)
    seeds = len(per_seed)
    if seeds < 2:
        raise ValueError(f"method='t' needs at least 2 seeds; got {seeds}. With one seed only the test "
                         "items vary: use method='bootstrap'")
    centre = float(np.mean(per_seed))
    half = float(stats.t.ppf((1 + confidence) / 2, seeds - 1) * np.std(per_seed, ddof=1) / math.sqrt(seeds))
    return centre - half, centre + half


def _pairs(scores: Mapping[str, ArrayLike], strata: Sequence[Any] | None, items: ArrayLike | None, method: str,
           confidence: float, replicates: int, seed: int) -> list[tuple[str, str, PairedDifference]]:
    """(loss_a, loss_b, their PairedDifference) for every unordered pair of `scores`, in its order."""
    _check_bootstrap(confidence, replicates, seed)
    if strata is None:
        name = {"bootstrap": "two_way_bootstrap", "t": "t_over_seeds"}.get(method, "")
        if not name:
            raise ValueError(f"method must be 'bootstrap' or 't'; got {method!r}")
        losses, stacked = _scores(scores, 2, "(seeds, items)")
    else:
        if method != "bootstrap":
            raise ValueError(f"with strata the interval is the stratified bootstrap's: method must be 'bootstrap'; "
                             f"got {method!r}")
        name = "stratified_bootstrap"
        losses, stacked = _scores(scores, 1, "(items,)")
        if len(strata) != stacked.shape[1]:
            raise ValueError(f"strata has {len(strata)} labels for {stacked.shape[1]} items; give one stratum per item")
    index = _item_index(items, stacked.shape[-1])
    stacked = stacked[..., index]
    means: FloatArray | None = None
    if name == "two_way_bootstrap":
        means = _two_way_replicates(stacked, replicates, seed)
    elif strata is not None:
        numbers: dict[Any, int] = {}  # each stratum as 0, 1, ... in the order it first appears
        chosen = [strata[i] for i in index]
        numbered = np.array([numbers.setdefault(label, len(numbers)) for label in chosen], dtype=np.intp)
        means = _stratified_replicates(stacked, numbered, replicates, seed)
    found = []
    for a in range(len(losses)):
        for b in range(a + 1, len(losses)):
            if means is None:
                low, high = _t_over_seeds(stacked[a], stacked[b], confidence)
            else:
                low, high = _percentile_interval(means[a], means[b], confidence)
            difference = float(np.mean(stacked[a]) - np.mean(stacked[b]))
            found.append((losses[a], losses[b],
                          PairedDifference(difference, low, high, name, confidence, stacked[a].size)))
    return found


def paired_difference(scores_a: ArrayLike, scores_b: ArrayLike, method: str = "bootstrap",
                      confidence: float = CONFIDENCE, replicates: int = REPLICATES,
                      seed: int = BOOTSTRAP_SEED) -> PairedDifference:
    """Loss a's mean score minus loss b's over the same seeds and test items, with an interval.

    The design is crossed: every seed meets every item. In learning, within a seed every
    loss starts from the same weights and sees the same minibatches, and every network is
    tested on the same images. The difference is the mean over the grid of
    ``D[s, i] = scores_a[s, i] - scores_b[s, i]``: pairing takes away what the two losses
    share, an image hard for both, a seed whose weights start well for both.

    Parameters
    ----------
    scores_a, scores_b : array_like, shape (seeds, items)
        Each loss's score per seed and item, the items in the same order (e.g. each test
        image's accuracy over IoU 0.50:0.95, `image_scores`).
    method : {'bootstrap', 't'}
        ``'bootstrap'``, the default: the percentile interval of a two-way bootstrap (Owen's
        "pigeonhole" bootstrap, Owen 2007, Ann. Appl. Stat. 1(2)). Each replicate draws the
        seeds with replacement and, independently, the items with replacement, and takes the
        mean of D over the grid the two draws make. It reaches over new seeds *and* new test
        images, which is what "a is better than b" claims; with one seed, over the test
        images only.
        ``'t'``: the t interval over the seeds' mean differences (``seeds - 1`` degrees of
        freedom, at least 2 seeds). It holds the test images fixed: an image effect that every
        seed shares is not in its width. For that reason it is not chosen automatically when
        the seeds are many: on simulated data of 10 seeds x 300 images whose D has such an
        image effect, its interval held the true difference in 0.50 of the experiments, the
        two-way bootstrap's in 0.97 (`tests/test_evidence.py` holds the simulations quoted
        here).
    confidence : float
        The interval's level, 0.95 by default.
    replicates, seed : int
        The bootstrap's replicates and the seed of its generator (`numpy.random.default_rng`):
        the same scores give the same interval, bit for bit, on one machine.

    Returns
    -------
    PairedDifference
        ``difference``, ``low``, ``high``, ``method`` (``'two_way_bootstrap'`` or
        ``'t_over_seeds'``), ``confidence``, ``items`` (seeds x items), and ``half_width``
        and ``tied`` (the interval contains 0).

    Notes
    -----
    The two-way bootstrap errs on the side of a tie: each cell's own noise enters the seeds'
    means and the images' means as well as the cell, so where D varies from cell to cell
    alone, with no image or seed effect, its interval is too wide (it held the true
    difference in 0.99 of simulated experiments of 3 seeds x 100 images), and where D has
    an image effect it is about right (0.97 at 3 seeds x 100 images and at 10 x 300, with an
    image effect of standard deviation 0.3, cell noise of 0.3 and a seed effect of 0.01).
    With three seeds it knows the seeds' spread only roughly: where the seeds make much of
    the variance of D, it is too narrow (0.885 with a seed effect of 0.05 at 3 seeds x 300
    images). More seeds are the remedy. 3 seeds x 5,000 items take about 0.15 s at 2,000
    replicates.

    Examples
    --------
    How hard an image is moves both losses alike; each loss's accuracy varies with it, the
    difference does not:

    >>> rng = np.random.default_rng(1)
    >>> hardness = rng.uniform(0, 1, 300)                 # shared by both losses, in every seed
    >>> a = hardness + rng.normal(0.02, 0.01, (3, 300))
    >>> b = hardness + rng.normal(0.00, 0.01, (3, 300))
    >>> found = paired_difference(a, b)
    >>> found.method, round(found.difference, 2), found.tied
    ('two_way_bootstrap', 0.02, False)
    >>> paired_difference(a, a).tied, paired_difference(a, a).half_width
    (True, 0.0)
    """
    return _pairs({"scores_a": scores_a, "scores_b": scores_b}, None, None, method, confidence, replicates,
                  seed)[0][2]


def stratified_difference(scores_a: ArrayLike, scores_b: ArrayLike, strata: Sequence[Any],
                          confidence: float = CONFIDENCE, replicates: int = REPLICATES,
                          seed: int = BOOTSTRAP_SEED) -> PairedDifference:
    """Loss a's mean score minus loss b's over the same items drawn in strata, with a bootstrap interval.

    For items that each seed draws anew, so that a seed decides nothing but its items: the
    single-box starts, where within a seed every loss meets the same start boxes but each seed
    draws its own. The items are independent draws within each stratum (a seed and start set),
    and each bootstrap replicate draws as many again, with replacement, within each stratum.
    The seeds are not resampled: a seed's share varies only through the starts it drew, and
    resampling the seeds as well would count that variation twice (Davison and Hinkley 1997,
    section 3.8, on the two-stage bootstrap).

    Parameters
    ----------
    scores_a, scores_b : array_like, shape (items,)
        Each loss's score per item, the items in the same order.
    strata : sequence, length items
        Each item's stratum: any hashable labels, such as ``(seed, start set)``.
    confidence, replicates, seed
        As for `paired_difference`.

    Returns
    -------
    PairedDifference
        With ``method`` ``'stratified_bootstrap'`` and ``items`` the number of items.

    >>> found = stratified_difference([1, 1, 1, 0, 1, 1], [1, 0, 1, 0, 0, 1], strata=[0, 0, 0, 1, 1, 1])
    >>> round(found.difference, 3), found.low <= found.difference <= found.high
    (0.333, True)
    """
    return _pairs({"scores_a": scores_a, "scores_b": scores_b}, strata, None, "bootstrap", confidence, replicates,
                  seed)[0][2]


def pair_rows(scores: Mapping[str, ArrayLike], measure: str, setting: str | None = None, *,
              strata: Sequence[Any] | None = None, items: ArrayLike | None = None, method: str = "bootstrap",
              confidence: float = CONFIDENCE, replicates: int = REPLICATES,
              seed: int = BOOTSTRAP_SEED) -> list[Row]:
    """Every pair's paired difference of one measure, with its interval, half-width and tie: `PAIR_COLUMNS` rows.

    Parameters
    ----------
    scores : dict
        Loss -> its scores on the same items in the same order: shape (seeds, items), a
        crossed design (`paired_difference`); or shape (items,) with `strata`
        (`stratified_difference`).
    measure : str
        The measure's name, for the rows.
    setting : str, optional
        The setting's name, for the rows (None: left empty).
    strata : sequence, optional
        Each item's stratum, for items each seed draws anew (`stratified_difference`).
    items : array_like, optional
        The items to compare on, one boolean per item or their positions (e.g. the test
        images whose true box is small); all by default.
    method, confidence, replicates, seed
        As for `paired_difference` (with `strata`, only ``'bootstrap'``).

    Returns
    -------
    list of dict
        One row per unordered pair, ``loss_a`` before ``loss_b`` in the order of `scores`,
        ``difference`` a's mean minus b's. The bootstrap's draws depend on the items' shape and
        `seed` alone, so each row is exactly what `paired_difference` (or
        `stratified_difference`) gives for its two losses.

    >>> rows = pair_rows({"iou": [[1, 1, 0, 1]], "giou": [[1, 1, 0, 1]], "l2": [[0, 0, 0, 0]]}, "accuracy_50")
    >>> [(r["loss_a"], r["loss_b"], r["difference"], r["tied"]) for r in rows]
    [('iou', 'giou', 0.0, True), ('iou', 'l2', 0.75, False), ('giou', 'l2', 0.75, False)]
    """
    return [dict(loss_a=a, loss_b=b, setting=setting, measure=measure, difference=found.difference, low=found.low,
                 high=found.high, half_width=found.half_width, tied=found.tied, method=found.method,
                 confidence=found.confidence, items=found.items)
            for a, b, found in _pairs(scores, strata, items, method, confidence, replicates, seed)]


LEARNING_PAIR_MEASURES = ["mean_iou", *ACCURACY_KEYS, "accuracy_mean"]
"""The learning measures that are a mean over test images of a per-image score (`image_scores`)."""


def image_scores(ious: ArrayLike, measure: str) -> FloatArray:
    """Each test image's score for a learning measure, from its IoU: what `sandbox.learning.metrics.evaluate` averages.

    ``mean_iou``: the IoU; ``accuracy_50``, ..., ``accuracy_95``: 1 where the IoU reaches that
    threshold of `sandbox.learning.metrics.THRESHOLDS`, else 0; ``accuracy_mean``: the mean of those
    ten, the image's accuracy over IoU 0.50:0.95. Any shape; the same shape back.

    >>> image_scores([0.5, 0.72, 0.96], "accuracy_mean").tolist()
    [0.1, 0.5, 1.0]
    """
    ious = np.asarray(ious, dtype=float)
    if measure == "mean_iou":
        return ious
    hits = ious[..., None] >= THRESHOLDS
    if measure == "accuracy_mean":
        return np.mean(hits, axis=-1)
    if measure in ACCURACY_KEYS:
        return hits[..., ACCURACY_KEYS.index(measure)].astype(float)
    raise ValueError(f"no per-image score for {measure!r}; the learning measures are "
                     f"{', '.join(LEARNING_PAIR_MEASURES)}")


def learning_pair_rows(ious: Mapping[str, ArrayLike], classes: ArrayLike | None = None,
                       measures: Sequence[str] = LEARNING_PAIR_MEASURES, *, method: str = "bootstrap",
                       confidence: float = CONFIDENCE, replicates: int = REPLICATES,
                       seed: int = BOOTSTRAP_SEED) -> list[Row]:
    """Every pair's paired difference in learning, for each measure over all test images and by size class.

    Parameters
    ----------
    ious : dict
        Loss -> the IoU of its network's box on each test image, shape (seeds, images): a
        learning run's ``test_ious`` (`sandbox.learning.training.run`), one row per seed, the
        seeds and the images in the same order for every loss.
    classes : array_like, shape (images,), optional
        Each test image's size class (`sandbox.learning.metrics.size_class` of the test
        split's true boxes, e.g. ``splits_for(config)["test"].boxes``): then each measure
        again on the images of each class of `sandbox.learning.metrics.SIZE_CLASSES` that
        has any, named as `evaluate` names it (``small_accuracy_mean``, ...).
    measures : sequence of str
        Of `LEARNING_PAIR_MEASURES`; all by default.
    method, confidence, replicates, seed
        As for `paired_difference`.

    Returns
    -------
    list of dict
        `PAIR_COLUMNS` rows of setting ``learning``: for each measure every pair (`pair_rows`),
        then the same per size class.

    >>> ious = {"iou": [[0.9, 0.8, 0.3, 0.6]], "l2": [[0.5, 0.4, 0.2, 0.55]]}
    >>> rows = learning_pair_rows(ious, classes=["small", "small", "large", "large"], measures=["accuracy_50"])
    >>> [(r["measure"], r["difference"]) for r in rows]
    [('accuracy_50', 0.25), ('small_accuracy_50', 0.5), ('large_accuracy_50', 0.0)]
    """
    losses, stacked = _scores(ious, 2, "(seeds, images)")
    subsets: list[tuple[str, ArrayLike | None]] = [("", None)]
    if classes is not None:
        classes = np.asarray(classes).ravel()
        if classes.shape != (stacked.shape[-1],):
            raise ValueError(f"classes has {classes.size} entries for {stacked.shape[-1]} test images; "
                             f"give each image's size class")
        unknown = sorted(set(classes.tolist()) - set(SIZE_CLASSES))
        if unknown:
            raise ValueError(f"classes holds {', '.join(map(repr, unknown))}; size classes are "
                             f"{', '.join(SIZE_CLASSES)}")
        subsets += [(f"{size}_", classes == size) for size in SIZE_CLASSES if np.any(classes == size)]
    scores = {measure: {loss: image_scores(stacked[n], measure) for n, loss in enumerate(losses)}
              for measure in measures}
    return [row for prefix, chosen in subsets for measure in measures
            for row in pair_rows(scores[measure], prefix + measure, "learning", items=chosen, method=method,
                                 confidence=confidence, replicates=replicates, seed=seed)]


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
                   higher_is_better: bool = True, ties: ArrayLike | None = None) -> FloatArray:
    """Competition ranks ("1, 2, 2, 4") in which tied values share a rank.

    Two entries are tied by `ties` where it is given (the paired intervals of `pair_rows`:
    tied when the interval of their difference contains 0), and otherwise when their values
    are within their tie tolerance (`tied`: the spreads added, or the resolution). Being tied
    is not transitive: a ~ b and b ~ c can hold while a and c differ, and letting such chains
    merge would tie the best and the worst of a long list. The rule here: sort the finite
    values best first (stable, so equal values keep their input order) and walk down; an
    entry joins the current tie group if it is tied with *every* member of the group, and
    otherwise opens a new group. A group's rank is 1 + the number of entries ranked before
    it. So a shared rank never hides a real difference (every two losses of a group are
    tied), which a group anchored on its best entry alone would not promise: with a wide
    spread, the best entry can be tied with two entries that differ from each other (1.0 ±
    0.3 against 0.9 and 0.75). The converse does not hold: two losses of different ranks may
    still be tied (in a ~ b ~ c with a and c apart, a and b rank 1, c rank 3, though b ~ c);
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
    ties : array_like of bool, shape (n, n), optional
        Whether each two entries are tied, symmetric; in place of `spreads` and `resolution`.

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
    >>> rank_with_ties([0.5, 0.4, 0.3], ties=[[1, 1, 0], [1, 1, 1], [0, 1, 1]])   # a ~ b ~ c, a and c apart
    array([1., 1., 3.])
    """
    values = np.array([_value(v) for v in np.ravel(np.asarray(values, dtype=object))], dtype=float)
    spreads = (np.zeros(len(values)) if spreads is None
               else np.array([_spread(s) for s in np.ravel(np.asarray(spreads, dtype=object))]))
    if spreads.shape != values.shape:
        raise ValueError(f"spreads has {spreads.size} entries, values {values.size}; give one spread per value")
    if ties is not None:
        if spreads.any() or resolution:
            raise ValueError("give ties, or spreads and resolution, not both: ties decide alone")
        relation = np.asarray(ties, dtype=bool)
        if relation.shape != (len(values), len(values)):
            raise ValueError(f"ties has shape {relation.shape} for {len(values)} values; give ({len(values)}, "
                             f"{len(values)}), whether each two are tied")
        if not np.array_equal(relation, relation.T):
            raise ValueError("ties is not symmetric: a tied with b means b tied with a")

        def together(i: int, j: int) -> bool:
            return bool(relation[i, j])
    else:
        def together(i: int, j: int) -> bool:
            return tied(values[i], values[j], spreads[i], spreads[j], resolution)
    ranks = np.full(len(values), np.nan)
    finite = [i for i in range(len(values)) if np.isfinite(values[i])]
    order = sorted(finite, key=lambda i: -values[i] if higher_is_better else values[i])
    group: list[int] = []
    group_rank = 1
    for position, i in enumerate(order, start=1):
        if not all(together(i, j) for j in group):
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


def paired_ties(pairs: Rows, losses: Sequence[str], measure: str, setting: str | None = None) -> BoolArray:
    """Whether each two of `losses` are tied in `pairs` for `measure`: shape (n, n), symmetric, True on the diagonal.

    `pairs` are `PAIR_COLUMNS` rows (`pair_rows`, or pairs.csv read back, ``tied`` as text);
    those of another measure, or of another setting where both name one, are left aside.
    ValueError naming a pair of `losses` that has no row.

    >>> pairs = pair_rows({"a": [[1, 1, 1]], "b": [[1, 1, 1]], "c": [[0, 0, 0]]}, "accuracy_50")
    >>> paired_ties(pairs, ["a", "b", "c"], "accuracy_50").astype(int).tolist()
    [[1, 1, 0], [1, 1, 0], [0, 0, 1]]
    """
    position = {loss: n for n, loss in enumerate(losses)}
    relation = np.eye(len(losses), dtype=bool)
    given = np.eye(len(losses), dtype=bool)
    for row in pairs:
        if row["measure"] != measure or (setting is not None and row.get("setting") not in (None, "", setting)):
            continue
        if row["loss_a"] in position and row["loss_b"] in position:
            a, b = position[row["loss_a"]], position[row["loss_b"]]
            relation[a, b] = relation[b, a] = _true(row["tied"])
            given[a, b] = given[b, a] = True
    missing = [(losses[a], losses[b]) for a, b in zip(*np.nonzero(~given)) if a < b]
    if missing:
        more = f" and {len(missing) - 1} more pairs" if len(missing) > 1 else ""
        raise ValueError(f"pairs has no {measure!r} row for {missing[0][0]} and {missing[0][1]}{more}; "
                         f"give every pair of the losses ranked (pair_rows)")
    return relation


def _ties(ranked: Sequence[Mapping[str, Any]], pairs: Rows | None, measure: str, setting: str | None
          ) -> BoolArray | None:
    """The tie relation of the `ranked` rows from `pairs` (None without pairs); losses without a finite
    value, which are not ranked, need no pair."""
    if pairs is None:
        return None
    finite = [n for n, r in enumerate(ranked) if np.isfinite(_value(r["value"]))]
    relation = np.eye(len(ranked), dtype=bool)
    relation[np.ix_(finite, finite)] = paired_ties(pairs, [ranked[n]["loss"] for n in finite], measure, setting)
    return relation


def rank_setting(rows: Rows, measure: str, higher_is_better: bool | None = None, resolution: float = 0.0,
                 failed: Mapping[str, str] | None = None, setting: str | None = None,
                 pairs: Rows | None = None) -> list[Row]:
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
        The rounding the values are known to (see `rank_with_ties`); not used with `pairs`.
    failed : dict, optional
        Loss -> reason, for losses that fail the setting outright, e.g.
        ``{"iou": "IoU from non-overlapping starts: gradient exactly zero"}``. They get
        no rank, ``failed`` True and their reason, whatever their value.
    setting : str, optional
        Which setting's rows to use, when `rows` holds several.
    pairs : list of dict, optional
        `PAIR_COLUMNS` rows (`pair_rows`) holding every pair of the ranked losses for
        `measure`: then two losses are tied when the interval of their paired difference
        contains 0, and the spreads and the resolution are not used.

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
    ties = _ties(ranked, pairs, measure, setting)
    if ties is None:
        ranks = rank_with_ties([r["value"] for r in ranked], [r["spread"] for r in ranked], resolution, higher)
    else:
        ranks = rank_with_ties([r["value"] for r in ranked], higher_is_better=higher, ties=ties)
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
                          failed: Mapping[str, str] | None = None, setting: str | None = None,
                          pairs: Rows | None = None) -> list[tuple[str, str]]:
    """The pairs (better, worse) of non-failing losses that are not tied: by `pairs` where given (the
    interval of their paired difference excludes 0), else beyond their tie tolerance.

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
    ties = _ties(chosen, pairs, measure, setting)
    return [(a["loss"], b["loss"]) for n, a in enumerate(chosen) for m, b in enumerate(chosen[n + 1:], start=n + 1)
            if not (tied(a["value"], b["value"], a["spread"], b["spread"], resolution) if ties is None
                    else ties[n, m])]


def real_differences(rows: Rows, measure: str, higher_is_better: bool | None = None, resolution: float = 0.0,
                     failed: Mapping[str, str] | None = None, setting: str | None = None,
                     pairs: Rows | None = None) -> str:
    """One line saying which differences of a setting are real, which losses are tied, which fail.

    Each loss that is really better than others is named with its value, then the losses
    it beats ("giou (0.215 ± 0.025) > smooth_l1, l2"); then the tie groups of
    `rank_with_ties` with more than one member ("iou and giou tied"); then the failures.
    Arguments as for `rank_setting`.

    Returns
    -------
    str
        The line; "no real difference" when every two losses are tied.
    """
    failed = failed or {}
    chosen, _ = _measure_rows(rows, measure, setting)
    by_loss = {r["loss"]: r for r in chosen}
    real = real_difference_pairs(rows, measure, higher_is_better, resolution, failed, setting, pairs)
    parts, named = [], set()

    def named_with_value(loss: str) -> str:  # a loss's value is given where it is first named
        return loss if loss in named else f"{loss} ({format_value(by_loss[loss]['value'], by_loss[loss]['spread'])})"

    for better in dict.fromkeys(a for a, _ in real):
        worse = []
        for a, b in real:
            if a == better:
                worse.append(named_with_value(b))
                named.add(b)
        head = named_with_value(better)
        named.add(better)
        parts.append(f"{head} > {', '.join(worse)}")
    ranking = rank_setting(rows, measure, higher_is_better, resolution, failed, setting, pairs)
    groups: dict[int, list[str]] = {}
    for r in ranking:
        if r["rank"] is not None:
            groups.setdefault(r["rank"], []).append(r["loss"])
    for members in groups.values():
        if len(members) > 1:
            parts.append(f"{', '.join(members[:-1])} and {members[-1]} tied")
    parts += [f"{r['loss']} fails ({r['reason']})" for r in ranking if r["failed"]]
    if not real:
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


def single_box_evidence(rows: Rows) -> tuple[list[Row], dict[tuple[str, str], float], dict[str, str], list[Row]]:
    """Evidence rows, chosen rates, failures and paired differences of the single-box setting, from its sweep's rows.

    Parameters
    ----------
    rows : list of dict
        The rows of a boxes sweep (`sandbox.runs.sweep.RESULT_COLUMNS`) whose methods are
        `METHODS`, whose start sets are named `APART` and `OVERLAPPING`, with one or more
        seeds and learning rates. The start sets are shared (``shared = true``): within a
        seed, every loss, optimiser and rate meets the same start boxes, which the losses
        are paired on.

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
    pairs : list of dict
        `PAIR_COLUMNS` rows of every pair of losses for the shares of starts brought home
        (``share_home`` and each optimiser's ``share_home_apart_*`` and
        ``share_home_overlapping_*``), start by start at the rates chosen
        (`single_box_pairs`).
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
    return evidence, rates, failed, single_box_pairs(rows, rates)


def single_box_pairs(rows: Rows, rates: Mapping[tuple[str, str], float]) -> list[Row]:
    """Every pair's paired difference in the single-box shares of starts brought home, start by start.

    A start is an item: its seed, start set and label (``seed``, ``starts``, ``start``),
    the same box for every loss (checked on ``start_box`` where the rows have it). Each
    loss's score on a start is whether it brought it home under each optimiser at that
    optimiser's rate of `rates`; for ``share_home`` the mean over `METHODS`. Each seed draws
    its own starts and decides nothing else, so the interval is `stratified_difference`'s,
    each seed's start set a stratum.

    Returns
    -------
    list of dict
        `PAIR_COLUMNS` rows: ``share_home``, then ``share_home_apart_<method>`` and
        ``share_home_overlapping_<method>`` for each method.
    """
    home: dict[tuple[str, str], dict[tuple[int, str, str], float]] = {}  # (loss, method) -> start -> 1 or 0
    boxes: dict[tuple[int, str, str], str] = {}
    for row in rows:
        key = (row["loss"], row["method"])
        if key not in rates or float(row["lr"]) != rates[key]:
            continue
        start = (int(row["seed"]), row["starts"], row["start"])
        if start in home.setdefault(key, {}):
            raise ValueError(f"{row['loss']} under {row['method']} has two runs from start {start[2]} of "
                             f"{start[1]}, seed {start[0]}; give each start of a set its own label")
        home[key][start] = float(_true(row["converged"]))
        box = row.get("start_box")
        if box not in (None, "") and boxes.setdefault(start, box) != box:
            raise ValueError(f"start {start[2]} of {start[1]}, seed {start[0]}, is {boxes[start]} in one run "
                             f"and {box} in another ({row['loss']}, {row['method']}): the losses are not paired; "
                             f"the single-box start sets must be shared (shared = true)")
    losses = list(dict.fromkeys(loss for loss, _ in home))
    starts = sorted(home[next(iter(home))])  # in one order, however the rows came: the bootstrap draws by position
    for (loss, method), found in home.items():
        if set(found) != set(starts):
            raise ValueError(f"the single-box runs of {loss} under {method} start from other starts than those "
                             f"of {next(iter(home))[0]} under {next(iter(home))[1]}; pairing needs the same seeds "
                             f"and starts for every loss and optimiser")
    strata = [(seed, kind) for seed, kind, _ in starts]
    scores = {(loss, method): np.array([home[loss, method][start] for start in starts])
              for loss in losses for method in METHODS}
    pairs = pair_rows({loss: np.mean([scores[loss, method] for method in METHODS], axis=0) for loss in losses},
                      "share_home", "single_box", strata=strata)
    for method in METHODS:
        for kind, name in ((APART, "share_home_apart"), (OVERLAPPING, "share_home_overlapping")):
            pairs += pair_rows({loss: scores[loss, method] for loss in losses}, f"{name}_{method}", "single_box",
                               strata=strata, items=[k == kind for _, k, _ in starts])
    return pairs


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


def learning_evidence(runs: Sequence[Mapping[str, Any]]
                      ) -> tuple[list[Row], dict[str, float], dict[str, str], list[Row]]:
    """Evidence rows, chosen rates, failures and paired differences of the learning setting, from its runs.

    Each loss is reported at the rate its sweep chose on the validation split, the same rule for
    every loss (`sandbox.learning.training.chosen_rates`), on the test split, mean ± std over
    seeds. That rate is found from the runs alone: among the rates at which the loss ran on every
    one of its seeds, the best on validation, averaged over seeds
    (`sandbox.learning.training.choose_rates`). Where every seed trains at every rate, that is
    the best of the grid; where the rates are tuned on the first seeds, the one rate the other
    seeds trained at. A loss fails when every one of its runs diverged.

    Parameters
    ----------
    runs : list of dict
        One per trained network, as `sandbox.learning.training.run` returns it and a learning
        sweep's ``records/<cell>.json`` holds it: ``loss``, ``seed``, ``lr``, ``diverged``,
        ``val`` and ``test`` (`sandbox.learning.metrics.evaluate`), and ``test_ious``, the IoU
        of its box on each test image, in the test split's order.

    Returns
    -------
    evidence, rates, failed
        `EVIDENCE_COLUMNS` rows; loss -> its rate; loss -> why it fails.
    pairs : list of dict
        `PAIR_COLUMNS` rows of every pair of losses for each measure of
        ``SETTING_MEASURES["learning"]``, at the rates chosen, the losses paired seed by seed
        on the same test images (`learning_pair_rows`). ValueError if a run has no
        ``test_ious`` (a record made before they were kept), or if the losses' seeds differ.
    """
    from sandbox.learning.training import SELECTION_METRIC, choose_rates
    seeds_at: dict[tuple[str, float], set[int]] = {}  # (loss, rate) -> the seeds that trained there
    for r in runs:
        seeds_at.setdefault((r["loss"], float(r["lr"])), set()).add(int(r["seed"]))
    every_seed = {loss: set().union(*(s for (other, _), s in seeds_at.items() if other == loss))
                  for loss, _ in seeds_at}
    rates = choose_rates([dict(loss=r["loss"], seed=r["seed"], lr=float(r["lr"]),
                               **{f"val_{SELECTION_METRIC}": r["val"][SELECTION_METRIC]}) for r in runs
                          if seeds_at[r["loss"], float(r["lr"])] == every_seed[r["loss"]]])
    evidence, failed, ious, seeds = [], {}, {}, {}
    for loss, rate in rates.items():
        mine = [r for r in runs if r["loss"] == loss]
        if all(_true(r["diverged"]) for r in mine):
            failed[loss] = "diverges at every learning rate of the grid"
        at_rate = sorted((r for r in mine if float(r["lr"]) == rate), key=lambda r: int(r["seed"]))
        evidence += evidence_rows(loss, "learning", {name: _mean_spread([float(r["test"][name]) for r in at_rate])
                                                     for name in SETTING_MEASURES["learning"]})
        seeds[loss] = [int(r["seed"]) for r in at_rate]
        ious[loss] = [_test_ious(r) for r in at_rate]
    first = next(iter(seeds))
    for loss, own in seeds.items():
        if own != seeds[first]:
            raise ValueError(f"the learning runs of {loss} have seeds {own}, those of {first} {seeds[first]}; "
                             f"pairing the losses needs the same seeds for every loss")
        images = {len(found) for found in ious[loss]} | {len(ious[first][0])}
        if len(images) > 1:
            raise ValueError(f"the learning runs of {loss} and {first} have test_ious of {sorted(images)} images; "
                             f"pairing the losses needs the same test images for every run")
    return evidence, rates, failed, learning_pair_rows(ious, measures=SETTING_MEASURES["learning"])


def _test_ious(run: Mapping[str, Any]) -> FloatArray:
    """A learning run's per-image test IoUs, checked against its test mean IoU; ValueError if it has none."""
    named = f"the run of {run['loss']} (seed {run['seed']}, lr {float(run['lr']):g})"
    if "test_ious" not in run:
        raise ValueError(f"{named} has no test_ious, the IoU on each test image that pairing the losses "
                         f"needs: its record was made before runs kept them; run the learning sweep again "
                         f"into a new folder")
    ious = np.asarray(run["test_ious"], dtype=float)
    if ious.ndim != 1 or ious.size == 0:
        raise ValueError(f"{named} has test_ious of shape {ious.shape}; they must be one IoU per test image")
    # evaluate's mean IoU is the mean of these: a record whose two disagree is not one run's
    if not abs(float(np.mean(ious)) - float(run["test"]["mean_iou"])) <= 1e-6:
        raise ValueError(f"{named} has test_ious of mean {np.mean(ious):.6g} but a test mean_iou of "
                         f"{float(run['test']['mean_iou']):.6g}; they must come from the same network and images")
    return ious


def _headline(setting: str, resolutions: Mapping[str, float] | None) -> tuple[str, float]:
    measure, resolution = HEADLINES[setting]
    return measure, (resolutions or {}).get(setting, resolution)


def _setting_pairs(pairs: Rows | None, setting: str, measure: str) -> list[Mapping[str, Any]] | None:
    """The pair rows of one setting's measure, or None if there are none: then it is ranked by the tolerance."""
    chosen = [p for p in pairs or [] if p["setting"] == setting and p["measure"] == measure]
    return chosen or None


def rank_settings(evidence: Rows, failed: Mapping[str, Mapping[str, str]],
                  resolutions: Mapping[str, float] | None = None, pairs: Rows | None = None) -> list[Row]:
    """`RANKING_COLUMNS` rows for every setting with evidence, each ranked by its `HEADLINES` measure.

    `failed`: setting -> {loss: reason}; `resolutions`: setting -> the rounding its measure is
    known to, where it differs from `HEADLINES` (the simulation's, from `simulation_evidence`);
    `pairs`: `PAIR_COLUMNS` rows (pairs.csv). A setting whose headline has pair rows is ranked by
    them (`rank_setting`), one without (the simulation) by the tie tolerance.
    """
    ranking = []
    for setting in SETTINGS:
        if any(r["setting"] == setting for r in evidence):
            measure, resolution = _headline(setting, resolutions)
            ranking += rank_setting(evidence, measure, resolution=resolution, failed=failed.get(setting),
                                    setting=setting, pairs=_setting_pairs(pairs, setting, measure))
    return ranking


def tie_rule(pairs: Rows | None = None, resolution: float = 0.0) -> str:
    """How the ties of a setting were decided, in words, for `summary`: from its pair rows, or the tolerance.

    >>> tie_rule(resolution=0.001)
    "tied within the seeds' spreads added, or 0.001"
    >>> tie_rule([dict(method="two_way_bootstrap", confidence=0.95)])
    'tied when the 95 % interval of the paired difference contains 0 (a two-way bootstrap over the seeds and the test items)'
    """
    if not pairs:
        return "tied within the seeds' spreads added" + (f", or {resolution:g}" if resolution else "")
    methods = " and ".join(PAIRED_METHODS.get(m, m) for m in dict.fromkeys(p["method"] for p in pairs))
    levels = " or ".join(f"{float(c) * 100:g} %" for c in dict.fromkeys(p["confidence"] for p in pairs))
    return f"tied when the {levels} interval of the paired difference contains 0 ({methods})"


def summary(evidence: Rows, failed: Mapping[str, Mapping[str, str]],
            resolutions: Mapping[str, float] | None = None, pairs: Rows | None = None) -> str:
    """Which differences are real, per setting: a table of the losses by rank, each with its headline
    value and the losses it is really better than (not tied), then the failures.

    `failed`, `resolutions` and `pairs` as for `rank_settings`. Read a line as "this loss is really
    better than these"; a loss below it that is not named is tied with it (`tie_rule` says how, in
    each setting's first line).

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
        paired = _setting_pairs(pairs, setting, measure)
        ranking = rank_setting(chosen, measure, resolution=resolution, failed=fails, setting=setting, pairs=paired)
        real = real_difference_pairs(chosen, measure, resolution=resolution, failed=fails, setting=setting,
                                     pairs=paired)
        by_loss = {r["loss"]: r for r in chosen if r["measure"] == measure}
        higher = MEASURES[measure]
        width = max(len("loss"), *(len(r["loss"]) for r in ranking))
        lines = [f"{setting}: ranked by {measure} ({'higher' if higher else 'lower'} is better); "
                 f"{tie_rule(paired, resolution)}",
                 f"  {'rank':>5}  {'loss':<{width}}  {measure:<15}  really better than"]
        ranked = [r for r in ranking if r["rank"] is not None]
        for r in ranked:
            value = _value(by_loss[r["loss"]]["value"])
            below = [o["loss"] for o in ranked if (_value(by_loss[o["loss"]]["value"]) < value if higher
                                                   else _value(by_loss[o["loss"]]["value"]) > value)]
            beaten = [b for a, b in real if a == r["loss"]]
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
