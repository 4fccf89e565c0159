"""What every experiment's command line shares: the parser, the --out folder, a clean Ctrl-C.

    >>> parser = experiment_parser("One claim per script.\\n\\nMore text.")
    >>> parser.description
    'One claim per script.'
"""
import argparse
import json
import sys
from pathlib import Path

from .results import difference


def experiment_parser(doc):
    """An ``ArgumentParser`` described by the first line of `doc`, showing every default in --help."""
    return argparse.ArgumentParser(description=doc.split("\n")[0],
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)


def check_out(parser, out, replot=False, needs=(), flag="--replot"):
    """Stop with a one-line error, before any work, if --out cannot hold or does not hold results.

    `out` must not be a file; with `replot` (the option `flag` of the command line), it
    must already hold every name in `needs`.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out} is a file; give a folder for the results")
    if replot:
        missing = [name for name in needs if not (out / name).is_file()]
        if missing:
            parser.error(f"{flag} needs {', '.join(missing)} in {out}; run once without {flag} first")


def run_interruptible(main, out, kept="the files already written", resumes=False):
    """Run ``main()``; on Ctrl-C say in one line what under `out` was kept, and exit with status 130.

    Every file is written whole or not at all (``sandbox.results.atomic_write``), so
    an interruption leaves finished files and never a half-written one. With
    `resumes`, the line also says that the same command goes on from there.
    """
    try:
        return main()
    except KeyboardInterrupt:
        then = "; the same command goes on from there" if resumes else ""
        print(f"\ninterrupted: {kept} in {out} are complete, nothing half-written is left{then}",
              file=sys.stderr)
        raise SystemExit(130)


def refuse_other_settings(out, wanted):
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
