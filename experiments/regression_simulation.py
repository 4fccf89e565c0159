"""The DIoU paper's simulation: 1,715,000 anchors regressed toward their targets with each loss.

Zheng et al., AAAI 2020 (arXiv 1911.08287), section "Simulation Experiment": 5,000
anchor centres uniform over the disk of radius 3 around (10, 10), at each 7 areas
x 7 aspect ratios of anchor, each regressed toward 7 targets of area 1, for 200
iterations of B_t = B_{t-1} - eta_t (2 - IoU) dL/dB in (x, y, w, h) with eta 0.1,
then 0.01 after 80 % and 0.001 after 90 % of the iterations. It writes under --out:

- ``<loss>.npz`` for each loss as it finishes: E(t), the mean IoU at every t, what
  summary.csv and the map need (the final error summed over each anchor centre's
  343 cases, the summary's shares), and each case's final box, error and IoU (a
  rerun skips losses already done, so an interrupted run loses only the loss it was
  on; a loss saved with other settings is refused, not overwritten);
- ``points.npz``: the anchor centres; ``config.json``; ``summary.csv``, a row per loss;
- ``error_curves.png``: E(t) for every loss, log scale;
- ``final_error_maps.png``: for each loss, the final error summed over the 343 cases
  of each anchor centre, drawn over the centres (the paper's Figure 4, as a map).

``--keep summaries`` leaves out the per-case arrays (final_boxes, final_errors,
final_ious: 24 to 70 MB a loss at full size, 220 MB for the four default losses),
keeping only what summary.csv and the figures are drawn from (about 45 kB a loss,
1.1 MB for the default folder with its figures); the summary, the figures and
--replot are the same either way. What a folder keeps is not a setting that must
match: a rerun with --keep summaries reuses losses saved with their arrays (they
hold the summaries too), but a rerun that keeps all refuses a loss saved without its
arrays, before any work, rather than leave it without them or recompute it unasked.
config.json records --keep as the last run used it; each <loss>.npz shows what it
holds (final_errors is in it or not).

``--oriented`` runs the protocol's counterpart for oriented boxes (cx, cy, w, h, theta),
`sandbox.runs.simulation.oriented_protocol`: the same centres, sizes and order, each
target and anchor at its own angle drawn uniformly from [-pi/2, pi/2), moved as its
five raw numbers, with every oriented loss by default (`sandbox.losses.oriented`), the
rotated IoU in the (2 - IoU) weight and E(t) the L1 distance between the boxes' le90
forms with the angle difference wrapped into [-pi/2, pi/2)
(`sandbox.losses.kinds.oriented_error`). It is smaller by default, 20 centres (6,860
cases), and runs through autograd: the fused kernels have no oriented losses.

Run from the repository root::

    python experiments/regression_simulation.py --out results/regression_simulation
    python experiments/regression_simulation.py --reference-gradient --out results/reference
    python experiments/regression_simulation.py --gradient authors --out results/authors
    python experiments/regression_simulation.py --points 200 --losses giou siou alpha_ciou:alpha=2 --out results/small
    python experiments/regression_simulation.py --keep summaries --out results/summaries_only
    python experiments/regression_simulation.py --oriented --out results/regression_simulation_oriented
"""
# %%
import json
from functools import partial
from pathlib import Path

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

import sandbox
from sandbox.losses.kinds import KINDS as BOX_KINDS
from sandbox.losses.oriented import ORIENTED_LOSSES
from sandbox.losses.spec import loss_kind
from sandbox.optim.batch import BLOCK, regress
from sandbox.runs import cli
from sandbox.runs.cli import Progress, add_workers, check_out, experiment_parser, run_interruptible
from sandbox.losses.diou_reference import REPAIRS, authors_gradient
from sandbox.losses.fused import KINDS
from sandbox.runs.records import atomic_write, provenance, write_csv, write_json
from sandbox.runs.simulation import CASES_PER_POINT, diou_protocol, oriented_protocol

DEFAULT_LOSSES = ["iou", "giou", "diou", "ciou"]
DEFAULT_POINTS = 5000
ORIENTED_POINTS = 20
"""The oriented simulation's default size: 6,860 cases, every oriented loss in about a minute on 2 cores."""

SUMMARY = ["loss", "cases", "iterations", "error_first", "error_final", "mean_final_iou",
           "share_iou_above_0.5", "share_iou_above_0.9", "share_error_apart_at_start",
           "share_error_beyond_2", "share_error_near_axes", "seconds", "gradient"]
"""A row per loss. The share_error_* columns: the share of the final error carried by the cases
that start apart, by those whose anchor centre lies more than 2 from the targets' centre, and by
those within 15 degrees of the horizontal or vertical through it."""

