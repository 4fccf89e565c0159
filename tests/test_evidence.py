"""The honest ranking of sandbox.runs.evidence, on constructed inputs and on the README's learning table."""
import math

import numpy as np
import pytest

from sandbox.runs.evidence import (APART, EVIDENCE_COLUMNS, HEADLINES, MEASURES, METHODS, OVERLAPPING, RANKING_COLUMNS,
                              SETTING_MEASURES, evidence_rows, learning_evidence, rank_setting, rank_settings,
                              rank_with_ties, real_difference_pairs, real_differences, simulation_evidence,
                              simulation_resolution, single_box_evidence, summary, tie_tolerance, tied)
from sandbox.runs.sweep import SIMULATION_COLUMNS

# README, "Does the loss matter when a model learns?": accuracy over IoU 0.50:0.95 on the test
# images, mean ± std over 3 seeds, of the default learning experiment.
README_ACCURACY_MEAN = {"l2": (0.128, 0.031), "l1": (0.170, 0.036), "smooth_l1": (0.166, 0.022),
                        "iou": (0.235, 0.002), "giou": (0.215, 0.025), "diou": (0.184, 0.033),
                        "ciou": (0.178, 0.038)}
IOU_APART = "IoU from non-overlapping starts: gradient exactly zero"


def rows_of(values, setting="learning", measure="accuracy_mean"):
    """Evidence rows of one measure from loss -> (value, spread) or loss -> value."""
    return [row for loss, entry in values.items() for row in evidence_rows(loss, setting, {measure: entry})]


def ranks_by_loss(ranking):
    return {row["loss"]: row["rank"] for row in ranking}


def test_competition_ranks_skip_after_a_tie():
    np.testing.assert_array_equal(rank_with_ties([0.9, 0.5, 0.5, 0.1]), [1, 2, 2, 4])
    np.testing.assert_array_equal(rank_with_ties([0.1, 0.5, 0.9, 0.5]), [4, 2, 1, 2])


def test_differences_within_the_spread_are_ties_and_larger_gaps_are_not():
    # 0.60 and 0.55 differ by 0.05 <= 0.03 + 0.03; 0.40 is 0.15 below, beyond any spread here
    ranks = rank_with_ties([0.60, 0.55, 0.40], spreads=[0.03, 0.03, 0.03])
    np.testing.assert_array_equal(ranks, [1, 1, 3])
    # the same values with small spreads are three ranks
    np.testing.assert_array_equal(rank_with_ties([0.60, 0.55, 0.40], spreads=[0.01, 0.01, 0.01]), [1, 2, 3])


def test_missing_spreads_count_as_no_spread():
    np.testing.assert_array_equal(rank_with_ties([0.6, 0.55], spreads=[None, float("nan")]), [1, 2])
    assert tie_tolerance(None, "", resolution=0.0) == 0.0


def test_resolution_ties_values_that_differ_only_by_rounding():
    np.testing.assert_array_equal(rank_with_ties([0.236, 0.235, 0.230], resolution=0.001), [1, 1, 3])
    np.testing.assert_array_equal(rank_with_ties([0.236, 0.235, 0.230]), [1, 2, 3])
    # the resolution is a floor, not added to the spread: spreads 0.02 + 0.02 win over 0.001
    assert tie_tolerance(0.02, 0.02, resolution=0.001) == pytest.approx(0.04)
    assert tie_tolerance(0.0001, 0.0001, resolution=0.001) == 0.001


def test_lower_is_better_ranks_the_smallest_first():
    ranks = rank_with_ties([120.0, 40.0, 45.0, 300.0], spreads=[0, 3, 3, 0], higher_is_better=False)
    np.testing.assert_array_equal(ranks, [3, 1, 1, 4])
    assert MEASURES["median_iterations_to_0.5_gd"] is False and MEASURES["error_final"] is False
    ranking = rank_setting(rows_of({"a": 120.0, "b": 40.0}, "single_box", "median_iterations_to_0.5_gd"),
                           "median_iterations_to_0.5_gd")
    assert ranks_by_loss(ranking) == {"b": 1, "a": 2}


