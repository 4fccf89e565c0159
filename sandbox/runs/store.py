"""The store of a sweep's results: a folder that an interrupted or concurrent run never corrupts.

`Store` appends each finished cell's rows, histories and boxes atomically, so that an
interrupted sweep loses nothing that had finished and runs nothing twice; `locked`
holds a folder for one runner at a time (flock). `finished`, `load_histories` and
`load_boxes` read a folder back.
"""
from __future__ import annotations

import csv
import json
import os
import sys
import weakref
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike

from sandbox._types import FloatArray, StrPath

from sandbox.runs.records import atomic_write, difference, provenance, read_csv, write_json
from sandbox.runs.sweep import SweepError, cell_id, cells, result_columns

try:
    import fcntl
except ModuleNotFoundError:  # Windows: no flock, so a sweep folder is not locked there
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lock"
"""The file in a sweep folder that a runner holds an exclusive flock on while the folder is open."""
_HELD: dict[str, list[int]] = {}
"""The folders this process holds: real path -> [descriptor of the lock file, number of open stores]."""


def _hold(folder: StrPath) -> str | None:
    """Lock `folder` for this process, or raise SweepError naming the process that holds it.

    The lock is a flock on ``folder/.lock``. The kernel drops it when the last
    descriptor of that open file closes, so a runner that dies, even by kill -9,
    never leaves the folder locked. Stores of one process share the lock, so a
    notebook can open the same folder again. Linux and macOS; on Windows (no
    fcntl) the folder is not locked.
    """
    key = os.path.realpath(folder)
    if key in _HELD:
        _HELD[key][1] += 1
        return key
    if fcntl is None:
        return None
    descriptor = os.open(os.path.join(key, LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(descriptor, 200).decode(errors="replace").strip() or "pid unknown"
        os.close(descriptor)
        raise SweepError(f"another runner ({holder}) is running on {folder}; wait for it to finish, "
                         f"or give another --out") from None
    except BaseException:
        os.close(descriptor)
        raise
    os.ftruncate(descriptor, 0)
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] not in ("", "-c") else "python"
    os.write(descriptor, f"{program}, pid {os.getpid()}\n".encode())
    _HELD[key] = [descriptor, 1]
    return key


def _release(key: str | None) -> None:
    """Give back one store's hold on a folder; the last one unlocks it."""
    if key is None or key not in _HELD:  # not locked (Windows), or a forked child, which holds nothing
        return
    held = _HELD[key]
    held[1] -= 1
    if held[1] == 0:
        del _HELD[key]
        os.close(held[0])


@contextmanager
def locked(folder: StrPath) -> Iterator[None]:
    """Hold `folder`'s lock, as a sweep's runner does (`_hold`), while the block runs; SweepError if another holds it.

    For a command that writes a folder of several sweeps and files of its own.
    """
    key = _hold(folder)
    try:
        yield
    finally:
        _release(key)


def _forget_inherited_locks() -> None:
    # A forked worker shares its parent's lock file. Closing its copy, never LOCK_UN
    # (which would unlock the parent), lets the lock end with the parent even if a
    # worker outlives it.
    for descriptor, _ in _HELD.values():
        os.close(descriptor)
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_inherited_locks)