REGIONS = [column.removeprefix("share_error_") for column in SUMMARY if column.startswith("share_error_")]
PER_CASE = ("final_boxes", "final_errors", "final_ious")
"""The arrays of one value per case, which --keep summaries leaves out."""


def parse_args(argv):
    parser = experiment_parser(__doc__)
    parser.add_argument("--out", type=Path, default=Path("results/regression_simulation"),
                        help="folder for the per-loss results, summary.csv, config.json and figures")
    parser.add_argument("--oriented", action="store_true",
                        help="oriented boxes at random angles (sandbox.runs.simulation.oriented_protocol), with the "
                             "oriented losses")
    parser.add_argument("--losses", nargs="+",
                        help=f"losses, by name with optional parameters (default {' '.join(DEFAULT_LOSSES)}; with "
                             f"--oriented every oriented loss); valid names: {', '.join(sandbox.LOSSES)}; with "
                             f"--oriented: {', '.join(ORIENTED_LOSSES)}")
    parser.add_argument("--points", type=int,
                        help=f"anchor centres; 343 cases each (default {DEFAULT_POINTS}; {ORIENTED_POINTS} with "
                             f"--oriented)")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0, help="seed of the anchor centres")
    add_workers(parser, scheduler="chunks of cases")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help=f"cases per chunk, a multiple of {BLOCK} (default: the engine's choice)")
    parser.add_argument("--reference-gradient", action="store_true",
                        help="double the w and h gradient components, as the authors' MATLAB code does "
                             "(not with --gradient authors, which runs that code)")
    parser.add_argument("--gradient", choices=["fused", "autograd", "authors"],
                        help="fused (the default): the hand-derived kernels of sandbox.losses.fused, the fast path "
                             "this experiment needs; autograd (the default with --oriented, whose losses have no "
                             "kernels): autograd op by op, the sandbox's default elsewhere; authors: the DIoU "
                             "authors' MATLAB gradients transcribed, for iou, giou, diou and ciou "
                             "(sandbox.losses.diou_reference)")
    parser.add_argument("--repairs", nargs="*", default=[], choices=sorted(REPAIRS),
                        help="with --gradient authors: correct these slips of the MATLAB code, one by one")
    parser.add_argument("--keep", choices=["all", "summaries"], default="all",
                        help="all: also each case's final box, error and IoU (up to 70 MB a loss at full size); "
                             "summaries: only what summary.csv and the figures need (about 45 kB a loss)")
    parser.add_argument("--replot", action="store_true", help="only redraw the figures from what --out holds")
    args = parser.parse_args(argv)
    check_out(parser, args.out, args.replot, needs=("config.json", "points.npz"))
    args.repairs = sorted(set(args.repairs))
    if args.losses is None:
        args.losses = list(ORIENTED_LOSSES) if args.oriented else DEFAULT_LOSSES
    if args.points is None:
        args.points = ORIENTED_POINTS if args.oriented else DEFAULT_POINTS
    if args.gradient is None:
        args.gradient = "autograd" if args.oriented else "fused"
    if not args.replot:
        try:
            wanted = BOX_KINDS["oriented" if args.oriented else "aligned"]
            for loss in args.losses:
                if loss_kind(loss) is not wanted:
                    raise ValueError(f"loss {loss!r} is axis-aligned; --oriented takes the oriented losses: "
                                     f"{', '.join(ORIENTED_LOSSES)}" if args.oriented else
                                     f"loss {loss!r} is oriented: give --oriented to run the oriented simulation")
            if args.oriented and args.gradient != "autograd":
                raise ValueError(f"--gradient {args.gradient} has no oriented losses: the oriented simulation runs "
                                 f"through autograd")
            for name in ("points", "iterations"):
                if getattr(args, name) < (0 if name == "iterations" else 1):
                    raise ValueError(f"--{name} must be at least {0 if name == 'iterations' else 1}")
            if args.chunk_size is not None and (args.chunk_size < BLOCK or args.chunk_size % BLOCK):
                raise ValueError(f"--chunk-size must be a positive multiple of {BLOCK}; got {args.chunk_size}")
            if len(set(args.losses)) < len(args.losses):
                raise ValueError("--losses names a loss more than once")
            if args.gradient == "authors" and not set(args.losses) <= set(KINDS):
                raise ValueError(f"the authors' code has gradients for {', '.join(KINDS)} only")
            if args.repairs and args.gradient != "authors":
                raise ValueError("--repairs corrects the authors' gradients: give --gradient authors")
            if args.gradient == "authors" and args.reference_gradient:
                raise ValueError("--reference-gradient doubles w and h as the authors' code does, and "
                                 "--gradient authors runs that code, doubling already: give one or the other")
            refuse_other_settings(args)
        except ValueError as error:
            parser.error(str(error))
    return args