def test_non_finite_values_are_not_ranked():
    ranks = rank_with_ties([0.5, float("nan"), 0.7, float("inf"), None])
    np.testing.assert_array_equal(ranks[[0, 2]], [2, 1])
    assert np.isnan(ranks[[1, 3, 4]]).all()
    ranking = rank_setting(rows_of({"a": 0.5, "b": float("nan")}), "accuracy_mean")
    b = next(row for row in ranking if row["loss"] == "b")
    assert b["rank"] is None and b["failed"] is False and "no finite accuracy_mean" in b["reason"]


def test_a_chain_of_ties_does_not_merge_ends_that_differ():
    # a ~ b (0.1 apart) and b ~ c (0.1 apart), but a and c are 0.2 apart, beyond the 0.1 resolution.
    # The documented rule: a new group opens at the first entry not tied with every member of the
    # current group, so a and b share rank 1 and c opens rank 3, though b ~ c.
    np.testing.assert_array_equal(rank_with_ties([3.0, 2.9, 2.8], resolution=0.1), [1, 1, 3])
    # a long chain, each step within the resolution, spreads into several groups, not one
    ranks = rank_with_ties(np.arange(10) * 0.1, resolution=0.1, higher_is_better=False)
    np.testing.assert_array_equal(ranks, [1, 1, 3, 3, 5, 5, 7, 7, 9, 9])
    assert tied(2.9, 2.8, resolution=0.1) and not tied(3.0, 2.8, resolution=0.1)


def test_a_shared_rank_never_hides_a_real_difference():
    # c is within a's wide spread, but b and c (no spread) differ by 0.15: a group anchored on its
    # best entry alone would put all three together
    values, spreads = [1.0, 0.9, 0.75], [0.3, 0.0, 0.0]
    np.testing.assert_array_equal(rank_with_ties(values, spreads), [1, 1, 3])
    rng = np.random.default_rng(0)
    for _ in range(200):
        values, spreads = rng.uniform(0, 1, 8), rng.uniform(0, 0.1, 8)
        ranks = rank_with_ties(values, spreads, resolution=0.02)
        for i in range(8):
            for j in range(8):
                if ranks[i] == ranks[j]:
                    assert tied(values[i], values[j], spreads[i], spreads[j], resolution=0.02)
                elif values[i] > values[j]:
                    assert ranks[i] < ranks[j]


def test_a_failing_loss_is_reported_with_its_reason_not_ranked():
    # IoU's share of non-overlapping starts brought home is 0, the worst value; it is shown as failing
    values = {"iou": 0.0, "giou": 1.0, "diou": 1.0, "l1": 0.97}
    ranking = rank_setting(rows_of(values, "single_box", "share_home_apart_gd"), "share_home_apart_gd",
                           failed={"iou": IOU_APART})
    assert [row["loss"] for row in ranking] == ["giou", "diou", "l1", "iou"]
    iou = ranking[-1]
    assert iou == dict(loss="iou", setting="single_box", rank=None, failed=True, reason=IOU_APART)
    assert ranks_by_loss(ranking) == {"giou": 1, "diou": 1, "l1": 3, "iou": None}
    assert all(set(row) == set(RANKING_COLUMNS) for row in ranking)
    sentence = real_differences(rows_of(values, "single_box", "share_home_apart_gd"), "share_home_apart_gd",
                                failed={"iou": IOU_APART})
    assert f"iou fails ({IOU_APART})" in sentence
    assert sentence == f"giou (1.000) > l1 (0.970); diou (1.000) > l1; giou and diou tied; iou fails ({IOU_APART})"


def test_a_failing_loss_without_rows_still_appears():
    ranking = rank_setting(rows_of({"giou": 0.9}, "single_box", "share_home_apart_gd"), "share_home_apart_gd",
                           failed={"focal_eiou": "Focal-EIoU: zero weight apart"})
    assert ranking[-1] == dict(loss="focal_eiou", setting="single_box", rank=None, failed=True,
                               reason="Focal-EIoU: zero weight apart")


