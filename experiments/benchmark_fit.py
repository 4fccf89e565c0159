"""How fast `fit` moves one box, per step, against a PyTorch eager loop when PyTorch is installed.

`sandbox.fit(start, target, loss="giou")` (gradient descent, 200 steps, the step
schedule) from the headline's east start, with autograd's gradient op by op and with
the fused kernels (`gradient="fused"`); and, when PyTorch happens to be importable (it is
not a dependency), two loops in it, float64 on one thread: the issue's baseline,
``torch.optim.SGD`` with ``MultiStepLR`` (the same schedule) on torchvision's
``generalized_box_iou_loss`` (transcribed below where torchvision is not
importable: it is pure PyTorch), and a lean loop (the GIoU loss of the corners
written out, ``loss.backward()``, an in-place step). Each figure is the median of
--repeats runs; the script prints milliseconds per step and the ratio to the
torchvision loop, and writes ``benchmark.csv`` and ``config.json`` under --out.

    python experiments/benchmark_fit.py --out results/benchmark_fit
"""
# %%
import importlib.util
from pathlib import Path

import sandbox
from sandbox.runs.cli import check_out, experiment_parser, median_run, positive_int
from sandbox.optim.rules import DEFAULT_LEARNING_RATES, step_decay
from sandbox.runs.records import provenance, write_csv, write_json

TARGET = [-1.0, -0.5, 1.0, 0.5]
START = [1.5, -0.75, 2.5, 0.75]  # the headline's east start: 0.5 to the right of the target
COLUMNS = ["engine", "steps", "ms_per_step", "ratio_to_torch", "final_iou"]


def parse_args(argv):
    parser = experiment_parser(__doc__)
    parser.add_argument("--repeats", type=positive_int, default=5, help="runs per figure; the median is reported")
    parser.add_argument("--maxiter", type=positive_int, default=200, help="steps of every run")
    parser.add_argument("--out", type=Path, default=Path("results/benchmark_fit"),
                        help="folder for benchmark.csv and config.json")
    args = parser.parse_args(argv)
    check_out(parser, args.out)
    return args


def sandbox_run(maxiter, **options):
    def run():
        result = sandbox.fit(START, TARGET, loss="giou", maxiter=maxiter, **options)
        return result.nit, float(result.ious[-1])
    return run


def torch_run(maxiter):
    import torch
    torch.set_num_threads(1)
    target = torch.tensor(TARGET, dtype=torch.float64)
    lr = DEFAULT_LEARNING_RATES["gd"]

    def giou_loss(box):
        area = (box[2] - box[0]) * (box[3] - box[1])
        target_area = (target[2] - target[0]) * (target[3] - target[1])
        overlap = ((torch.minimum(box[2], target[2]) - torch.maximum(box[0], target[0])).clamp(min=0)
                   * (torch.minimum(box[3], target[3]) - torch.maximum(box[1], target[1])).clamp(min=0))
        union = area + target_area - overlap
        enclosing = ((torch.maximum(box[2], target[2]) - torch.minimum(box[0], target[0]))
                     * (torch.maximum(box[3], target[3]) - torch.minimum(box[1], target[1])))
        return 1 - overlap / union + (enclosing - union) / enclosing

    def run():
        box = torch.tensor(START, dtype=torch.float64, requires_grad=True)
        for t in range(maxiter):
            loss = giou_loss(box)
            loss.backward()
            with torch.no_grad():
                box -= lr * step_decay(t, maxiter) * box.grad
            box.grad.zero_()
        return maxiter, float(sandbox.iou(box.detach().numpy(), TARGET))
    return run


def torchvision_run(maxiter):
    import torch
    torch.set_num_threads(1)
    try:
        from torchvision.ops import generalized_box_iou_loss
    except Exception as error:  # not installed, or its compiled ops do not match this torch
        print(f"torchvision not importable ({type(error).__name__}): timing its GIoU loss as transcribed here")
        generalized_box_iou_loss = transcribed_torchvision_giou_loss
    target = torch.tensor([TARGET], dtype=torch.float64)
    milestones = [round(m * maxiter) for m in (0.8, 0.9)]  # sandbox.optim.rules.step_decay's

    def run():
        box = torch.tensor([START], dtype=torch.float64, requires_grad=True)
        optimizer = torch.optim.SGD([box], lr=DEFAULT_LEARNING_RATES["gd"])
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=0.1)
        for _ in range(maxiter):
            optimizer.zero_grad()
            generalized_box_iou_loss(box, target, reduction="sum").backward()
            optimizer.step()
            scheduler.step()
        return maxiter, float(sandbox.iou(box.detach().numpy()[0], TARGET))
    return run


def transcribed_torchvision_giou_loss(boxes1, boxes2, reduction="sum", eps=1e-7):
    """torchvision 0.28's ops.generalized_box_iou_loss (BSD-3-Clause), op for op, for reduction='sum'."""
    import torch
    x1, y1, x2, y2 = boxes1.unbind(dim=-1)
    x1g, y1g, x2g, y2g = boxes2.unbind(dim=-1)
    xkis1, ykis1 = torch.max(x1, x1g), torch.max(y1, y1g)
    xkis2, ykis2 = torch.min(x2, x2g), torch.min(y2, y2g)
    intsctk = torch.zeros_like(x1)
    mask = (ykis2 > ykis1) & (xkis2 > xkis1)
    intsctk[mask] = (xkis2[mask] - xkis1[mask]) * (ykis2[mask] - ykis1[mask])
    unionk = (x2 - x1) * (y2 - y1) + (x2g - x1g) * (y2g - y1g) - intsctk
    iouk = intsctk / (unionk + eps)
    area_c = (torch.max(x2, x2g) - torch.min(x1, x1g)) * (torch.max(y2, y2g) - torch.min(y1, y1g))
    return (1 - (iouk - ((area_c - unionk) / (area_c + eps)))).sum()


def main(argv=None):
    args = parse_args(argv)
    engines = {"sandbox (autograd)": sandbox_run(args.maxiter), "sandbox (fused)": sandbox_run(args.maxiter, gradient="fused")}
    if importlib.util.find_spec("torch") is not None:
        engines["torch torchvision"] = torchvision_run(args.maxiter)
        engines["torch lean"] = torch_run(args.maxiter)
    else:
        print("PyTorch is not installed: timing the sandbox alone")
    rows = []
    for engine, run in engines.items():
        seconds, (steps, final_iou) = median_run(run, args.repeats)
        rows.append(dict(engine=engine, steps=steps, ms_per_step=1000 * seconds / steps, final_iou=final_iou))
    torch_ms = next((row["ms_per_step"] for row in rows if row["engine"] == "torch torchvision"), None)
    print(f"{'engine':<20} {'ms/step':>8} {'vs torch':>9} {'final IoU':>10}")
    for row in rows:
        row["ratio_to_torch"] = "" if torch_ms is None else row["ms_per_step"] / torch_ms
        ratio = "" if torch_ms is None else f"{row['ratio_to_torch']:.2f}x"
        print(f"{row['engine']:<20} {row['ms_per_step']:>8.3f} {ratio:>9} {row['final_iou']:>10.4f}")
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "benchmark.csv", COLUMNS,
              [{k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in row.items()} for row in rows])
    write_json(args.out / "config.json", dict(repeats=args.repeats, maxiter=args.maxiter, start=START,
                                              target=TARGET, **provenance()))


if __name__ == "__main__":
    main()