def refuse_other_settings(args):
    """Results already under --out from other settings are an error, not something to overwrite."""
    cli.refuse_other_settings(args.out, {key: value for key, value in settings(args, None).items() if key != "loss"})
    lean = []
    for loss in args.losses:
        path = result_path(args.out, loss)
        if not path.exists():
            continue
        with np.load(path) as saved:
            if json.loads(str(saved["settings"])) != settings(args, loss):
                raise ValueError(f"{path} holds {loss} run with other settings; delete it to run it again")
            if args.keep == "all" and "final_errors" not in saved.files:
                lean.append(path.name)
    if lean:
        raise ValueError(f"{args.out} holds {', '.join(lean)} without per-case arrays (--keep summaries): give "
                         f"--keep summaries to add to this folder, or delete {' '.join(lean)} to run those losses again keeping them")


def result_path(out, loss):
    return out / f"{loss.replace(':', '_').replace(',', '_').replace('=', '-')}.npz"


def settings(args, loss):
    """What determines a loss's result: a rerun with the same settings reuses it."""
    recorded = dict(loss=loss, points=args.points, iterations=args.iterations, seed=args.seed,
                    reference_gradient=args.reference_gradient, gradient=args.gradient,
                    repairs=sorted(args.repairs))
    return (recorded | {"oriented": True}) if args.oriented else recorded  # so that folders from before still match


def protocol_of(config):
    """The cases a run (its arguments or its config.json) regresses: oriented or the paper's."""
    return (oriented_protocol if config.get("oriented") else diou_protocol)(config["points"], seed=config["seed"])


