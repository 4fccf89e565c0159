"""How far the simulation's mean final IoU moves with the last bit: the rounding it is ranked with.

For each loss, `sandbox.runs.simulation.rounding_sensitivity` runs the DIoU protocol
(--points anchor centres, 343 cases each) on one gradient backend (--gradient; fused by
default, the backend which_loss.py's simulation runs), then on the anchors moved by one ulp
(``np.nextafter(anchors, inf)``), then, for the record, on the other backend. A run that
oscillates across a kink amplifies the last bit, so the mean final IoU moves a little; the
largest move under the ulp shift, over the losses, is what
`sandbox.runs.evidence.ROUNDING_MEASURED` holds, so that `simulation_resolution` ties losses
whose difference is no more than that. Losses are always compared on one backend, so the
difference between the backends is printed as a fact, not absorbed. Under --out:

- ``rounding.csv``: a row per loss: its mean final IoU on each run, the ulp change and the
  backends' difference, the cases whose final IoU moved by more than 1e-6 under each, seconds;
- ``config.json``: the arguments, the two largest changes and their losses, package versions.

    python experiments/simulation_rounding.py --workers 2            # all 34 losses, 171,500 cases
    python experiments/simulation_rounding.py --losses giou alpha_ciou --points 20
"""
# %%
import time
from pathlib import Path

import sandbox
from sandbox.losses.fused import kernel
from sandbox.optim.settings import GRADIENTS
from sandbox.runs import cli
from sandbox.runs.cli import add_workers, check_out, experiment_parser, positive_int, run_interruptible
from sandbox.runs.records import provenance, write_csv, write_json
from sandbox.runs.simulation import CASES_PER_POINT, diou_protocol, rounding_sensitivity

COLUMNS = ["loss", "gradient", "cases", "iterations", "mean_final_iou", "mean_final_iou_shifted", "ulp_change",
           "cases_moved_by_ulp", "other_gradient", "mean_final_iou_other", "backend_difference",
           "cases_moved_by_backend", "seconds"]
SETTINGS = ("losses", "points", "iterations", "seed", "gradient")


def parse_args(argv):
    parser = experiment_parser(__doc__)
    parser.add_argument("--losses", nargs="+",
                        help=f"losses with a fused kernel (every registry loss, with any parameters but CIoU's "
                             f"trade_off_gradient=true), so that both backends exist; default all "
                             f"{len(sandbox.LOSSES)} of the registry")
    parser.add_argument("--points", type=positive_int, default=500,
                        help=f"anchor centres, {CASES_PER_POINT} cases each")
    parser.add_argument("--iterations", type=positive_int, default=200)
    parser.add_argument("--seed", type=int, default=0, help="seed of the anchor centres")
    parser.add_argument("--gradient", choices=GRADIENTS, default="fused",
                        help="the backend whose rounding is measured; the other is run for the record")
    add_workers(parser)
    parser.add_argument("--out", type=Path, default=Path("results/simulation_rounding"),
                        help="folder for rounding.csv and config.json")
    args = parser.parse_args(argv)
    check_out(parser, args.out)
    try:
        args.losses = [sandbox.canonical_loss(loss) for loss in args.losses or sandbox.LOSSES]
        if len(set(args.losses)) < len(args.losses):
            raise ValueError("--losses names a loss more than once")
        unfused = [loss for loss in args.losses if kernel(loss) is None]
        if unfused:
            raise ValueError(f"{', '.join(unfused)}: no fused kernel, so no two backends to compare; give "
                             f"registry losses (CIoU's trade_off_gradient=true has none either)")
        if args.seed < 0:
            raise ValueError(f"--seed must be a whole number >= 0; got {args.seed}")
        cli.refuse_other_settings(args.out, settings(args))
    except ValueError as error:
        parser.error(str(error))
    return args


def settings(args):
    return {key: getattr(args, key) for key in SETTINGS}


# %% Each loss three times: on the anchors, one ulp up, on the other backend.
def run(args):
    protocol = diou_protocol(args.points, seed=args.seed)
    cases = len(protocol.anchors)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "config.json", dict(settings(args), **provenance()))
    print(f"{len(args.losses)} losses, {cases:,} cases x {args.iterations} iterations, on {args.gradient} "
          f"(and the other backend for the record), "
          f"{args.workers} worker process{'es' * (args.workers > 1)}")
    width = max(len(loss) for loss in args.losses)
    print(f"{'loss':{width}}  mean final IoU  ulp change (cases)  backends' difference (cases)")
    rows, other = [], next(backend for backend in GRADIENTS if backend != args.gradient)
    for loss in args.losses:
        began = time.perf_counter()
        found = rounding_sensitivity(protocol, loss, args.gradient, args.iterations, args.workers)
        rows.append(dict(loss=loss, gradient=args.gradient, cases=cases, iterations=args.iterations,
                         other_gradient=other, seconds=round(time.perf_counter() - began, 2), **found))
        print(f"{loss:{width}}  {found['mean_final_iou']:14.6f}  {found['ulp_change']:10.2e} "
              f"({found['cases_moved_by_ulp']:5})  {found['backend_difference']:12.2e} "
              f"({found['cases_moved_by_backend']:5})", flush=True)
        write_csv(args.out / "rounding.csv", COLUMNS, rows)  # after each loss, so an interruption keeps it
    largest = {measure: max(rows, key=lambda row: row[measure]) for measure in ("ulp_change", "backend_difference")}
    measured = {f"largest_{measure}": dict(value=float(row[measure]), loss=row["loss"])
                for measure, row in largest.items()}
    write_json(args.out / "config.json", dict(settings(args), cases=cases, measured=measured, **provenance()))
    ulp, backends = largest["ulp_change"], largest["backend_difference"]
    print(f"largest change under a one-ulp shift on {args.gradient}: {ulp['ulp_change']:.2e} ({ulp['loss']}); "
          f"largest difference between the backends: {backends['backend_difference']:.2e} ({backends['loss']}); "
          f"on {cases:,} cases")
    print(f"written: {args.out / 'rounding.csv'}")


def main(argv=None):
    args = parse_args(argv)
    run_interruptible(lambda: run(args), args.out)


if __name__ == "__main__":
    main()