class Store:
    """A sweep's folder: the resolved sweep, package versions, results.csv, IoU histories and boxes.

    Opening a store locks the folder (see `_hold`) until `close`, the end of a
    ``with`` block, or the store's collection; a runner in another process is
    refused at once, before it runs or changes anything.

    Rows are appended a cell at a time, in one write, and flushed to disk; the
    cell's histories (and boxes) are written first, whole. On opening, a row cut short or a
    cell missing some of its runs (an interruption mid-write) is dropped, so the
    cell runs again. A cell whose runs are all there but some more than once (two
    runners from before the lock) keeps the first copy of each and counts as
    finished: finished work is never run again.
    """

    def __init__(self, out: StrPath, sweep: dict[str, Any]) -> None:
        self.out, self.results, self.histories = Path(out), Path(out) / "results.csv", Path(out) / "histories"
        self.columns = result_columns(sweep)
        self.histories.mkdir(parents=True, exist_ok=True)
        self._unlock = weakref.finalize(self, _release, _hold(self.out))
        try:
            saved = self.out / "sweep.json"
            if saved.exists():
                previous = json.loads(saved.read_text())
                if previous != sweep:
                    raise SweepError(f"{self.out} holds the results of a different sweep "
                                     f"({difference(previous, sweep)}); give a new --out, or delete "
                                     f"{self.out} to start over")
            else:
                write_json(saved, sweep)
            write_json(self.out / "versions.json", provenance())
            self.finished = self._recover()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Unlock the folder for other runners; nothing may be appended after."""
        self._unlock()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exception: object) -> None:
        self.close()

    def _recover(self) -> set[str]:
        """The ids of the finished cells, after mending what an interruption or a second runner left.

        The key of a run within its cell is its start (label and box). A start set that
        lists one start twice (a direction given twice) has fewer keys than runs; its
        cell is finished when it has exactly its number of rows, as before.
        """
        if not self.results.exists():
            self.results.write_text(",".join(self.columns) + "\n")
            return set()
        lines = self.results.read_text().split("\n")
        header, body = lines[0], lines[1:]
        complete = body[:-1]  # the last piece follows the final newline: empty if the file is whole
        # cell -> [(line number, row)] of its whole rows, in file order
        rows_of_cell: dict[str, list[tuple[int, dict[str, str]]]] = {}
        for number, line in enumerate(complete):
            fields = next(csv.reader([line]), [])
            row = dict(zip(self.columns, fields))
            if len(fields) == len(self.columns) and row["runs"].isdigit():  # not cut short, not a header
                rows_of_cell.setdefault(row["cell"], []).append((number, row))
        kept: list[int] = []
        finished: set[str] = set()
        for cell, entries in rows_of_cell.items():
            runs = int(entries[0][1]["runs"])
            first_copies: dict[tuple[str | None, str | None], int] = {}
            for number, row in entries:
                first_copies.setdefault((row.get("start"), row.get("start_box")), number)
            if len(first_copies) == runs:
                kept.extend(first_copies.values())
            elif len(entries) == runs:
                kept.extend(number for number, _ in entries)
            else:
                continue
            finished.add(cell)
        if len(kept) < len(complete) or body[-1]:
            text = "\n".join([header, *(complete[number] for number in sorted(kept)), ""])
            atomic_write(self.results, lambda tmp: Path(tmp).write_text(text))
        return finished

    def rows(self) -> list[dict[str, str]]:
        """The rows of the finished cells, as results.csv holds them (strings)."""
        return [row for row in read_csv(self.results) if row["cell"] in self.finished]

    def append(self, rows: Sequence[Mapping[str, Any]], histories: ArrayLike, boxes: ArrayLike | None = None,
               record: Any = None) -> None:
        if not self._unlock.alive:
            raise ValueError(f"the store of {self.out} is closed: it no longer holds the folder's lock; "
                             f"open a new Store to append")
        cell = rows[0]["cell"]
        atomic_write(self.histories / f"{cell}.npy", lambda tmp: np.save(tmp, histories))
        if boxes is not None:
            (self.out / "boxes").mkdir(exist_ok=True)
            atomic_write(self.out / "boxes" / f"{cell}.npy", lambda tmp: np.save(tmp, boxes))
        if record is not None:  # a learning or simulation cell's whole run (its per-epoch metrics, E(t))
            (self.out / "records").mkdir(exist_ok=True)
            write_json(self.out / "records" / f"{cell}.json", record)
        text = "".join(",".join(_csv(row[c]) for c in self.columns) + "\n" for row in rows)
        with open(self.results, "a") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        self.finished.add(cell)


def finished(out: StrPath) -> tuple[dict[str, Any], dict[str, list[dict[str, str]]]]:
    """The sweep saved under `out` and its rows, cell by cell in the sweep's order, once every cell has run.

    Returns
    -------
    sweep : dict
    rows : dict
        Cell id -> its rows of results.csv, in the order of `cells` (not the order the cells
        finished in, so that what is drawn from them is the same however the run went).

    SweepError if some cell has not finished, so that nothing is drawn from part of a run.
    """
    out = Path(out)
    if not (out / "sweep.json").exists():
        raise SweepError(f"{out} holds no sweep; run the same command without --replot")
    sweep = json.loads((out / "sweep.json").read_text())
    # a row cut short by an interruption is no result (as `Store` drops it on opening); a learning
    # sweep's cells are read from the rows, which must be whole
    every = [row for row in read_csv(out / "results.csv") if (row.get("runs") or "").isdigit()]
    order = [cell_id(cell) for cell in cells(sweep, every)]
    rows: dict[str, list[dict[str, str]]] = {}
    for row in every:
        rows.setdefault(row["cell"], []).append(row)
    done = sum(cell in rows for cell in order)
    if done < len(order):
        counted = ("the run's {} cells" if sweep.get("experiment") != "learning"  # a learning sweep's cells follow
                   else "the {} cells its results so far call for").format(len(order))  # from its results
        raise SweepError(f"{out} holds {done} of {counted}; run the same command without --replot to finish them")
    return sweep, {cell: rows[cell] for cell in order}


def load_histories(out: StrPath, cell: str, hold: bool = True, steps: int | None = None
                   ) -> FloatArray:
    """The IoU histories of a finished cell, read from ``out/histories/<cell>.npy``.

    Parameters
    ----------
    out : str or Path
        The sweep's folder, as given to `Store`.
    cell : str
        The cell's id: the ``cell`` column of ``results.csv``, or `cell_id` of its axis values.
    hold : bool
        A run that stopped before the longest run of its cell (converged, stalled, or a
        scipy method done) is stored padded with NaN; with ``hold`` it keeps its last IoU
        instead, so that the runs can be averaged step by step.
    steps : int, optional
        With ``hold``, extend every run to this many columns, holding its last IoU, so
        that cells whose runs all stopped early line up with the others; at least the
        cell's stored number of steps.

    Returns
    -------
    ndarray, shape (runs, steps)
        Row i is the i-th row of the cell in ``results.csv``; column t is the IoU after
        t iterations (column 0, the start).

    Notebook 07 reads a sweep's cells this way, then takes, for instance, a cell's median
    IoU at every step with ``np.median(histories, axis=0)``.
    """
    path = Path(out) / "histories" / f"{cell}.npy"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: no finished cell {cell!r} under {out}; "
                                f"the cell ids of the finished runs are the 'cell' column of results.csv")
    histories = np.load(path).astype(float)
    if steps is not None:
        if not hold:
            raise ValueError("steps extends the runs by holding their last IoU: it needs hold=True")
        if not (isinstance(steps, (int, np.integer)) and steps >= histories.shape[1]):
            raise ValueError(f"steps must be a whole number >= {histories.shape[1]}, the steps stored for "
                             f"cell {cell!r}; got {steps!r}")
        histories = np.pad(histories, [(0, 0), (0, steps - histories.shape[1])], constant_values=np.nan)
    if hold:
        # the padding is a NaN tail after each run's last step, which stays in place
        last = np.maximum(np.sum(~np.isnan(histories), axis=1) - 1, 0)
        histories = np.where(np.isnan(histories), histories[np.arange(len(histories)), last][:, None], histories)
    return histories


def load_boxes(out: StrPath, cell: str) -> FloatArray:
    """The boxes of a finished cell's runs at every step, read from ``out/boxes/<cell>.npy``.

    Stored when the sweep has ``record_boxes = true``. Returns an ndarray of shape
    (runs, steps, 4), ``xyxy``: row i is the i-th row of the cell in ``results.csv``,
    ``[i, t]`` its box after t iterations, NaN after its last step.
    """
    path = Path(out) / "boxes" / f"{cell}.npy"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: no finished cell {cell!r} under {out} whose boxes "
                                f"were kept; a sweep keeps them with record_boxes = true")
    return np.load(path)


def _csv(value: object) -> str:
    """A CSV field; sweep values never hold commas, quotes or newlines (loss parameters use ':')."""
    text = "" if value is None else str(value)
    if any(c in text for c in ',"\n'):
        return '"' + text.replace('"', '""') + '"'
    return text
