"""The argument for oriented boxes: rotated IoU stalls, the angle has a boundary, the Gaussian losses answer both.

Oriented boxes are (cx, cy, w, h, theta) (`sandbox.geometry.oriented`). Four parts,
each with its figure, each fitting or evaluating the losses of
`sandbox.losses.oriented.ORIENTED_LOSSES` through the library (`sandbox.fit_many` with
``param="xywha"``, the five raw parameters):

a) ``oriented_stall.png`` (and ``oriented_stall.gif``): from starts that do not overlap the target,
   one per direction, rotated IoU stays where it starts (IoU 0, gradient 0) while
   rotated GIoU and the Gaussian losses bring the box home: the boxes visited, drawn
   as rotated rectangles, and IoU against iteration;
b) ``oriented_boundary.png``: a target whose angle lies just inside the boundary of
   mmrotate's le90 range, a start just across it (the same rectangle is 2 x margin
   away the short way). L1 on the raw parameters turns the box the long way round;
   the Gaussian losses, which see the rectangle and not its five numbers, turn it
   the short way. Beside it, each loss as the predicted box turns from -pi to pi,
   everything else the target's: raw L1 is a V with its zero at theta only, L1 on
   the le90 forms jumps at the boundary, the Gaussian losses are smooth and
   pi-periodic;
c) ``oriented_kfiou_centre.png``: the pull on the centre of KFIoU's overlap term alone and
   of KFIoU with its centre term, as the predicted box moves away from the target,
   and the runs from a start apart;
d) ``oriented_gallery.png``: every oriented loss over the plane of predicted centres (the
   target fixed, the predicted box the target's shape) and along theta.

It writes under --out: ``config.json`` (the arguments, resolved, and package
versions), ``runs/<part>_<loss>.npz`` (each loss's runs: ``boxes`` (starts, steps + 1,
5) and ``ious`` (starts, steps + 1), NaN after a run ended, ``outcomes``, ``starts``),
``theta.npz``, ``kfiou_centre.npz``, ``gallery.npz``, ``results.csv`` (one row per run)
and the figures, drawn from those files alone (--replot redraws them). Each file is
written whole when its part is done, so an interrupted run keeps every finished one,
and the same command goes on from there; a run with other settings under the same
--out is refused.

Run from the repository root::

    python experiments/oriented_boxes.py --out results/oriented_boxes
    python experiments/oriented_boxes.py --quick --out results/oriented_quick
    python experiments/oriented_boxes.py --replot --out results/oriented_boxes
"""
# %%
import json
import math
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from matplotlib.animation import PillowWriter
from matplotlib.figure import Figure
from PIL import Image, ImageSequence

import sandbox
from sandbox.geometry.oriented import canonical, check_oriented_boxes
from sandbox.geometry.polygons import rotated_iou
from sandbox.losses.oriented import ORIENTED_LOSSES
from sandbox.optim.rules import RULES
from sandbox.optim.settings import method_name
from sandbox.optim.starts import direction_name
from sandbox.runs.cli import check_out, experiment_parser, refuse_other_settings, run_interruptible
from sandbox.runs.records import atomic_write, provenance, read_csv, write_csv, write_json
from sandbox.views.oriented import (centre_gradient, loss_along_theta, loss_over_centres, plot_loss_along_theta,
                                    plot_loss_over_centres)
from sandbox.views.plotting import animate_trajectories, plot_metric, plot_target, plot_trajectory

HOME = sandbox.HOME_IOU
CONFIG, RESULTS = "config.json", "results.csv"
FIGURES = dict(stall="oriented_stall.png", boundary="oriented_boundary.png", kfiou="oriented_kfiou_centre.png",
               gallery="oriented_gallery.png")
