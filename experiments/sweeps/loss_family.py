"""Write loss_family.toml from the registry: every loss of sandbox.LOSSES, in its order, from the same starts.

The sweep runs every loss with gradient descent and Adam from eight non-overlapping
starts around the default target. Its comment names the losses whose gradient is
exactly zero at every one of those starts (computed here, with autograd), which
therefore cannot leave them. Nothing in the file is written by hand: after adding a
loss, run this script again (`tests/test_package.py` fails while the file differs
from what it writes). Run from the repository root::

    python experiments/sweeps/loss_family.py
    python experiments/ablate.py experiments/sweeps/loss_family.toml --out results/loss_family
"""
import textwrap
from pathlib import Path

import autograd.numpy as np
from autograd import grad

import sandbox
from sandbox.losses import unchecked
from sandbox.runs import sweep as sweeps
from sandbox.runs.cli import experiment_parser
from sandbox.runs.sweep import tomllib  # tomli before Python 3.11

PATH = Path(__file__).resolve().with_suffix(".toml")
BODY = """\
threshold = 0.99

[axes]
{losses}
method = ["gd", "adam"]
starts = ["ring"]

[starts.ring]
kind = "non_overlapping"
gap = 0.5
directions = 8
size = [1.0, 1.5]
"""


def sweep_text():
    """The text of loss_family.toml for the registry as it is now."""
    names = ", ".join(f'"{name}"' for name in sandbox.LOSSES)
    body = BODY.format(losses=textwrap.fill(f"loss = [{names}]", width=104, subsequent_indent=" " * 8,
                                            break_long_words=False, break_on_hyphens=False))
    flat = stalling(body)
    comment = [f"Every loss of the registry (sandbox.LOSSES, {len(sandbox.LOSSES)} of them, in its order), from "
               f"the same non-overlapping starts, with gradient descent and Adam."]
    if flat:
        comment.append(f"{_listed(flat)} {'has' if len(flat) == 1 else 'have'} no gradient at any of these "
                       f"starts (see the loss gallery), so from them they stall.")
    comment.append("Written by experiments/sweeps/loss_family.py from the registry: run it again rather than "
                   "editing this file.")
    lines = [textwrap.fill(paragraph, width=100, initial_indent="# ", subsequent_indent="# ",
                           break_on_hyphens=False) for paragraph in comment]
    return "\n".join(lines) + "\n" + body


def stalling(body):
    """The losses of the registry whose gradient is exactly zero at every start of the sweep `body`."""
    sweep = sweeps.resolve(tomllib.loads(body), "loss_family.toml")
    starts, _ = sweeps.make_starts(sweep["starts"]["ring"], sweep["target"], seed=0)
    target = np.asarray(sweep["target"], dtype=float)
    flat = []
    for name, loss in sandbox.LOSSES.items():
        gradient = grad(lambda boxes: np.sum(unchecked(loss)(boxes, target)))(starts)
        if not np.any(gradient):
            flat.append(name)
    return flat


def _listed(names):
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def main(argv=None):
    parser = experiment_parser(__doc__)
    parser.add_argument("--out", type=Path, default=PATH, help="the file to write")
    args = parser.parse_args(argv)
    args.out.write_text(sweep_text())
    print(f"wrote {args.out}: {len(sandbox.LOSSES)} losses")


if __name__ == "__main__":
    main()
