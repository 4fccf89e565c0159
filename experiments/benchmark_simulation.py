"""How fast the sandbox runs the DIoU simulation's update, against PyTorch and JAX when installed.

For each loss it times the batched regression of `sandbox.optim.batch.regress` (with the
fused kernel of `sandbox.losses.fused`, which every registry loss has, and with autograd
op by op, printing the kernel's speed-up) on the protocol's cases, and, for IoU,
GIoU, DIoU and CIoU when PyTorch or JAX
happens to be importable (neither is a dependency), the same update written in
them: float64, on the CPU, on as many threads as the sandbox has workers, with
the same (2 - IoU) weighting, step schedule and summed error E(t) at every step.
Each figure is the median of --repeats runs, each in a fresh process, so that the
peak memory of a run can be read off it. Beside the times it prints each run's E(T) and, for the
sandbox, its mean final IoU: the fused kernels and autograd round differently, and a run that
oscillates across a kink amplifies that. It prints a table and writes
``benchmark.json`` and ``benchmark.csv`` under --out.

``--oriented`` times the oriented simulation instead (`sandbox.runs.simulation.oriented_protocol`,
every oriented loss by default, 20 centres: 6,860 cases), on the one engine that runs it,
autograd op by op (the fused kernels, PyTorch and JAX baselines have no oriented losses),
and prints the total for all its losses.

    python experiments/benchmark_simulation.py                       # GIoU, 171,500 cases
    python experiments/benchmark_simulation.py --losses iou giou diou ciou --points 5000
    python experiments/benchmark_simulation.py --losses inner_giou focaler_ciou:d=0.1 --engines sandbox sandbox-autograd
    python experiments/benchmark_simulation.py --oriented --workers 2   # every oriented loss, 6,860 cases
"""
# %%
import argparse
import importlib.util
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from sandbox.optim.batch import BLOCK, regress
from sandbox.runs.cli import add_workers, experiment_parser
from sandbox.losses.fused import FUSED_LOSSES, KINDS, kernel
from sandbox.losses import canonical_loss
from sandbox.runs.records import provenance, write_csv, write_json
from sandbox.losses.oriented import ORIENTED_LOSSES
from sandbox.losses.spec import loss_kind
from sandbox.runs.simulation import diou_protocol, oriented_protocol

ENGINES = ("sandbox", "sandbox-autograd", "torch", "jax")
BASELINE_LOSSES = KINDS  # what `family_loss` writes in PyTorch and JAX
COLUMNS = ["loss", "engine", "cases", "iterations", "workers", "median_seconds", "box_iterations_per_second",
           "ratio_to_sandbox", "fused_speedup", "peak_memory_mib", "error_final", "mean_final_iou", "runs"]


def parse_args(argv):
    parser = experiment_parser(__doc__)
    parser.add_argument("--oriented", action="store_true",
                        help="the oriented simulation (oriented_protocol) with the oriented losses, through autograd")
    parser.add_argument("--losses", nargs="+",
                        help=f"any loss spec (giou, focaler_giou:d=0.1, 5*l1+2*giou, package.module:function); "
                             f"the fused kernels (engine sandbox) exist for every registry loss, at any "
                             f"parameters but CIoU's trade_off_gradient=true ({', '.join(FUSED_LOSSES)}), the "
                             f"PyTorch and JAX baselines for {', '.join(BASELINE_LOSSES)}; an engine that does not "
                             f"apply to a loss is skipped for it (default giou; with --oriented every oriented "
                             f"loss: {', '.join(ORIENTED_LOSSES)})")
    parser.add_argument("--points", type=int, help="anchor centres; 343 cases each (default 500; 20 with --oriented)")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure; the median is reported")
    add_workers(parser)
    parser.add_argument("--chunk-size", type=int, default=None, help=f"a multiple of {BLOCK}; default: the engine's")
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES,
                        help="what to time; torch and jax are skipped when not installed")
    parser.add_argument("--out", type=Path, default=Path("results/benchmark_simulation"))
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # one run, in a fresh process
    args = parser.parse_args(argv)
    if args.losses is None:
        args.losses = list(ORIENTED_LOSSES) if args.oriented else ["giou"]
    if args.points is None:
        args.points = 20 if args.oriented else 500
    if args.measure is None and (args.points < 1 or args.iterations < 1 or args.repeats < 1):
        parser.error("--points, --iterations and --repeats must be at least 1")
    try:
        args.losses = [canonical_loss(loss) for loss in args.losses]
        for loss in args.losses:
            if (loss_kind(loss).size == 5) != args.oriented:
                raise ValueError(f"loss {loss!r} is axis-aligned: --oriented times the oriented losses" if args.oriented
                                 else f"loss {loss!r} is oriented: give --oriented")
    except ValueError as error:
        parser.error(str(error))
    return args