KFIOU = ["kfiou", "kfiou:centre=False"]  # part c: KFIoU as mmrotate ships it, and its overlap term alone
ANIMATION = "oriented_stall.gif"
GIF_FPS, GIF_PAUSE, GIF_DPI = 10, 2.0, 72
COLUMNS = ["part", "loss", "start", "start_box", "final_box", "final_iou", "outcome", "nit", "turned"]
QUICK = dict(starts=3, resolution=21, theta_points=121, gif_frames=12)
FULL = dict(starts=8, resolution=61, theta_points=721, gif_frames=40)
# The settings that make the results: a saved run with other values of these is refused.
SETTINGS = ["stall_losses", "boundary_losses", "gallery_losses", "target", "start_size", "start_theta", "gap",
            "starts", "boundary_target", "boundary_start", "method", "lr", "maxiter", "extent", "resolution",
            "theta_points", "gif_frames"]


def parse_args(argv):
    parser = experiment_parser(__doc__)
    parser.add_argument("--out", type=Path, default=Path("results/oriented_boxes"),
                        help="folder for config.json, runs/, the .npz files, results.csv and the figures")
    parser.add_argument("--stall-losses", nargs="+",
                        default=["rotated_iou", "rotated_giou", "gwd", "kld", "kfiou", "probiou"],
                        help="losses of part a, from non-overlapping starts")
    parser.add_argument("--boundary-losses", nargs="+", default=["rotated_l1", "gwd", "kld", "kfiou", "probiou"],
                        help="losses of part b, across the angle boundary")
    parser.add_argument("--gallery-losses", nargs="+", default=None,
                        help="losses of part d and of the loss along theta; by default every oriented loss "
                             "the registry holds at the time of the run")
    parser.add_argument("--target", nargs=5, type=float, default=[0.0, 0.0, 2.0, 1.0, 0.3],
                        metavar=("CX", "CY", "W", "H", "THETA"), help="target of parts a, c, d; theta in radians")
    parser.add_argument("--start-size", nargs=2, type=float, default=[1.0, 1.5], metavar=("W", "H"),
                        help="width and height of part a's starts")
    parser.add_argument("--start-theta", type=float, default=-0.4, help="angle of part a's starts, radians")
    parser.add_argument("--gap", type=float, default=0.5,
                        help="free space between start and target in part a, along the axis that separates them most")
    parser.add_argument("--starts", type=int, default=None,
                        help=f"directions of part a's starts (default {FULL['starts']}, {QUICK['starts']} with --quick)")
    parser.add_argument("--boundary-target", nargs=5, type=float, default=[0.0, 0.0, 2.0, 1.0, 1.45],
                        metavar=("CX", "CY", "W", "H", "THETA"),
                        help="target of part b: theta just below pi/2, le90's boundary")
    parser.add_argument("--boundary-start", nargs=5, type=float, default=[0.4, -0.3, 2.0, 1.0, -1.45],
                        metavar=("CX", "CY", "W", "H", "THETA"), help="start of part b, across the boundary")
    parser.add_argument("--method", default="adam",
                        help=f"optimiser of every run: one of {', '.join(RULES)}")
    parser.add_argument("--lr", type=float, default=None, help="learning rate of gd, momentum, adam "
                                                               "(by default the method's own)")
    parser.add_argument("--maxiter", type=int, default=300, help="iteration limit of every run")
    parser.add_argument("--extent", type=float, default=4.0, help="half-width of part d's grid of centres")
    parser.add_argument("--resolution", type=int, default=None,
                        help=f"grid points per axis in part d (default {FULL['resolution']}, "
                             f"{QUICK['resolution']} with --quick)")
    parser.add_argument("--theta-points", type=int, default=None,
                        help=f"angles from -pi to pi for the loss along theta (default {FULL['theta_points']}, "
                             f"{QUICK['theta_points']} with --quick)")
    parser.add_argument("--gif-frames", type=int, default=None,
                        help=f"frames of {ANIMATION} (default {FULL['gif_frames']}, {QUICK['gif_frames']} with --quick)")
    parser.add_argument("--quick", action="store_true", help=f"a small preset for tests: {QUICK}")
    parser.add_argument("--no-animation", action="store_true", help=f"do not write {ANIMATION}")
    parser.add_argument("--replot", action="store_true", help="only redraw the figures from what --out holds")
    args = parser.parse_args(argv)
    check_out(parser, args.out, args.replot, needs=(CONFIG, RESULTS))
    if not args.replot:
        try:
            resolve(args)
            refuse_other_settings(args.out, settings(args))
        except ValueError as error:
            parser.error(str(error))
    return args