def test_readme_learning_table_agrees_with_the_readmes_wording():
    rows = rows_of(README_ACCURACY_MEAN)
    ranks = ranks_by_loss(rank_setting(rows, "accuracy_mean", resolution=0.001))
    pairs = real_difference_pairs(rows, "accuracy_mean", resolution=0.001)
    # "IoU and GIoU beat L2 ... beyond the spread, and IoU beats L1 and smooth L1 too"
    assert ("iou", "l2") in pairs and ("giou", "l2") in pairs
    assert ("iou", "l1") in pairs and ("iou", "smooth_l1") in pairs
    assert ranks["iou"] == 1 and ranks["l2"] > ranks["iou"] and ranks["l2"] > ranks["giou"]
    # "The other gaps (GIoU against L1; DIoU and CIoU against the coordinate losses) lie within the spread"
    (giou, giou_spread), (l1, l1_spread) = README_ACCURACY_MEAN["giou"], README_ACCURACY_MEAN["l1"]
    assert tied(giou, l1, giou_spread, l1_spread, resolution=0.001)
    assert ("giou", "l1") not in pairs
    for loss in ["diou", "ciou"]:
        for coordinate in ["l1", "smooth_l1", "l2"]:
            assert (loss, coordinate) not in pairs
    # the plain IoU loss at least as good as GIoU: tied, rank 1 both
    assert ranks["giou"] == 1 and ("iou", "giou") not in pairs
    # by the rule, GIoU shares rank 1 with IoU, so L1, which IoU beats, ranks below it though tied with it
    assert ranks == {"iou": 1, "giou": 1, "diou": 3, "ciou": 3, "l1": 3, "smooth_l1": 3, "l2": 3}


def test_real_differences_says_what_is_real_and_what_is_tied():
    rows = rows_of({"iou": (0.235, 0.002), "giou": (0.215, 0.025), "l1": (0.170, 0.036),
                    "l2": (0.128, 0.031)})
    assert real_differences(rows, "accuracy_mean") == (
        "iou (0.235 ± 0.002) > l1 (0.170 ± 0.036), l2 (0.128 ± 0.031); giou (0.215 ± 0.025) > l2; "
        "iou and giou tied; l1 and l2 tied")
    assert real_differences(rows_of({"a": (0.5, 0.1), "b": (0.45, 0.1)}), "accuracy_mean") == (
        "no real difference; a and b tied")


def test_evidence_rows_are_tidy():
    rows = evidence_rows("giou", "learning", {"mean_iou": (0.366, 0.030), "accuracy_50": 0.416})
    assert [list(row) for row in rows] == [EVIDENCE_COLUMNS] * 2
    assert rows[0] == dict(loss="giou", setting="learning", measure="mean_iou", value=0.366, spread=0.030)
    assert rows[1]["spread"] is None
    assert evidence_rows("giou", "simulation", {"error_final": (10.0, float("nan"))})[0]["spread"] is None


def test_rows_read_back_from_csv_rank_the_same():
    # evidence.csv read back gives strings, with '' for no spread
    rows = [{key: str(value) if value is not None else "" for key, value in row.items()}
            for row in rows_of(README_ACCURACY_MEAN)]
    assert ranks_by_loss(rank_setting(rows, "accuracy_mean")) == ranks_by_loss(
        rank_setting(rows_of(README_ACCURACY_MEAN), "accuracy_mean"))


def test_mistakes_are_named():
    with pytest.raises(ValueError, match="unknown setting 'learnig'; settings are single_box"):
        evidence_rows("giou", "learnig", {"mean_iou": 0.3})
    with pytest.raises(ValueError, match="unknown measure 'map'"):
        rank_setting(rows_of({"a": 0.5}, measure="map"), "map")
    both = rows_of({"a": 0.5}, "learning", "mean_iou") + rows_of({"a": 0.6}, "simulation", "mean_iou")
    with pytest.raises(ValueError, match="settings learning, simulation; pass setting="):
        rank_setting(both, "mean_iou")
    assert ranks_by_loss(rank_setting(both, "mean_iou", setting="simulation")) == {"a": 1}
    with pytest.raises(ValueError, match="losses a have more than one"):
        rank_setting(rows_of({"a": 0.5}) * 2, "accuracy_mean")
    with pytest.raises(ValueError, match="spreads has 1 entries, values 2"):
        rank_with_ties([1, 2], spreads=[0.1])
    assert math.isnan(rank_with_ties([float("nan")])[0])