# %% One run of one engine, in its own process.
def measure(spec):
    """Run one engine once; return its seconds, final E(T), the sandbox's mean final IoU and the peak
    memory of its processes.

    The seconds are the whole run for the sandbox, worker processes included, and the
    iterations alone for the baselines: JAX's compilation is left out.
    """
    protocol = (oriented_protocol if spec.get("oriented") else diou_protocol)(spec["points"], seed=0)
    if spec["engine"].startswith("sandbox"):
        began = time.perf_counter()
        result = regress(protocol.anchors, protocol.targets, loss=spec["loss"], iterations=spec["iterations"],
                         gradient="fused" if spec["engine"] == "sandbox" else "autograd", chunk_size=spec["chunk_size"],
                         workers=spec["workers"])
        error_final, seconds = result.errors[-1], time.perf_counter() - began
        mean_final_iou = float(result.mean_iou[-1])
    else:
        (error_final, seconds), mean_final_iou = BASELINES[spec["engine"]](spec, protocol), None
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    workers = spec["workers"] if spec["engine"].startswith("sandbox") and spec["workers"] > 1 else 0
    return dict(seconds=seconds, error_final=float(error_final), mean_final_iou=mean_final_iou,
                peak_memory_mib=(own + workers * children) / 1024)  # ru_maxrss is in KiB on Linux


def schedule(t, iterations):
    return 0.1 * 0.1 ** ((t >= 0.8 * iterations) + (t >= 0.9 * iterations))


def family_loss(xp, kind, theta, target, detach, clamp):
    """The loss `kind` of (cx, cy, w, h) rows `theta` and target corners, in any array library `xp`."""
    cx, cy, w, h = theta[0], theta[1], theta[2], theta[3]
    a, b, c, d = cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2
    x1, x2, y1, y2 = xp.minimum(a, c), xp.maximum(a, c), xp.minimum(b, d), xp.maximum(b, d)
    tx1, ty1, tx2, ty2 = target[0], target[1], target[2], target[3]
    intersection = clamp(xp.minimum(x2, tx2) - xp.maximum(x1, tx1)) * clamp(xp.minimum(y2, ty2) - xp.maximum(y1, ty1))
    union = (x2 - x1) * (y2 - y1) + (tx2 - tx1) * (ty2 - ty1) - intersection
    iou = intersection / union
    loss = 1.0 - iou
    cw, ch = xp.maximum(x2, tx2) - xp.minimum(x1, tx1), xp.maximum(y2, ty2) - xp.minimum(y1, ty1)
    if kind == "giou":
        loss = loss + (cw * ch - union) / (cw * ch)
    if kind in ("diou", "ciou"):
        dx, dy = ((tx1 - x1) + (tx2 - x2)) / 2, ((ty1 - y1) + (ty2 - y2)) / 2
        loss = loss + (dx ** 2 + dy ** 2) / (cw ** 2 + ch ** 2)
    if kind == "ciou":
        v = 4 / np.pi ** 2 * (xp.arctan2(tx2 - tx1, ty2 - ty1) - xp.arctan2(x2 - x1, y2 - y1)) ** 2
        loss = loss + detach(v / ((1.0 - iou) + v)) * v
    return loss, iou


