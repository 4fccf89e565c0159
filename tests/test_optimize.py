import numpy as np
import pytest
from autograd import grad

from helpers import ROOT, load_experiment
from sandbox import GRADIENT_METHODS, LOSSES, METHODS, OUTCOMES, PARAMETERISATIONS, fit, iou
from sandbox.optim.rules import cosine_decay, step_decay
from sandbox.optim.line_search import bfgs_second_direction, edge_crossings, loss_along_line

# The optimisers' claims: scipy's methods run their updates through BLAS, the first-order rules
# through NumPy's elementwise kernels, so `make test-portable` runs this file under every emulated
# CPU, and what it asserts must hold whatever their rounding.
pytestmark = pytest.mark.portable

experiment = load_experiment("stall_vs_converge")
# the script's defaults, with an --out that holds nothing, whatever a run has left in results/
DEFAULTS, _ = experiment.parse_args(["--out", str(ROOT / "tests" / "never-written")])
TARGET = np.array(DEFAULTS.target)
STARTS, LABELS = experiment.make_starts(DEFAULTS)  # the headline experiment's default starts


def test_default_starts_do_not_overlap_the_target():
    assert len(STARTS) == 8 and np.all(iou(STARTS, TARGET) == 0)


# The scientific claims, from real runs.
@pytest.mark.parametrize("method", GRADIENT_METHODS)
def test_iou_loss_stalls_from_every_non_overlapping_start(method):
    for start in STARTS:
        result = fit(start, TARGET, loss="iou", method=method)
        assert result.outcome == "stalled" and result.stalled and not result.success
        assert result.ious[-1] == 0.0
        np.testing.assert_array_equal(result.boxes, np.tile(start, (len(result.boxes), 1)))


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["giou", "l1", "l2"])
def test_giou_l1_and_l2_bring_the_box_home_with_gd_at_its_defaults(loss):
    for start in STARTS:
        result = fit(start, TARGET, loss=loss, method="gd")
        assert result.ious[-1] >= 0.99, (loss, start, result.message)
        assert result.ious[0] == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("method, param", [
    ("SLSQP", "xyxy"), ("SLSQP", "xywh"), ("SLSQP", "cxcywh"), ("SLSQP", "log"),
    ("Powell", "cxcywh"), ("Powell", "log"), ("COBYQA", "log"), ("L-BFGS-B", "cxcywh"),
    ("trust-constr", "cxcywh"),
])
def test_these_scipy_methods_bring_giou_home_from_every_default_start(method, param):
    # the README's answer to "which scipy method and parameterisation brings giou home"
    for start in STARTS:
        assert fit(start, TARGET, loss="giou", method=method, param=param).ious[-1] >= 0.99


# How a run ended, told honestly.
@pytest.mark.slow
@pytest.mark.parametrize("loss, method, options, outcome, words", [
    ("giou", "BFGS", {}, "line_search_failed", "precision loss"),
    ("l1", "TNC", {}, "line_search_failed", "Linear search failed"),
    ("giou", "gd", {"maxiter": 5}, "max_iterations", "Maximum number of iterations (5)"),
    ("l1", "trust-ncg", {"maxiter": 30}, "max_iterations", "Maximum number of iterations"),
    ("giou", "dogleg", {}, "failed", "non-psd Hessian"),
    ("l1", "Newton-CG", {}, "stuck", "terminated successfully"),
    ("l2", "BFGS", {}, "converged", "terminated successfully"),
])
def test_outcome_says_how_the_run_ended(loss, method, options, outcome, words):
    results = [fit(start, TARGET, loss=loss, method=method, **options) for start in STARTS]
    chosen = [r for r in results if words in r.message]
    assert chosen, f"no run of {method} on {loss} ended with {words!r}"
    for result in chosen:
        assert result.outcome == outcome
        assert result.success == (outcome == "converged")
    assert set(r.outcome for r in results) <= set(OUTCOMES)