def resolve(args):
    """Fill the defaults the preset decides and check every argument; ValueError naming a bad one."""
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.gallery_losses is None:
        args.gallery_losses = list(ORIENTED_LOSSES)
    for flag in ("stall_losses", "boundary_losses", "gallery_losses"):
        for spec in getattr(args, flag):
            loss_function(spec)  # an unknown name stops here, before any work
    for name in ("target", "boundary_target", "boundary_start"):
        check_oriented_boxes(getattr(args, name), name.replace("_", " "), positive_size=name != "boundary_start")
    args.method = method_name(args.method)
    if args.method not in RULES:
        raise ValueError(f"--method must be one of {', '.join(RULES)}, which move every start "
                         f"at once; got {args.method}")
    for flag, values in [("--gap", [args.gap]), ("--start-size", args.start_size), ("--extent", [args.extent]),
                         ("--lr", [] if args.lr is None else [args.lr])]:
        if not all(v > 0 and math.isfinite(v) for v in values):
            raise ValueError(f"{flag} must be a positive number; got {' '.join(map(str, values))}")
    for flag, value, least in [("--starts", args.starts, 1), ("--maxiter", args.maxiter, 1),
                               ("--resolution", args.resolution, 2), ("--theta-points", args.theta_points, 3),
                               ("--gif-frames", args.gif_frames, 1)]:
        if value < least:
            raise ValueError(f"{flag} must be at least {least}; got {value}")


def settings(args):
    return {key: getattr(args, key) for key in SETTINGS}


def loss_function(spec):
    """The oriented loss `spec` names (``'kfiou:centre=False'``), as a function ``loss(pred, target)``;
    ValueError for an unknown name or parameter."""
    return sandbox.get_loss(spec)


# %% Runs: every loss from every start, through sandbox.fit on the five raw parameters.
def fit_all(args, spec, starts, target):
    """Fit every start with `spec` at once (`sandbox.fit_many`, each box exactly as `sandbox.fit` moves it):
    boxes (n, maxiter + 1, 5) and ious (n, maxiter + 1), NaN after a run's last step; outcomes and nit (n,)."""
    options = {} if args.lr is None else dict(lr=args.lr)
    result = sandbox.fit_many(starts, target, loss=spec, method=args.method, param="xywha", maxiter=args.maxiter,
                              **options)
    return dict(boxes=np.asarray(result.boxes, dtype=float), ious=np.asarray(result.ious, dtype=float),
                outcomes=np.asarray(result.outcome).astype(str), nit=np.asarray(result.nit),
                starts=np.asarray(starts, dtype=float))


def run_file(out, part, spec):
    return out / "runs" / f"{part}_{spec.replace(':', '_').replace('=', '-')}.npz"


