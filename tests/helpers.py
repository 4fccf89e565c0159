"""Shared pieces of the tests: random boxes, central differences, the hard cases, the experiment."""
import importlib.util
from pathlib import Path
from unittest import mock

import numpy as np
from autograd.tracer import getval
from hypothesis import strategies as st

import sandbox.losses

ROOT = Path(__file__).resolve().parent.parent
finite_floats = st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False)


@st.composite
def positive_boxes(draw, low=-10.0, high=10.0, min_size=0.05, max_size=10.0):
    """``xyxy`` boxes with width and height in [min_size, max_size]."""
    x, y = draw(st.floats(low, high)), draw(st.floats(low, high))
    w, h = draw(st.floats(min_size, max_size)), draw(st.floats(min_size, max_size))
    return np.array([x, y, x + w, y + h])


def central_differences(f, x, step=1e-6):
    """Gradient of a scalar function by central differences, one coordinate at a time."""
    x = np.asarray(x, dtype=float)
    gradient = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e.flat[i] = step
        gradient.flat[i] = (f(x + e) - f(x - e)) / (2 * step)
    return gradient


TARGET = np.array([0.0, 0.0, 2.0, 1.0])
# (pred, target) pairs at which every loss's value and gradient must stay finite
# (issue 2, point 2; issue 3, point 3).
HARD_CASES = {
    "identical": ([0.0, 0.0, 2.0, 1.0], TARGET),
    "touching at an edge": ([2.0, 0.0, 3.0, 1.0], TARGET),
    "touching at a corner": ([2.0, 1.0, 3.0, 2.0], TARGET),
    "nested inside": ([0.5, 0.25, 1.5, 0.75], TARGET),
    "containing": ([-1.0, -1.0, 3.0, 2.0], TARGET),
    "sharing three edges": ([0.0, 0.0, 1.0, 1.0], TARGET),
    "zero width": ([1.0, 0.0, 1.0, 1.0], TARGET),
    "zero height": ([0.0, 0.5, 2.0, 0.5], TARGET),
    "a point at the target's centre": ([1.0, 0.5, 1.0, 0.5], TARGET),
    "a point on a corner": ([2.0, 1.0, 2.0, 1.0], TARGET),
    "coinciding centres": ([0.5, -0.5, 1.5, 1.5], TARGET),
    "centres level, apart": ([3.0, 0.0, 4.0, 1.0], TARGET),
    "centres one above the other, apart": ([0.5, 2.0, 1.5, 3.0], TARGET),
    "inverted": ([2.0, 1.0, 0.0, 0.0], TARGET),
    "inverted and apart": ([5.0, 4.0, 3.0, 3.0], TARGET),
    "tiny boxes": ([0.0, 0.0, 1e-6, 2e-6], np.array([0.5e-6, 0.0, 1.5e-6, 1e-6])),
    "tiny prediction": ([1.0, 0.5, 1.0 + 1e-6, 0.5 + 1e-6], TARGET),
    "huge coordinates": ([1e6, 1e6, 1e6 + 2.0, 1e6 + 1.0], np.array([1e6 + 0.5, 1e6 + 0.25, 1e6 + 2.5, 1e6 + 1.25])),
    "far apart": ([1e4, 1e4, 1e4 + 1.0, 1e4 + 2.0], TARGET),
}


def generic_pairs(count=12, seed=0):
    """Random (pred, target) pairs, overlapping and apart, none on a kink."""
    rng = np.random.default_rng(seed)
    corners = rng.uniform(-2, 2, size=(count, 2, 2))
    sizes = rng.uniform(0.3, 2.5, size=(count, 2, 2))
    boxes = np.concatenate([corners, corners + sizes], axis=-1)
    return boxes[:, 0], boxes[:, 1]


def frozen(objective, x0):
    """`objective` with every factor that sandbox.losses.formulas detaches held at its value at x0.

    The difference quotients of this function are what autograd's gradient of
    `objective` at x0 must match: autograd treats the detached factors as constants.
    """
    values = []
    with mock.patch.object(sandbox.losses.formulas, "detach", lambda v: values.append(getval(v)) or getval(v)):
        objective(x0)

    def objective_with_constants(x):
        stored = iter(values)
        with mock.patch.object(sandbox.losses.formulas, "detach", lambda v: next(stored)):
            return objective(x)
    return objective_with_constants


def load_experiment(name):
    """Import experiments/<name>.py as a module."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def adam_by_hand(gradient, x, lrs, b1=0.9, b2=0.999, eps=1e-8):
    """Kingma and Ba (ICLR 2015), Algorithm 1, written out, with the rate of step t ``lrs[t - 1]``:
    the moments m and v are the state; only the step uses their bias-corrected copies.
    ``gradient(t, x)`` is g_t at x; the defaults are the paper's."""
    m, v, xs = np.zeros_like(x), np.zeros_like(x), [x]
    for t, lr in enumerate(lrs, start=1):
        g = gradient(t, x)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g ** 2
        m_hat = m / (1 - b1 ** t)
        v_hat = v / (1 - b2 ** t)
        x = x - lr * m_hat / (np.sqrt(v_hat) + eps)
        xs.append(x)
    return np.array(xs)