@pytest.mark.slow
@pytest.mark.parametrize("method", ["L-BFGS-B", "Powell"])
def test_a_convergence_claimed_away_from_the_target_is_stuck(method):
    # on GIoU both stop by their own tests at kinks (L-BFGS-B) or far out on an edge (Powell)
    results = [fit(start, TARGET, loss="giou", method=method) for start in STARTS]
    assert all(r.status == 0 for r in results)  # scipy: success, every time
    outcomes = [r.outcome for r in results]
    assert outcomes == ["converged" if r.ious[-1] >= 0.99 else "stuck" for r in results]
    assert {"converged", "stuck"} <= set(outcomes)


def test_a_run_that_ends_on_an_infinite_loss_diverged():
    result = fit(STARTS[0], TARGET, loss="l2", method="gd", param="log", lr=10.0)
    assert result.outcome == "diverged" and not np.isfinite(result.fun)
    assert "Non-finite loss" in result.message


def test_a_wild_trial_step_that_comes_back_is_not_divergence():
    # SLSQP in log parameters visits a box of overflowing size on the way, then lands home
    result = fit(STARTS[1], TARGET, loss="l1", method="SLSQP", param="log")
    assert not np.all(np.isfinite(result.boxes))
    assert result.outcome == "converged" and result.ious[-1] > 0.999


def test_newton_cg_on_l1_claims_success_without_moving():
    # L1 has a zero Hessian: Newton-CG takes a zero step and scipy calls that success
    result = fit(STARTS[0], TARGET, loss="l1", method="Newton-CG")
    assert result.message == "Optimization terminated successfully."
    assert result.grad_norms[0] > 0 and np.all(result.box == STARTS[0])
    assert result.outcome == "stuck" and not result.stalled


def test_callback_sees_each_step_and_can_stop_the_run():
    seen = []

    def callback(intermediate_result):
        seen.append(intermediate_result.box)
        if intermediate_result.nit == 3:
            raise StopIteration

    result = fit(STARTS[0], TARGET, loss="giou", method="gd", callback=callback)
    assert result.outcome == "stopped" and result.nit == 3
    np.testing.assert_array_equal(np.array(seen), result.boxes[1:])


@pytest.mark.parametrize("method, status", [("COBYLA", 30), ("COBYQA", 3), ("trust-constr", 3), ("TNC", 99)])
def test_a_callback_stop_is_read_from_the_methods_own_status_code(method, status):
    # The first three report a StopIteration in their own status code, not minimize's 99, and
    # COBYQA calls it a success; no word of their messages tells the message fallback. TNC lets it
    # escape from minimize, and fit ends the run itself.
    def callback(intermediate_result):
        if intermediate_result.nit == 2:
            raise StopIteration

    result = fit(STARTS[0], TARGET, loss="giou", method=method, callback=callback)
    assert result.status == status and result.outcome == "stopped" and not result.success


def test_every_method_has_its_status_codes_classified():
    from sandbox.optim.fitting import _STATUS_OUTCOMES
    assert set(_STATUS_OUTCOMES) == set(METHODS)
    for method, outcomes in _STATUS_OUTCOMES.items():
        assert set(outcomes.values()) <= {*OUTCOMES, None}, method
        assert "converged" in outcomes.values(), method


# The result's record.
@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS)
def test_result_records_the_whole_trajectory(method):
    start = STARTS[1]
    result = fit(start, TARGET, loss="giou", method=method, maxiter=20)
    steps = len(result.boxes)
    assert result.boxes.shape == (steps, 4)
    np.testing.assert_array_equal(result.boxes[0], start)
    np.testing.assert_array_equal(result.box, result.boxes[-1])
    for key in ("losses", "ious", "gious", "grad_norms"):
        assert result[key].shape == (steps,), key
    assert result.fun == result.losses[-1]
    np.testing.assert_allclose(result.losses, LOSSES["giou"](result.boxes, TARGET))
    np.testing.assert_allclose(result.ious, iou(result.boxes, TARGET))
    for key in ("x", "nit", "nfev", "njev", "success", "status", "message", "outcome", "stalled"):
        assert key in result, key
    if method in ("gd", "momentum", "adam"):
        assert steps == result.nit + 1 and result.nfev == result.njev == result.nit