def run_parts(args):
    """Every part whose files --out does not hold yet; each file written whole when done."""
    (args.out / "runs").mkdir(parents=True, exist_ok=True)
    write_json(args.out / CONFIG, dict(settings(args), **provenance()))
    target = np.array(args.target)
    starts = sandbox.non_overlapping_starts(target, args.gap, args.starts, args.start_size, theta=args.start_theta)
    labels = [direction_name(360.0 * i / args.starts) for i in range(args.starts)]
    jobs = [("stall", spec, starts, labels, target) for spec in args.stall_losses]
    jobs += [("boundary", spec, np.array([args.boundary_start]), ["across"], np.array(args.boundary_target))
             for spec in args.boundary_losses]
    jobs += [("kfiou", spec, starts[:1], labels[:1], target) for spec in KFIOU]  # from the first start
    for part, spec, boxes, names, goal in jobs:
        path = run_file(args.out, part, spec)
        if not path.exists():
            saved = dict(fit_all(args, spec, boxes, goal), labels=np.array(names), target=goal)
            atomic_write(path, lambda tmp: np.savez_compressed(tmp, **saved))
            print(f"{part} {spec}: {summary(saved)}", flush=True)
    thetas = np.linspace(-np.pi, np.pi, args.theta_points)
    if not (args.out / "theta.npz").exists():
        boundary = np.array(args.boundary_target)
        curves = [loss_along_theta(loss_function(spec), boundary, thetas) for spec in args.gallery_losses]
        # what a detector that decodes its angle into le90 sees: L1 on the canonical forms, which jumps
        le90 = loss_along_theta(lambda p, t: ORIENTED_LOSSES["rotated_l1"](canonical(p, "le90"), canonical(t, "le90")),
                                boundary, thetas)
        atomic_write(args.out / "theta.npz", lambda tmp: np.savez_compressed(
            tmp, thetas=thetas, specs=np.array(args.gallery_losses), values=np.array(curves), le90_l1=le90,
            target=boundary))
    if not (args.out / "kfiou_centre.npz").exists():
        # the pull on the centre as the box of the first start's shape slides away from the target along x
        distances = np.linspace(0.0, args.extent, args.theta_points)
        boxes = np.stack([target[0] + distances, np.full_like(distances, target[1]),
                          *(np.full_like(distances, v) for v in starts[0][2:])], axis=-1)
        pulls = [np.hypot(*centre_gradient(loss_function(spec), boxes, target).T) for spec in KFIOU]
        ious = rotated_iou(boxes, target)
        atomic_write(args.out / "kfiou_centre.npz", lambda tmp: np.savez_compressed(
            tmp, distances=distances, specs=np.array(KFIOU), pulls=np.array(pulls), ious=ious, target=target))
    if not (args.out / "gallery.npz").exists():
        xs = target[0] + np.linspace(-args.extent, args.extent, args.resolution)
        ys = target[1] + np.linspace(-args.extent, args.extent, args.resolution)
        made = [loss_over_centres(loss_function(spec), target, xs, ys) for spec in args.gallery_losses]
        along = [loss_along_theta(loss_function(spec), target, thetas) for spec in args.gallery_losses]
        atomic_write(args.out / "gallery.npz", lambda tmp: np.savez_compressed(
            tmp, xs=xs, ys=ys, specs=np.array(args.gallery_losses), values=np.array([v for v, _ in made]),
            gradients=np.array([g for _, g in made]), thetas=thetas, along=np.array(along), target=target))
    write_results(args.out)


def summary(saved):
    final = [ious[np.isfinite(ious)][-1] for ious in saved["ious"]]
    return (f"{sum(f >= HOME for f in final)}/{len(final)} home, final IoU {min(final):.4f} to {max(final):.4f}; "
            + ", ".join(f"{n} {o}" for o, n in Counter(saved["outcomes"]).most_common()))


def saved_runs(out, part):
    """Each saved loss of `part` by spec: its npz as a dict, in the order of config.json."""
    config = json.loads((out / CONFIG).read_text())
    runs = {}
    for spec in KFIOU if part == "kfiou" else config[f"{part}_losses"]:
        with np.load(run_file(out, part, spec)) as saved:
            runs[spec] = dict(saved)
    return runs


def last(rows):
    """The last finite row of each run: (n, steps, k) -> (n, k), or (n, steps) -> (n,)."""
    finite = np.isfinite(rows) if rows.ndim == 2 else np.isfinite(rows).all(axis=-1)
    ends = finite.shape[1] - 1 - np.argmax(finite[:, ::-1], axis=1)
    return rows[np.arange(len(rows)), ends]


