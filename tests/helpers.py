"""Shared pieces of the tests: random boxes, central differences, the hard cases, the experiment."""
import importlib.util
from pathlib import Path

import numpy as np
from hypothesis import strategies as st

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
# Predicted boxes at which values and gradients must stay finite (issue 2, point 2).
HARD_CASES = {
    "identical": [0.0, 0.0, 2.0, 1.0],
    "touching at an edge": [2.0, 0.0, 3.0, 1.0],
    "touching at a corner": [2.0, 1.0, 3.0, 2.0],
    "nested inside": [0.5, 0.25, 1.5, 0.75],
    "containing": [-1.0, -1.0, 3.0, 2.0],
    "sharing three edges": [0.0, 0.0, 1.0, 1.0],
    "zero width": [1.0, 0.0, 1.0, 1.0],
    "zero height": [0.0, 0.5, 2.0, 0.5],
    "a point": [1.0, 0.5, 1.0, 0.5],
    "a point on a corner": [2.0, 1.0, 2.0, 1.0],
    "inverted": [2.0, 1.0, 0.0, 0.0],
    "inverted and apart": [5.0, 4.0, 3.0, 3.0],
    "far apart": [1e4, 1e4, 1e4 + 1.0, 1e4 + 2.0],
}


def load_experiment(name):
    """Import experiments/<name>.py as a module."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