def test_grad_norms_are_the_gradient_with_respect_to_the_parameters():
    result = fit(STARTS[2], TARGET, loss="giou", method="gd", param="log", maxiter=10)
    param = PARAMETERISATIONS["log"]
    for box, norm in zip(result.boxes, result.grad_norms):
        gradient = grad(lambda x: LOSSES["giou"](param.to_box(x), TARGET))(param.from_box(box))
        assert norm == pytest.approx(np.linalg.norm(gradient), rel=1e-9)


def test_first_order_steps_follow_the_rules():
    start, lr = STARTS[0], 0.1
    g0 = grad(lambda p: LOSSES["giou"](p, TARGET))(start)
    weight = 2 - iou(start, TARGET)
    one_step = {
        ("gd", False): start - lr * g0,
        ("gd", True): start - lr * weight * g0,
        ("momentum", False): start - lr * g0,  # v1 = g0
        ("adam", False): start - lr * g0 / (np.abs(g0) + 1e-8),  # bias-corrected m/sqrt(v) = g/|g|
    }
    for (method, weighted), expected in one_step.items():
        result = fit(start, TARGET, loss="giou", method=method, lr=lr, iou_weighting=weighted, maxiter=1)
        np.testing.assert_allclose(result.boxes[1], expected, rtol=1e-12, atol=1e-12)


def test_schedules():
    assert [step_decay(t, 200) for t in (0, 159, 160, 179, 180, 199)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01])
    assert cosine_decay(0, 200) == 1 and cosine_decay(100, 200) == pytest.approx(0.5)


@pytest.mark.parametrize("param", PARAMETERISATIONS)
def test_parameterisations_round_trip_and_all_carry_a_fit(param):
    parameterisation = PARAMETERISATIONS[param]
    np.testing.assert_allclose(parameterisation.to_box(parameterisation.from_box(STARTS)), STARTS)
    assert fit(STARTS[3], TARGET, loss="l2", method="BFGS", param=param).ious[-1] > 0.999


# Bad input is named before any work starts.
@pytest.mark.parametrize("arguments, words", [
    (dict(start=[0, 0, np.nan, 1]), "start box [0.0, 0.0, nan, 1.0] has non-finite coordinates"),
    (dict(start=[0, 0, 1]), "start must have shape (..., 4)"),
    (dict(start=[[0, 0, 1, 1]]), "fit takes one start box of shape (4,)"),
    (dict(target=[0, 0, 1, 0]), "target box [0.0, 0.0, 1.0, 0.0] has non-positive height 0.0"),
    (dict(target=[0, 0, np.inf, 1]), "target box [0.0, 0.0, inf, 1.0] has non-finite"),
    (dict(loss="xiou"), "unknown loss 'xiou'; valid losses are iou, giou, log_iou"),
    (dict(method="newton"), "unknown method 'newton'; valid methods are gd, momentum, adam, Nelder-Mead"),
    (dict(param="polar"), "unknown parameterisation 'polar'; valid: xyxy, xywh, cxcywh, log"),
    (dict(param="log", start=[0, 0, 0, 1]), "log-parameterised box [0.0, 0.0, 0.0, 1.0] has non-positive width"),
    (dict(maxiter=0), "maxiter must be a whole number >= 1"),
    (dict(schedule="linear"), "unknown schedule 'linear'; valid schedules are constant, step, cosine"),
    (dict(lr=-0.1), "lr must be a positive number; got -0.1"),
    (dict(method="adam", beta=0.9), "method 'adam' takes no option(s) beta; its options are lr, schedule"),
    (dict(method="BFGS", lr=0.1), "method 'BFGS': Unknown solver options: lr"),
    (dict(loss="l1:coords=polar"), "unknown coords 'polar'"),
])
def test_bad_input_raises_a_value_error_naming_it(arguments, words):
    call = dict(start=[2.0, 0.0, 3.0, 1.0], target=[0.0, 0.0, 1.0, 1.0]) | arguments
    with pytest.raises(ValueError) as error:
        fit(call.pop("start"), call.pop("target"), **call)
    assert words in str(error.value)