def write_results(out):
    rows = []
    for part in ("stall", "boundary", "kfiou"):
        for spec, saved in saved_runs(out, part).items():
            finals, final_ious = last(saved["boxes"]), last(saved["ious"])
            for i, label in enumerate(saved["labels"]):
                rows.append(dict(part=part, loss=spec, start=str(label), start_box=json.dumps(saved["starts"][i].tolist()),
                                 final_box=json.dumps(finals[i].tolist()),
                                 final_iou=float(final_ious[i]), outcome=str(saved["outcomes"][i]),
                                 nit=int(saved["nit"][i]), turned=float(finals[i][4] - saved["starts"][i][4])))
    write_csv(out / RESULTS, COLUMNS, rows)


# %% Draw, from the saved files only.
def plot(out, animate=True):
    plot_stall(out)
    plot_boundary(out)
    plot_kfiou(out)
    plot_gallery(out)
    if animate:
        animate_stall(out)


def plot_stall(out):
    runs = saved_runs(out, "stall")
    specs = list(runs)
    first = next(iter(runs.values()))
    fig = Figure(figsize=(3.4 * len(specs), 7.0), layout="constrained")
    axes = fig.subplot_mosaic([specs, ["history"] * len(specs)], height_ratios=[1.3, 1])
    histories, labels, colors = [], [], []
    for k, (spec, saved) in enumerate(runs.items()):
        for i in range(len(saved["boxes"])):
            steps = np.isfinite(saved["ious"][i])
            plot_trajectory(axes[spec], saved["boxes"][i][steps], color=f"C{i % 10}", max_boxes=12)
            histories.append(saved["ious"][i][steps])
            labels.append(spec)
            colors.append(f"C{k % 10}")
        plot_target(axes[spec], first["target"])
        final = last(saved["ious"])
        axes[spec].set_title(f"{spec}: {np.sum(final >= HOME)}/{len(final)} home\n"
                             f"{Counter(saved['outcomes']).most_common(1)[0][0].replace('_', ' ')}", fontsize=10)
    plot_metric(axes["history"], histories, labels=labels, colors=colors, alpha=0.7)
    axes["history"].axhline(HOME, color="0.5", linestyle=":", linewidth=1)
    axes["history"].set_ylim(-0.03, 1.03)
    axes["history"].legend(title="loss", loc="center right")
    home = {spec: f"{np.sum(last(saved['ious']) >= HOME)}/{len(saved['ious'])}" for spec, saved in runs.items()}
    fig.suptitle(f"Oriented boxes from {len(first['boxes'])} non-overlapping starts, brought home (IoU ≥ {HOME}): "
                 + ", ".join(f"{spec} {n}" for spec, n in home.items())
                 + "\n(o start, * end, tick: the side the box's first axis points to; grey: target)")
    atomic_write(out / FIGURES["stall"], fig.savefig, dpi=100)