def error(xp, theta, target):
    centre_size = [(target[0] + target[2]) / 2, (target[1] + target[3]) / 2, target[2] - target[0],
                   target[3] - target[1]]
    return sum(xp.sum(xp.abs(theta[i] - centre_size[i])) for i in range(4))


def run_torch(spec, protocol):
    import torch
    torch.set_num_threads(spec["workers"])
    cx, cy = (protocol.anchors[:, :2] + protocol.anchors[:, 2:]).T / 2
    w, h = (protocol.anchors[:, 2:] - protocol.anchors[:, :2]).T
    theta = torch.tensor(np.stack([cx, cy, w, h]), dtype=torch.float64)
    target = torch.tensor(protocol.targets.T.copy(), dtype=torch.float64)
    errors, began = [], time.perf_counter()
    for t in range(spec["iterations"]):
        theta.requires_grad_(True)
        loss, iou = family_loss(torch, spec["loss"], theta, target, torch.Tensor.detach, lambda x: x.clamp(min=0))
        loss.sum().backward()
        with torch.no_grad():
            errors.append(float(error(torch, theta, target)))
            theta = (theta - schedule(t, spec["iterations"]) * (2 - iou) * theta.grad).detach()
    return float(error(torch, theta, target)), time.perf_counter() - began


def run_jax(spec, protocol):
    import jax
    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    def objective(theta, target):
        loss, iou = family_loss(jnp, spec["loss"], theta, target, jax.lax.stop_gradient,
                                lambda x: jnp.maximum(x, 0.0))
        return loss.sum(), iou

    @jax.jit
    def step(theta, target, lr):
        (_, iou), g = jax.value_and_grad(objective, has_aux=True)(theta, target)
        return theta - lr * (2 - iou) * g, error(jnp, theta, target)

    cx, cy = (protocol.anchors[:, :2] + protocol.anchors[:, 2:]).T / 2
    w, h = (protocol.anchors[:, 2:] - protocol.anchors[:, :2]).T
    theta, target = jnp.array(np.stack([cx, cy, w, h])), jnp.array(protocol.targets.T.copy())
    step(theta, target, 0.1)[0].block_until_ready()  # compile before the clock starts
    errors, began = [], time.perf_counter()
    for t in range(spec["iterations"]):
        theta, e = step(theta, target, schedule(t, spec["iterations"]))
        errors.append(e)
    theta.block_until_ready()
    return float(error(jnp, theta, target)), time.perf_counter() - began


BASELINES = {"torch": run_torch, "jax": run_jax}


# %% Repeat, take medians, report.
def available(engine):
    return engine.startswith("sandbox") or importlib.util.find_spec(engine) is not None


def applies(engine, loss):
    """Whether `engine` can run `loss`: the fused engine needs a kernel, the baselines their four losses."""
    if loss_kind(loss).size == 5:
        return engine == "sandbox-autograd"
    if engine == "sandbox":
        return kernel(loss) is not None
    return engine == "sandbox-autograd" or loss in BASELINE_LOSSES


def timed(spec, repeats):
    """Median seconds over `repeats` runs of `spec`, each in a fresh process."""
    runs = []
    for _ in range(repeats):
        done = subprocess.run([sys.executable, __file__, "--measure", json.dumps(spec)], capture_output=True,
                              text=True, check=True)
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return runs