def test_method_names_are_case_insensitive():
    assert fit(STARTS[0], TARGET, loss="l2", method="bfgs").outcome == "converged"


def test_bfgs_line_search_fails_where_the_minimum_along_its_direction_is_a_kink():
    # The README's account: from the start at NE, BFGS takes a step, then searches for a step meeting
    # the strong Wolfe conditions along its next direction, -H1 g1 with H1 the first BFGS update of
    # the identity. Along it the slope steepens (never flattens) until the box's bottom edge crosses
    # the target's, then jumps to uphill: the minimum along the line is that kink, and no step off it
    # meets the curvature condition. How many iterations scipy counts before it gives up is the BLAS
    # kernels' rounding: on SkylakeX and Haswell kernels the search fails at once (nit 1); on
    # Sandybridge and Prescott kernels it lands exactly on the kink, where autograd's gradient (max and
    # min split theirs in half at a tie) has slope +0.018 along the line, inside the curvature band,
    # accepts that step, and fails one iteration later having moved by rounding only (nit 3).
    start = STARTS[LABELS.index("NE")]
    result = fit(start, TARGET, loss="giou", method="BFGS")
    assert result.outcome == "line_search_failed" and "precision loss" in result.message
    # a few iterations, far from home: IoU 0.118 (nit 1) or 0.190 (nit 3), wherever the search stops
    assert 1 <= result.nit <= 3 and result.ious[-1] < 0.25
    x0, x1 = result.boxes[0], result.boxes[1]
    direction = bfgs_second_direction("giou", TARGET, x0, x1)
    # Tolerances: about the precision the README prints each number to (two or three decimals); the
    # emulated cores differ in them by about 1e-16.
    _, slope = loss_along_line("giou", TARGET, x1, direction, [0.0, 1.0, 2.0])
    assert slope[0] == pytest.approx(-0.029, abs=5e-4) and slope[1] == pytest.approx(-0.043, abs=5e-4)
    assert slope[2] == pytest.approx(0.24, abs=0.01)
    crossing = (TARGET[0] - x1[0]) / direction[0]  # where the left edges meet
    assert 1.0 < crossing < 2.0
    # the bottom edges meet a little earlier (a = 1.72), and that kink is the minimum along the line
    first = edge_crossings(x1, direction, TARGET)[0]
    _, around = loss_along_line("giou", TARGET, x1, direction, [first - 1e-6, first + 1e-6])
    assert 1.0 < first < crossing and around[0] < 0 < around[1]
    assert first == pytest.approx(1.72, abs=0.005) and crossing == pytest.approx(1.80, abs=0.005)
    assert around[1] == pytest.approx(0.095, abs=0.001)
    # on either side of the kink the slope is outside the curvature band |slope| <= 0.9 |slope at 0|
    assert np.all(np.abs(around) > 0.9 * abs(slope[0]))
    # on the kink itself, its bottom edge exactly the target's, autograd's slope is inside the band
    kink = x1 + first * direction
    on_kink = np.where(np.arange(4) == 1, TARGET[1], kink)
    _, at_kink = loss_along_line("giou", TARGET, on_kink, direction, [0.0])
    assert at_kink[0] == pytest.approx(0.018, abs=5e-4) and abs(at_kink[0]) <= 0.9 * abs(slope[0])
    # Every box after the first step is that kink: the step the search took where it took one. 1e-12:
    # the kink box is computed from x1 and the direction, whose last bits differ between BLAS kernels,
    # and the run's boxes sit a few units of 1e-16 from it (3e-16 on Prescott's kernels).
    for box in result.boxes[2:]:
        np.testing.assert_allclose(box, kink, rtol=0, atol=1e-12)