def animate_stall(out):
    runs = saved_runs(out, "stall")
    frames = json.loads((out / CONFIG).read_text())["gif_frames"]
    specs = list(runs)
    chosen, panels, labels, colors = [], [], [], []
    for k, (spec, saved) in enumerate(runs.items()):
        for i in range(len(saved["boxes"])):
            steps = np.isfinite(saved["ious"][i])
            chosen.append(SimpleNamespace(boxes=saved["boxes"][i][steps], ious=saved["ious"][i][steps]))
            panels.append(spec)
            labels.append(spec)
            colors.append(f"C{k % 10}")
    longest = max(len(run.boxes) for run in chosen)
    animation = animate_trajectories(chosen, runs[specs[0]]["target"], labels=labels, colors=colors, panels=panels,
                                     step=max(1, -(-(longest - 1) // frames)), trail=2, interval=1000 / GIF_FPS)
    animation.figure.suptitle("oriented boxes from non-overlapping starts (grey: target)")
    atomic_write(out / ANIMATION, lambda tmp: save_gif(animation, tmp))


def save_gif(animation, path):
    """`animation` as a GIF through matplotlib's Pillow writer, its last frame held `GIF_PAUSE` seconds."""
    animation.save(path, writer=PillowWriter(fps=GIF_FPS), dpi=GIF_DPI)
    with Image.open(path) as gif:
        frames = [frame.copy() for frame in ImageSequence.Iterator(gif)]
    durations = [round(1000 / GIF_FPS)] * (len(frames) - 1) + [round(1000 * GIF_PAUSE)]
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0)


def plot_boundary(out):
    runs = saved_runs(out, "boundary")
    with np.load(out / "theta.npz") as saved:
        theta = dict(saved)
    specs = list(runs)
    target = theta["target"]
    fig = Figure(figsize=(max(3.0 * len(specs), 11.0), 7.5), layout="constrained")
    axes = fig.subplot_mosaic([specs, ["angle"] * (len(specs) // 2) + ["theta"] * (len(specs) - len(specs) // 2)],
                              height_ratios=[1, 1.1])
    for k, (spec, saved) in enumerate(runs.items()):
        steps = np.isfinite(saved["ious"][0])
        boxes = saved["boxes"][0][steps]
        plot_trajectory(axes[spec], boxes, target=target, color=f"C{k % 10}", max_boxes=12)
        turned = boxes[-1, 4] - boxes[0, 4]
        axes[spec].set_title(f"{spec}: turned {turned:+.2f} rad\nfinal IoU {saved['ious'][0][steps][-1]:.3f}",
                             fontsize=10)
        axes["angle"].plot(np.arange(len(boxes)), boxes[:, 4], color=f"C{k % 10}", label=spec)
    for same, style in [(target[4], "-"), (target[4] - np.pi, "--")]:
        axes["angle"].axhline(same, color="black", linewidth=1.0, linestyle=style)
    axes["angle"].set_xlabel("iteration")
    axes["angle"].set_ylabel("predicted θ (rad)")
    axes["angle"].set_title("the angle of each run (solid: the target's θ; dashed: θ − π, the same rectangle)",
                            fontsize=10)
    axes["angle"].legend(fontsize=8)
    curves = {str(s): v for s, v in zip(theta["specs"], theta["values"])}
    curves["rotated_l1 on le90 forms"] = theta["le90_l1"]
    plot_loss_along_theta(axes["theta"], theta["thetas"], curves, float(target[4]))
    axes["theta"].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    axes["theta"].set_title("each loss as the predicted box turns (solid: target θ; dashed: θ ± π)", fontsize=10)
    fig.suptitle(f"Across the angle boundary: target θ = {target[4]:.2f}, start θ = "
                 f"{next(iter(runs.values()))['starts'][0][4]:.2f}, the same rectangle "
                 f"{abs(np.pi - abs(target[4] - next(iter(runs.values()))['starts'][0][4])):.2f} rad away the short way")
    atomic_write(out / FIGURES["boundary"], fig.savefig, dpi=100)


def plot_kfiou(out):
    runs = saved_runs(out, "kfiou")
    with np.load(out / "kfiou_centre.npz") as saved:
        pull = dict(saved)
    fig = Figure(figsize=(13.0, 4.6), layout="constrained")
    pull_ax, *run_axes = fig.subplots(1, 1 + len(runs), width_ratios=[1.4] + [1] * len(runs))
    apart = pull["ious"] == 0
    for k, (spec, values) in enumerate(zip(pull["specs"], pull["pulls"])):
        pull_ax.plot(pull["distances"], values, color=f"C{k}", label=f"{spec}: largest {values.max():.3g}, "
                                                                      f"{np.sum(values == 0)} of {len(values)} exactly 0")
    if apart.any():
        pull_ax.axvspan(pull["distances"][apart].min(), pull["distances"].max(), color="0.92", zorder=0,
                        label="boxes apart (rotated IoU 0)")
    pull_ax.set_xlabel("distance of the predicted centre from the target's, along x")
    pull_ax.set_ylabel("|d loss / d (cx, cy)|")
    pull_ax.legend(fontsize=8)
    pull_ax.set_title("the pull on the centre", fontsize=10)
    for k, (ax, (spec, saved)) in enumerate(zip(run_axes, runs.items())):
        steps = np.isfinite(saved["ious"][0])
        boxes = saved["boxes"][0][steps]
        plot_trajectory(ax, boxes, target=saved["target"], color=f"C{k}", max_boxes=12)
        moved = float(np.hypot(*(boxes[-1, :2] - boxes[0, :2])))
        ax.set_title(f"{spec}: centre moved {moved:.3g}\nfinal IoU {saved['ious'][0][steps][-1]:.3f}", fontsize=10)
    fig.suptitle("KFIoU with and without its centre term: the pull on the centre as the predicted box slides away "
                 "(left),\nand the runs from a start apart (right)")
    atomic_write(out / FIGURES["kfiou"], fig.savefig, dpi=100)


def summary_table(rows):
    """Per part and loss: runs, runs home, lowest and highest final IoU, the angle turned, outcomes."""
    groups = {}
    for row in rows:
        groups.setdefault((row["part"], row["loss"]), []).append(row)
    lines = [f"{'part':<9} {'loss':<20} {'home':>6} {'min IoU':>8} {'max IoU':>8} {'turned':>15}  outcomes"]
    for (part, loss), group in groups.items():
        ious = np.array([float(r["final_iou"]) for r in group])
        turned = np.array([float(r["turned"]) for r in group])
        lines.append(f"{part:<9} {loss:<20} {np.sum(ious >= HOME):>3}/{len(ious):<2} {ious.min():>8.4f} "
                     f"{ious.max():>8.4f} {turned.min():>+7.2f}..{turned.max():>+6.2f}  "
                     + ", ".join(f"{n} {o}" for o, n in Counter(r["outcome"] for r in group).most_common()))
    return "\n".join(lines)


def plot_gallery(out):
    with np.load(out / "gallery.npz") as saved:
        gallery = dict(saved)
    specs = [str(s) for s in gallery["specs"]]
    fig = Figure(figsize=(3.3 * len(specs), 6.6), layout="constrained")
    axes = fig.subplots(2, len(specs), squeeze=False, height_ratios=[1.2, 1])
    for k, spec in enumerate(specs):
        plot_loss_over_centres(axes[0, k], gallery["xs"], gallery["ys"], gallery["values"][k],
                               gallery["gradients"][k], gallery["target"])
        axes[0, k].set_title(spec)
        plot_loss_along_theta(axes[1, k], gallery["thetas"], {spec: gallery["along"][k]},
                              float(gallery["target"][4]), colors=[f"C{k % 10}"], normalise=False)
    fig.suptitle("Each oriented loss over the predicted centre (top: the predicted box has the target's shape and "
                 "angle, as the blue one in the corner; grey: the loss, light low; red arrows: downhill in the centre; "
                 "black dots: no pull at all)\nand along θ (bottom: the target turned, solid: its θ, dashed: θ ± π)")
    atomic_write(out / FIGURES["gallery"], fig.savefig, dpi=90)


def main(argv=None):
    args = parse_args(argv)
    if not args.replot:
        run_interruptible(lambda: run_parts(args), args.out, kept="the finished parts' files", resumes=True)
    plot(args.out, animate=not args.no_animation)
    print(summary_table(read_csv(args.out / RESULTS)))
    print(f"figures: {', '.join(str(args.out / f) for f in FIGURES.values())}; runs: {args.out / RESULTS}")


if __name__ == "__main__":
    main()