def main(argv=None):
    args = parse_args(argv)
    if args.measure is not None:
        print(json.dumps(measure(json.loads(args.measure))))
        return
    cases = args.points * 343
    engines = [e for e in ENGINES if e in args.engines and available(e)]  # the fused engine first
    skipped = [e for e in args.engines if e not in engines]
    if skipped:
        print(f"not installed, so not timed: {', '.join(skipped)}")
    rows, speedups = [], {}
    print(f"{'oriented simulation' if args.oriented else 'simulation'}: {cases:,} cases x {args.iterations} "
          f"iterations, {args.workers} workers, median of {args.repeats} runs", flush=True)
    unfused = [loss for loss in args.losses if loss_kind(loss).size == 4 and kernel(loss) is None]
    if unfused and "sandbox" in engines:
        print(f"{', '.join(unfused)}: no fused kernel, so the sandbox engine is not timed")
    if {"torch", "jax"} & set(engines) and not set(args.losses) <= set(BASELINE_LOSSES):
        print(f"the PyTorch and JAX baselines exist for {', '.join(BASELINE_LOSSES)} only")
    width = max(len(loss) for loss in args.losses)
    for loss in args.losses:
        reference, seconds_of = None, {}
        for engine in [e for e in engines if applies(e, loss)]:
            spec = dict(engine=engine, loss=loss, points=args.points, iterations=args.iterations,
                        workers=args.workers, chunk_size=args.chunk_size, oriented=args.oriented)
            runs = timed(spec, args.repeats)
            seconds = seconds_of[engine] = statistics.median(r["seconds"] for r in runs)
            rate = cases * args.iterations / seconds
            reference = reference or rate  # the fused engine's, or autograd's where there is no kernel
            speedup = (seconds_of["sandbox-autograd"] / seconds_of["sandbox"]
                       if engine == "sandbox-autograd" and "sandbox" in seconds_of else None)
            rows.append(dict(loss=loss, engine=engine, cases=cases, iterations=args.iterations,
                             workers=args.workers, median_seconds=round(seconds, 3),
                             box_iterations_per_second=round(rate), ratio_to_sandbox=
                             round(rate / reference, 3) if reference else "",
                             fused_speedup="" if speedup is None else round(speedup, 2),
                             peak_memory_mib=round(max(r["peak_memory_mib"] for r in runs)),
                             error_final=f"{runs[0]['error_final']:.6g}",
                             mean_final_iou="" if runs[0]["mean_final_iou"] is None
                             else f"{runs[0]['mean_final_iou']:.6f}",
                             runs=" ".join(f"{r['seconds']:.2f}" for r in runs)))
            print(f"{loss:{width}} {engine:17} {seconds:8.2f} s  {rate / 1e6:6.2f} M box-iterations/s  "
                  f"{rows[-1]['ratio_to_sandbox'] or '':>6}  peak {rows[-1]['peak_memory_mib']:>5} MiB  "
                  f"E({args.iterations}) {rows[-1]['error_final']}  mean IoU {rows[-1]['mean_final_iou'] or '-'}",
                  flush=True)
            if speedup is not None:
                speedups[loss] = speedup
                print(f"{loss:{width}} the fused kernel is {speedup:.2f}x as fast as autograd op by op", flush=True)
    if args.oriented:
        total = sum(row["median_seconds"] for row in rows)
        print(f"every loss: {total:.1f} s for {len(args.losses)} losses x {cases:,} cases x {args.iterations} "
              f"iterations on {args.workers} workers")
    if speedups:
        print(f"\n{'loss':{width}}  fused s  autograd s  speed-up")
        for loss, speedup in speedups.items():
            fused, generic = (next(r["median_seconds"] for r in rows if r["loss"] == loss and r["engine"] == e)
                              for e in ("sandbox", "sandbox-autograd"))
            print(f"{loss:{width}}  {fused:7.2f}  {generic:10.2f}  {speedup:7.2f}x")
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "benchmark.json", dict(rows=rows, points=args.points, oriented=args.oriented,
                                                 **provenance()))

    write_csv(args.out / "benchmark.csv", COLUMNS, rows)
    print(f"written: {args.out / 'benchmark.csv'}")


if __name__ == "__main__":
    main()
