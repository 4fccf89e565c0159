"""The library functions the notebooks read saved results with."""
import csv

import numpy as np
import pytest

from sandbox.runs import sweep as sweeps
from sandbox.runs.store import Store, load_histories

# L2 with gradient descent at rate 0.3 converges in about 15 steps and stops, the runs from random
# starts at different steps (14 and 15); GIoU at rate 0.01 runs all 40.
SMALL = {"threshold": 0.99, "axes": {"loss": ["l2", "giou"], "method": ["gd"], "lr": [0.3, 0.01],
                                     "maxiter": [40]},
         "tie": [["loss", "lr"]],
         "starts": {"random": {"kind": "random", "count": 4}}}


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    sweep = sweeps.resolve(SMALL)
    sweeps.run(sweep, Store(out, sweep))
    with open(out / "results.csv", newline="") as file:
        return out, list(csv.DictReader(file))


def test_histories_line_up_with_the_cells_rows_in_results_csv(finished):
    out, rows = finished
    for cell in {row["cell"] for row in rows}:
        mine = [row for row in rows if row["cell"] == cell]
        raw, held = load_histories(out, cell, hold=False), load_histories(out, cell)
        assert raw.shape == held.shape and len(held) == len(mine) == int(mine[0]["runs"])
        for row, history, padded in zip(mine, held, raw):
            steps = int(row["iterations"]) + 1  # the start, then one IoU per iteration
            assert np.isclose(padded[steps - 1], float(row["final_iou"]), atol=1e-6)
            assert np.all(np.isnan(padded[steps:])) and not np.any(np.isnan(padded[:steps]))
            assert np.array_equal(history[:steps], padded[:steps])
            assert np.all(history[steps:] == padded[steps - 1])  # a stopped run keeps its last IoU


def test_the_fast_cell_stops_early_so_holding_matters(finished):
    out, rows = finished
    cell = next(row["cell"] for row in rows if row["loss"] == "l2")
    raw = load_histories(out, cell, hold=False)
    assert np.isnan(raw).any() and not np.isnan(load_histories(out, cell)).any()


def test_histories_of_different_lengths_line_up_when_extended(finished):
    out, rows = finished
    cells = {row["loss"]: row["cell"] for row in rows}
    long = load_histories(out, cells["giou"])
    short = load_histories(out, cells["l2"])
    extended = load_histories(out, cells["l2"], steps=long.shape[1])
    assert short.shape[1] < long.shape[1] == extended.shape[1]
    assert np.array_equal(extended[:, :short.shape[1]], short)
    assert np.all(extended[:, short.shape[1]:] == short[:, -1:])
    with pytest.raises(ValueError, match="steps must be a whole number >= 41"):
        load_histories(out, cells["giou"], steps=10)
    with pytest.raises(ValueError, match="needs hold=True"):
        load_histories(out, cells["giou"], hold=False, steps=50)


def test_an_unknown_cell_is_named_with_where_to_find_the_ids(finished):
    out, _ = finished
    with pytest.raises(FileNotFoundError, match="'nosuchcell'.*'cell' column of results.csv"):
        load_histories(out, "nosuchcell")
