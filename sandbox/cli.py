"""What every experiment's command line shares: the parser, the --out folder, a clean Ctrl-C.

    >>> parser = experiment_parser("One claim per script.\\n\\nMore text.")
    >>> parser.description
    'One claim per script.'
"""
import argparse
import sys
from pathlib import Path


def experiment_parser(doc):
    """An ``ArgumentParser`` described by the first line of `doc`, showing every default in --help."""
    return argparse.ArgumentParser(description=doc.split("\n")[0],
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)


def check_out(parser, out, replot=False, needs=()):
    """Stop with a one-line error, before any work, if --out cannot hold or does not hold results.

    `out` must not be a file; with `replot`, it must already hold every name in `needs`.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out} is a file; give a folder for the results")
    if replot:
        missing = [name for name in needs if not (out / name).is_file()]
        if missing:
            parser.error(f"--replot needs {', '.join(missing)} in {out}; run once without --replot first")


def run_interruptible(main, out, kept="the files already written"):
    """Run ``main()``; on Ctrl-C say what under `out` was kept, and exit with status 130.

    Every file is written whole or not at all (``sandbox.results.atomic_write``), so
    an interruption leaves finished files and never a half-written one.
    """
    try:
        return main()
    except KeyboardInterrupt:
        print(f"\ninterrupted: {kept} in {out} are complete; nothing half-written is left",
              file=sys.stderr)
        raise SystemExit(130)