def single_box_rows(loss, method, lr, seed, apart, overlapping, stalled=False, reach=(10, 20)):
    """Rows of a single-box cell: `apart` and `overlapping` lists of converged flags, one per start."""
    rows = []
    for kind, flags in ((APART, apart), (OVERLAPPING, overlapping)):
        for home in flags:
            rows.append(dict(loss=loss, method=method, lr=str(lr), seed=str(seed), starts=kind, converged=str(home),
                             stalled=str(stalled and kind == APART), **{
                                 f"iterations_to_iou_{level}": str(n) if home or kind == OVERLAPPING else ""
                                 for level, n in zip(("0.5", "0.9"), reach)}))
    return rows


def test_single_box_takes_each_optimisers_best_rate_by_one_rule_and_says_a_stalled_loss_fails():
    rows = []
    for seed in (0, 1):
        for method in METHODS:
            # giou: rate 0.3 brings every start home, 0.1 only the overlapping ones
            rows += single_box_rows("giou", method, 0.1, seed, [False, False], [True, True])
            rows += single_box_rows("giou", method, 0.3, seed, [True, True], [True, True], reach=(5 + seed, 9))
            # l1: both rates bring all home; 0.1 in fewer iterations to 0.9, so 0.1 wins the tie
            rows += single_box_rows("l1", method, 0.1, seed, [True, True], [True, True], reach=(4, 8))
            rows += single_box_rows("l1", method, 0.3, seed, [True, True], [True, True], reach=(4, 12))
            # iou: no start apart ever moves
            for lr in (0.1, 0.3):
                rows += single_box_rows("iou", method, lr, seed, [False, False], [True, True], stalled=True)
    found, rates, failed = single_box_evidence(rows)
    assert rates == {(loss, m): rate for loss, rate in (("giou", 0.3), ("l1", 0.1), ("iou", 0.1)) for m in METHODS}
    assert list(failed) == ["iou"] and "exactly zero" in failed["iou"]
    values = {(r["loss"], r["measure"]): (r["value"], r["spread"]) for r in found}
    assert sorted(m for loss, m in values if loss == "giou") == sorted(SETTING_MEASURES["single_box"])
    assert values["giou", "share_home"] == (1.0, 0.0) and values["iou", "share_home_apart_adam"] == (0.0, 0.0)
    assert values["giou", "median_iterations_to_0.5_gd"] == (5.5, pytest.approx(math.sqrt(0.5)))
    assert values["iou", "median_iterations_to_0.9_gd"] == (math.inf, None)  # half never reach it
    ranking = rank_settings(found, {"single_box": failed})
    assert ranks_by_loss(ranking) == {"giou": 1, "l1": 1, "iou": None}


def test_simulation_and_learning_evidence_from_their_sweeps_rows():
    simulation = [dict(loss=loss, seed="0", cases="1715000", error_final=e, mean_final_iou=m, **{"share_final_iou_above_0.5": m,
                       "share_final_iou_above_0.9": m}, iterations_to_tenth_error=t, cases_apart="10",
                       share_apart_moved=moved)
                  for loss, e, m, t, moved in [("iou", "900", "0.2", "", "0.000000"), ("giou", "30", "0.989", "96", "1"),
                                               ("ciou", "7", "0.9895", "80", "1")]]
    found, failed, resolution = simulation_evidence(simulation)
    assert list(failed) == ["iou"]
    values = {(r["loss"], r["measure"]): (r["value"], r["spread"]) for r in found}
    assert values["iou", "iterations_to_tenth_error"] == (math.inf, None) and values["giou", "error_final"] == (30, None)
    assert resolution == 1e-3
    assert ranks_by_loss(rank_settings(found, {"simulation": failed})) == {"ciou": 1, "giou": 1, "iou": None}
    # with fewer cases the rounding is coarser: at 686 cases, about 8e-3 of the mean IoU
    assert 0.008 < simulation_resolution(686) < 0.009

    learning = [dict(loss=loss, lr=str(lr), seed=str(seed), diverged=str(diverged), val_accuracy_mean=str(val),
                     **{f"test_{m}": str(test) for m in SETTING_MEASURES["learning"]})
                for loss, lr, seed, val, test, diverged in [
                    ("giou", 1e-3, 0, 0.2, 0.20, False), ("giou", 1e-3, 1, 0.2, 0.22, False),
                    ("giou", 1e-2, 0, 0.1, 0.90, False), ("giou", 1e-2, 1, 0.1, 0.90, False),  # better on test only
                    ("l2", 1e-3, 0, 0.1, 0.10, False), ("l2", 1e-3, 1, 0.1, 0.12, False),
                    ("bad", 1e-3, 0, math.nan, math.nan, True), ("bad", 1e-3, 1, math.nan, math.nan, True)]]
    found, rates, failed = learning_evidence(learning)
    assert rates == {"giou": 1e-3, "l2": 1e-3, "bad": 1e-3} and list(failed) == ["bad"]
    values = {(r["loss"], r["measure"]): (r["value"], r["spread"]) for r in found}
    assert values["giou", "accuracy_mean"] == (pytest.approx(0.21), pytest.approx(math.sqrt(2) * 0.01))
    ranking = rank_settings(found, {"learning": failed})
    assert ranks_by_loss(ranking) == {"giou": 1, "l2": 2, "bad": None}
    text = summary(found, {"learning": failed})
    assert text.splitlines()[2:] == ["      1  giou  0.210 ± 0.014    all 1 below", "      2  l2    0.110 ± 0.014    -",
                                     "  fails  bad   diverges at every learning rate of the grid"]


