"""What every experiment's command line shares: parser, workers, --out checks, refusals, progress, Ctrl-C,
running a sweep.

    >>> parser = experiment_parser("One claim per script.\\n\\nMore text.")
    >>> parser.description
    'One claim per script.'
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Collection, Mapping, TypeVar

from sandbox._types import StrPath
from sandbox.runs.records import difference

_T = TypeVar("_T")


class _DefaultsShown(argparse.ArgumentDefaultsHelpFormatter):
    """Every default in --help, but none for a required option, a switch, or an option whose help
    already says what leaving it out means (its default None)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.required or action.default is None or action.default is False or action.nargs == 0:
            return action.help
        return super()._get_help_string(action)


def experiment_parser(doc: str) -> argparse.ArgumentParser:
    """An ``ArgumentParser`` described by the first line of `doc`, showing every default in --help."""
    return argparse.ArgumentParser(description=doc.split("\n")[0], formatter_class=_DefaultsShown)


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1, or a one-line error naming the value."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1 or str(value) != text.strip():
        raise argparse.ArgumentTypeError(f"must be a whole number >= 1; got {text!r}")
    return value


def add_workers(parser: argparse.ArgumentParser, what: str = "worker processes", scheduler: str | None = None
                ) -> None:
    """The --workers option every parallel experiment takes (one per core by default), and with
    `scheduler` (what runs on a cluster) the --scheduler option, the address of a Dask scheduler."""
    parser.add_argument("--workers", type=positive_int, default=os.cpu_count(), help=f"{what} (one per core)")
    if scheduler:
        parser.add_argument("--scheduler", metavar="ADDRESS",
                            help=f"address of a Dask scheduler, as tcp://host:8786, to run the {scheduler} on "
                                 f"instead of local processes (pip install 'giou-sandbox[dask]')")


def check_out(parser: argparse.ArgumentParser, out: StrPath, replot: bool = False, needs: Collection[str] = (),
              flag: str = "--replot", earlier: str | None = None) -> None:
    """Stop with a one-line error, before any work, if --out cannot hold or does not hold results.

    `out` must not be a file; with `replot` (the option `flag` of the command line), it
    must already hold every name in `needs`. A folder that holds `earlier`, a name only
    an earlier version of the script wrote, and none of `needs` is refused too.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out} is a file; give a folder for the results")
    if earlier is not None and (out / earlier).exists() and not any((out / name).exists() for name in needs):
        parser.error(f"{out} holds a run of an earlier version of this script ({earlier}); give another --out, "
                     f"or delete {out} to start over")
    if replot:
        missing = [name for name in needs if not (out / name).is_file()]
        if missing:
            parser.error(f"{flag} needs {', '.join(missing)} in {out}; run once without {flag} first")


def run_interruptible(main: Callable[[], _T], out: StrPath, kept: str = "the files already written",
                      resumes: bool = False) -> _T:
    """Run ``main()``; on Ctrl-C say in one line what under `out` was kept, and exit with status 130.

    Every file is written whole or not at all (``sandbox.runs.records.atomic_write``), so
    an interruption leaves finished files and never a half-written one. With
    `resumes`, the line also says that the same command goes on from there.
    """
    try:
        return main()
    except KeyboardInterrupt:
        for bar in list(_OPEN_BARS):  # so that no bar is drawn again after the line below
            bar.close()
        then = "; the same command goes on from there" if resumes else ""
        print(f"\ninterrupted: {kept} in {out} are complete, nothing half-written is left{then}",
              file=sys.stderr)
        raise SystemExit(130)


def run_sweep(sweep: dict[str, Any], out: StrPath, workers: int = 1, scheduler: str | None = None) -> None:
    """Run a sweep's unfinished cells into the folder `out`, as every experiment made of a sweep does.

    Opens the folder's `sandbox.runs.store.Store` (refusing a different sweep, or a second
    runner, before any work), says how many cells there are and where they run, notes
    once a setting some cells cannot use, draws a tqdm bar over the cells, and on
    Ctrl-C says what was kept and that the same command goes on from there.
    """
    from sandbox.runs import sweep as sweeps
    from sandbox.runs.store import Store
    with Store(out, sweep) as store:  # locks out: a second runner is refused
        total = len(sweeps.cells(sweep, store.rows()))
        where = f"the Dask cluster at {scheduler}" if scheduler else f"{workers} worker process{'es' * (workers > 1)}"
        print(f"{total} cells{' so far' * (sweep.get('experiment') == 'learning')}, {total - len(store.finished)} "
              f"to run, on {where}; results in {out}")
        if sweeps.unused_settings(sweep):
            print(f"note: {sweeps.unused_settings(sweep)}")
        run_interruptible(lambda: sweeps.run(sweep, store, workers=workers, scheduler=scheduler,
                                             progress=Progress("cells")),
                          out, kept="the finished cells' rows and histories", resumes=True)


def refuse_other_settings(out: StrPath, wanted: Mapping[str, Any]) -> None:
    """Raise ValueError if ``out/config.json`` records other values for the keys of `wanted`.

    Results of other settings are never overwritten in silence: the error names the
    first difference and says what to do.
    """
    config = Path(out) / "config.json"
    if config.exists():
        recorded = json.loads(config.read_text())
        saved = {key: recorded.get(key) for key in wanted}
        wanted = json.loads(json.dumps(wanted))  # tuples as lists, as JSON keeps them
        if saved != wanted:
            raise ValueError(f"{out} holds a run with other settings ({difference(saved, wanted)}); "
                             f"give another --out, or delete {out} to start over")


class Progress:
    """A ``progress(done, total)`` callback drawn as a tqdm bar: how many done, the rate, the time left.

    The first call sets the total and where the bar starts (a resumed run starts part
    way); the bar closes when `done` reaches `total`. A later call with more to do (a
    learning sweep's next round of cells) draws a new bar from there.
    """

    bar: Any  # the tqdm bar once drawn (tqdm has no types), None before

    def __init__(self, unit: str, description: str | None = None) -> None:
        try:
            from tqdm import tqdm
        except ModuleNotFoundError:
            raise SystemExit("the experiments show progress with tqdm: pip install 'giou-sandbox[experiments]' "
                             "(make demo and make test install it)") from None
        self.tqdm, self.unit, self.description, self.bar = tqdm, unit, description, None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None or (self.bar.disable and done < total):  # tqdm disables a closed bar
            self.bar = self.tqdm(total=total, initial=done, unit=self.unit, desc=self.description,
                                 file=sys.stderr, dynamic_ncols=True)
            _OPEN_BARS.add(self.bar)
        self.bar.total = total
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.bar.close()
            _OPEN_BARS.discard(self.bar)


_OPEN_BARS: weakref.WeakSet[Any] = weakref.WeakSet()
"""The progress bars still drawing, closed by `run_interruptible` before it says what was kept."""


def median_run(run: Callable[[], _T], repeats: int, warm_up: bool = False) -> tuple[float, _T]:
    """The median seconds of `repeats` calls of ``run()``, and what the last call returned.

    With `warm_up`, one untimed call first pays the one-time costs (a library's lazy
    set-up, caches), which are not what a benchmark measures.
    """
    if warm_up:
        run()
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        returned = run()
        times.append(time.perf_counter() - began)
    return statistics.median(times), returned