# %% Run each loss, saving it as soon as it is done.
def run(args):
    protocol = protocol_of(vars(args))
    masks = regions(protocol)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write(args.out / "points.npz", lambda tmp: np.savez_compressed(tmp, points=protocol.points))
    config = dict({k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, **provenance())
    if (args.out / "config.json").exists():  # the same settings (checked); keep the losses run before
        earlier = json.loads((args.out / "config.json").read_text())["losses"]
        config["losses"] = earlier + [loss for loss in args.losses if loss not in earlier]
    write_json(args.out / "config.json", config)
    cases = len(protocol.anchors)
    for loss in args.losses:
        path = result_path(args.out, loss)
        if path.exists():
            print(f"{loss}: already done with these settings, in {path}")
            continue
        where = f"the Dask cluster at {args.scheduler}" if args.scheduler else f"{args.workers} workers"
        print(f"{loss}: {cases:,} cases x {args.iterations} iterations on {where}", flush=True)
        gradient = (partial(authors_gradient, loss, repairs=tuple(args.repairs)) if args.gradient == "authors"
                    else args.gradient)
        result = regress(protocol.anchors, protocol.targets, loss=loss, iterations=args.iterations,
                         reference_gradient=args.reference_gradient, gradient=gradient,
                         chunk_size=args.chunk_size, workers=args.workers, scheduler=args.scheduler,
                         progress=Progress("cases", loss))
        rate = cases * args.iterations / result.seconds / 1e6
        print(f"{loss}: E(0) = {result.errors[0]:.6g}, E({args.iterations}) = {result.errors[-1]:.6g}, "
              f"mean final IoU {result.mean_iou[-1]:.4f}; {result.seconds:.1f} s, {rate:.1f} M box-iterations/s",
              flush=True)
        per_case = {key: result[key] for key in PER_CASE} if args.keep == "all" else {}
        atomic_write(path, lambda tmp: np.savez_compressed(
            tmp, **summaries(result, masks), **per_case, settings=json.dumps(settings(args, loss))))
        write_summary(args)


# %% Summarise and draw, from the saved files only.
def summaries(result, masks):
    """What summary.csv and the figures need of a loss's result (a dict of its arrays): E(t),
    the mean IoU, the final error summed over each anchor centre's 343 cases, the final error
    in each region of `masks` (see `regions`) and in all, and the shares of final IoU above 0.5 and 0.9."""
    errors, ious = result["final_errors"], result["final_ious"]
    return dict(errors=result["errors"], mean_iou=result["mean_iou"], seconds=result["seconds"], cases=len(errors),
                final_error_per_centre=errors.reshape(-1, CASES_PER_POINT).sum(axis=1), final_error_sum=errors.sum(),
                **{f"final_error_{name}": errors[mask].sum() for name, mask in masks.items()},
                **{f"share_iou_above_{level}": np.mean(ious > level) for level in (0.5, 0.9)})


def load(args):
    """The summaries of every loss run under --out (config.json lists them) that is done,
    without the per-case arrays, which they are drawn from but which need not be kept."""
    config = json.loads((args.out / "config.json").read_text())
    results, masks = {}, None
    for loss in config["losses"]:
        if not result_path(args.out, loss).exists():
            continue
        with np.load(result_path(args.out, loss)) as saved:
            if "final_error_per_centre" in saved.files:
                results[loss] = {key: saved[key] for key in saved.files if key not in PER_CASE}
            else:  # saved before the summaries were: make them from its per-case arrays
                masks = masks or regions(protocol_of(config))
                results[loss] = dict(summaries(saved, masks), settings=saved["settings"])
    return results


def write_summary(args):
    rows = []
    for loss, saved in load(args).items():
        config, total = json.loads(str(saved["settings"])), max(saved["final_error_sum"], 1e-300)
        rows.append({"loss": loss, "cases": int(saved["cases"]), "iterations": config["iterations"],
                     "error_first": f"{saved['errors'][0]:.6g}", "error_final": f"{saved['errors'][-1]:.6g}",
                     "mean_final_iou": f"{saved['mean_iou'][-1]:.6f}",
                     **{f"share_iou_above_{level}": f"{saved[f'share_iou_above_{level}']:.6f}" for level in (0.5, 0.9)},
                     **{f"share_error_{name}": f"{saved[f'final_error_{name}'] / total:.4f}" for name in REGIONS},
                     "seconds": f"{float(saved['seconds']):.1f}", "gradient": gradient_label(config)})

    write_csv(args.out / "summary.csv", SUMMARY, rows)
    return rows


def regions(protocol):
    """Masks over the cases of `protocol`: those that start apart, and those whose anchor centre
    is far from the targets' centre (more than 2) or near the horizontal and vertical lines
    through it (within 15 degrees), where the paper places GIoU's residual error."""
    offset = np.repeat(protocol.points - 10.0, CASES_PER_POINT, axis=0)
    angle = np.degrees(np.arctan2(np.abs(offset[:, 1]), np.abs(offset[:, 0])))
    kind = BOX_KINDS["oriented" if protocol.anchors.shape[-1] == 5 else "aligned"]
    return {"apart_at_start": kind.iou(protocol.anchors, protocol.targets) == 0,
            "beyond_2": np.hypot(*offset.T) > 2, "near_axes": (angle < 15) | (angle > 75)}


def gradient_label(config):
    """How a run's gradient was made: 'autograd', 'autograd, w and h doubled', 'authors + repairs'."""
    label = config.get("gradient", "autograd")
    if config.get("reference_gradient"):
        label += ", w and h doubled"
    if config.get("repairs"):
        label += " + " + " + ".join(config["repairs"]) + " repaired"
    return label


def plot(args):
    results = load(args)
    if not results:
        return
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.subplots()
    for loss, saved in results.items():
        ax.plot(saved["errors"], label=loss, linewidth=1.5)
    ax.set_yscale("log")
    ax.set_xlabel("iteration t")
    oriented = json.loads((args.out / "config.json").read_text()).get("oriented", False)
    ax.set_ylabel("E(t): summed L1 error in (x, y, w, h" + (", wrapped theta)" if oriented else ")"))
    cases = int(next(iter(results.values()))["cases"])
    ax.set_title(f"regression error over {cases:,} cases")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    atomic_write(args.out / "error_curves.png", fig.savefig, dpi=120)

    points = np.load(args.out / "points.npz")["points"]
    per_point = {loss: saved["final_error_per_centre"] for loss, saved in results.items()}
    positive = np.concatenate([v[v > 0] for v in per_point.values()])
    norm = LogNorm(positive.min(), positive.max()) if positive.size else None
    fig = Figure(figsize=(3.6 * len(per_point) + 1, 3.9), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, len(per_point)))
    for ax, (loss, total) in zip(axes, per_point.items()):
        image = ax.scatter(points[:, 0], points[:, 1], c=np.maximum(total, norm.vmin if norm else 0),
                           s=4, norm=norm, cmap="viridis")
        ax.plot([10], [10], "r+", markersize=10)
        ax.set_aspect("equal")
        ax.set_title(f"{loss}: total {total.sum():.4g}")
        ax.set_xlabel("anchor centre x")
    axes[0].set_ylabel("anchor centre y")
    fig.colorbar(image, ax=axes, label="final error, summed over\nthe 343 cases of a centre")
    atomic_write(args.out / "final_error_maps.png", fig.savefig, dpi=120)


def main(argv=None):
    args = parse_args(argv)
    if not args.replot:
        run_interruptible(lambda: run(args), args.out, kept="the losses already finished", resumes=True)
    rows = write_summary(args) if not args.replot else None
    plot(args)
    for row in rows or []:
        print(", ".join(f"{k} {row[k]}" for k in SUMMARY))
    print(f"figures: {args.out / 'error_curves.png'}, {args.out / 'final_error_maps.png'}; "
          f"summary: {args.out / 'summary.csv'}")


if __name__ == "__main__":
    main()