def simulation_row(loss, seed, share_apart_moved, mean_final_iou="0.500000"):
    """A simulation cell's row as results.csv reads back: every `sandbox.runs.sweep.SIMULATION_COLUMNS`, as text,
    ten of its cases starting apart."""
    return dict(loss=loss, seed=str(seed), cases="1715000", error_initial="1000", error_final="100",
                mean_final_iou=mean_final_iou,
                **{"share_final_iou_above_0.5": "0.5", "share_final_iou_above_0.9": "0.1"},
                iterations_to_tenth_error="50", cases_apart="10", share_apart_moved=share_apart_moved,
                seconds="1.0", cell=f"loss={loss},seed={seed}", runs="1")


def test_a_loss_fails_the_simulation_only_if_its_apart_cases_stay_put_in_every_seed():
    # "no case that starts apart moves" is a claim about the loss, so it must hold in all its seeds:
    # a seed whose apart cases move shows the gradient there is not exactly zero. One loss moves in
    # its second seed only, one in its first only; only iou stays put in both.
    rows = [simulation_row("giou", 0, "0.000000", "0.490000"), simulation_row("giou", 1, "0.250000", "0.510000"),
            simulation_row("diou", 0, "0.250000", "0.510000"), simulation_row("diou", 1, "0.000000", "0.490000"),
            simulation_row("iou", 0, "0.000000", "0.200000"), simulation_row("iou", 1, "0.000000", "0.200000")]
    assert all(list(row) == SIMULATION_COLUMNS for row in rows)
    found, failed, _ = simulation_evidence(rows)
    assert list(failed) == ["iou"] and "exactly zero" in failed["iou"]
    values = {(r["loss"], r["measure"]): (r["value"], r["spread"]) for r in found}
    # mean ± std over the two seeds, as for every measure: 0.49 and 0.51 give 0.5 ± 0.01 sqrt(2)
    assert values["giou", "mean_final_iou"] == (pytest.approx(0.5), pytest.approx(0.01 * math.sqrt(2)))
    assert ranks_by_loss(rank_settings(found, {"simulation": failed})) == {"giou": 1, "diou": 1, "iou": None}


@pytest.mark.slow
def test_the_simulations_rounding_stays_within_the_resolution_it_is_ranked_with():
    # the simulation's mean final IoU is ranked with simulation_resolution(cases), every loss on one
    # gradient backend: which_loss's simulation names the fused kernels. A one-ulp shift of every anchor
    # must move it by less on that backend, for every loss (here on 6,860 cases, where the resolution is
    # 2.6e-3; simulation_rounding.py --points 20 --seed 1 measures 1.8e-3, inner_eiou); and autograd's
    # gradient in place of the fused kernels too, both backends checked against each other (1.5e-3,
    # inner_giou)
    import sandbox
    from sandbox.runs.simulation import diou_protocol, rounding_sensitivity
    assert HEADLINES["simulation"][0] == "mean_final_iou"
    protocol = diou_protocol(20, seed=1)
    resolution = simulation_resolution(len(protocol.anchors))
    for loss in sandbox.LOSSES:
        found = rounding_sensitivity(protocol, loss, gradient="fused")
        assert found["ulp_change"] < resolution and found["backend_difference"] < resolution, (loss, found)
