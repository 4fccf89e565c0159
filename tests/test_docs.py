"""The README and the documentation pages as a reader meets them: short where they should be, every
link resolving, and the lists and numbers written by hand agreeing with the code and the results.

`make docs` builds the site with warnings as errors and checks its links; the Python blocks of
README.md and docs/**/*.md run as doctests; tests/test_package.py checks the loss counts and the
table of losses, tests/test_loss_specs.py runs the own-loss guide, tests/test_sweep.py the example
sweep file. This file checks the rest.
"""
import csv
import importlib.util
import json
import math
import re
import statistics

import pytest

import sandbox
from helpers import ROOT

DOCS = ROOT / "docs"
README = (ROOT / "README.md").read_text()
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_the_readme_is_at_most_250_lines():
    lines = len(README.splitlines())
    assert lines <= 250, f"README.md has {lines} lines: move the detail into a page of docs/ and link to it"


def test_every_link_of_the_readme_resolves():
    # The README is read on its own (on a forge, in a package index), so its links go to files.
    for target in LINK.findall(README):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, fragment = target.partition("#")
        assert (ROOT / path).exists(), f"README.md links to {target}, which does not exist"
        if fragment:
            headings = [_slug(line.lstrip("#")) for line in (ROOT / path).read_text().splitlines()
                        if line.startswith("#")]
            assert fragment in headings, f"README.md links to {target}, but {path} has no such heading"


def _slug(heading):
    """A heading's anchor as MyST and GitHub make it."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_front_page_reaches_the_argument_adding_a_loss_the_sweep_schema_and_fit():
    # Within two clicks of the front page (the site's top bar is one, these links the other).
    front = (DOCS / "index.md").read_text()
    for target in ("argument.md", "development/contributing.md#adding-a-loss-to-the-sandbox",
                   "reference/sweep-file.md", "{py:func}`sandbox.fit`"):
        assert target in front, f"docs/index.md no longer links to {target}"
    contributing = (ROOT / "CONTRIBUTING.md").read_text()
    assert "\n## Adding a loss to the sandbox\n" in contributing, (
        "the front page links to CONTRIBUTING.md's 'Adding a loss to the sandbox': update the link")


def test_the_tutorials_page_lists_every_notebook():
    listed = re.findall(r"\[`(\d\d_\w+\.ipynb)`\]", (DOCS / "tutorials" / "index.md").read_text())
    notebooks = sorted(path.name for path in (ROOT / "notebooks").glob("*.ipynb"))
    assert listed == notebooks, "docs/tutorials/index.md lists the notebooks of notebooks/, in order"


def test_the_layout_names_every_module_of_the_package():
    page = (DOCS / "development" / "index.md").read_text()
    layout = page.split("\n## Layout\n", 1)[1]
    block = re.findall(r"```text\n(.*?)```", layout, re.S)[1]
    named, package = set(), None
    for line in block.splitlines():
        if re.match(r"  \w+/$", line.rstrip()):
            package = line.strip().rstrip("/")
        elif match := re.match(r"( {2,4})(\w+\.py)\b", line):
            named.add(f"{package}/{match.group(2)}" if len(match.group(1)) == 4 else match.group(2))
    modules = {path.relative_to(ROOT / "sandbox").as_posix() for path in (ROOT / "sandbox").rglob("*.py")
               if path.name != "__init__.py"}
    assert named == modules, (f"docs/development/index.md's layout lacks {sorted(modules - named)} and names "
                              f"{sorted(named - modules)}, which sandbox/ does not have")


LEARNING = DOCS / "data" / "learning"
CLAIM = re.compile(r"`(\w+) − (\w+)` in `(\w+)`(?: \((\w+)\))?: ([+-]\d\.\d{3}) \(([+-]\d\.\d{3}) to ([+-]\d\.\d{3})\)")
"""A paired difference as the learning page writes it: `a − b` in `measure` (run): +d (+low to +high); the run
is a folder of docs/data/learning, ``default`` when not named."""


def check_claims(page, pairs_of):
    """Every paired difference `page` quotes (`CLAIM`) against the committed pairs.csv `pairs_of(run)` names,
    run '' when the claim names none; returns how many there were."""
    claims = CLAIM.findall(" ".join((DOCS / "results" / page).read_text().split()))  # claims may wrap lines
    for a, b, measure, run, *numbers in claims:
        with open(pairs_of(run), newline="") as handle:
            rows = [r for r in csv.DictReader(handle) if r["measure"] == measure and {r["loss_a"], r["loss_b"]} == {a, b}]
        assert len(rows) == 1, f"docs/results/{page}: no pair {a}, {b} in {measure} in {pairs_of(run)}"
        difference, low, high = (float(rows[0][key]) for key in ("difference", "low", "high"))
        if rows[0]["loss_a"] != a:
            difference, low, high = -difference, -high, -low
        assert [f"{value:+.3f}" for value in (difference, low, high)] == numbers, (page, a, b, measure, run)
    return len(claims)


def test_every_paired_difference_on_the_learning_page_is_the_committed_runs():
    count = check_claims("learning.md", lambda run: LEARNING / (run or "default") / "pairs.csv")
    assert count >= 20, "the learning page's claims are written as `a − b` in `measure`: +d (+low to +high)"


def test_the_learning_pages_table_is_the_committed_runs():
    page = (DOCS / "results" / "learning.md").read_text()
    assert "```{include} ../data/learning/default/table.md" in page
    with open(LEARNING / "default" / "summary.csv", newline="") as handle:
        summary = list(csv.DictReader(handle))
    table = (LEARNING / "default" / "table.md").read_text()
    for row in summary:
        assert f"| {row['loss']} | {float(row['lr']):.0e} | {float(row['mean_iou']):.3f} ± " in table
    text = " ".join(page.split())
    best = {key: max(float(row[key]) for row in summary) for key in ("large_mean_iou", "large_accuracy_75",
                                                                     "accuracy_75")}
    assert (f"mean IoU of {best['large_mean_iou']:.3f} and an accuracy at 0.75 of {best['large_accuracy_75']:.3f} "
            f"on the large objects, and {best['accuracy_75']:.3f} at 0.75 over all sizes") in text
    late, runs = sum(int(row["not_converged"]) for row in summary), sum(int(row["seeds"]) for row in summary)
    assert f"{late} of the {runs} runs reported have not converged" in text
    with open(LEARNING / "label_noise" / "summary.csv", newline="") as handle:
        noisy = {row["loss"]: float(row["accuracy_mean"]) for row in csv.DictReader(handle)}
    clean = {row["loss"]: float(row["accuracy_mean"]) for row in summary}
    for loss, name in [("l2", "L2"), ("l1", "L1"), ("iou", "IoU"), ("gfl", "GFL")]:  # noise's cost, as written
        assert f"{name} {clean[loss]:.3f} to {noisy[loss]:.3f}" in text, loss


# The which-loss results, committed in docs/data/which_loss/ and made into the table at build time.
WHICH_LOSS = DOCS / "data" / "which_loss"


def _rows(name):
    with open(WHICH_LOSS / name, newline="") as handle:
        return list(csv.DictReader(handle))


def _evidence():
    rows = _rows("evidence.csv")
    for row in rows:
        row["value"] = float(row["value"])
        row["spread"] = float(row["spread"]) if row["spread"] else None
    return rows


def not_yet_in_the_committed_run():
    """The losses the which-loss page says the committed run does not have yet (its "Not yet in this run" line)."""
    text = (DOCS / "results" / "which-loss.md").read_text()
    paragraph = next((part for part in text.split("\n\n") if part.startswith("**Not yet in this run**")), "")
    return re.findall(r"`([a-z0-9_]+)`", paragraph.partition(": ")[2].partition(";")[0])


def test_the_committed_which_loss_results_cover_the_registry():
    # a loss added since the run is there, or the page names it as not yet in the run: never a row made up
    config = json.loads((WHICH_LOSS / "config.json").read_text())
    pending = not_yet_in_the_committed_run()
    assert config["losses"] == [name for name in sandbox.LOSSES if name not in pending], (
        "docs/data/which_loss/ is a run over other losses than the registry's: run "
        "python experiments/which_loss.py --out results/which_loss and copy its evidence.csv, ranking.csv, "
        "rates.csv, summary.txt, table.md and config.json there (or name the losses it lacks in "
        "docs/results/which-loss.md's 'Not yet in this run' line)")
    assert {row["loss"] for row in _rows("ranking.csv")} == set(sandbox.LOSSES) - set(pending)


def test_the_committed_ranking_follows_from_the_committed_evidence():
    from sandbox.runs import evidence

    ranking = _rows("ranking.csv")
    failed = {setting: {row["loss"]: row["reason"] for row in ranking
                        if row["setting"] == setting and row["failed"] == "True"} for setting in evidence.SETTINGS}
    config = json.loads((WHICH_LOSS / "config.json").read_text())
    resolutions = dict(simulation=evidence.simulation_resolution(config["points"] * 343))
    # a run made before pairs.csv was written ranked every setting by the tie tolerance
    pairs = _rows("pairs.csv") if (WHICH_LOSS / "pairs.csv").exists() else None
    again = evidence.rank_settings(_evidence(), failed, resolutions, pairs)

    def ranks(rows):  # NaN (no rank: failed) as None, so that equal rankings compare equal
        return [(r["loss"], r["setting"], None if math.isnan(evidence.rank_of(r)) else evidence.rank_of(r))
                for r in rows]

    assert ranks(again) == ranks(ranking), "the committed ranking.csv is not what its evidence.csv ranks to"


def test_the_committed_table_is_the_one_the_evidence_makes():
    from sandbox.runs import evidence

    ranking = _rows("ranking.csv")
    assert evidence.rank_table(_evidence(), ranking) == (WHICH_LOSS / "table.md").read_text().strip()


@pytest.mark.parametrize("page", ["which-loss.md", "papers.md"])
def test_every_mean_and_spread_the_results_pages_quote_is_in_the_committed_evidence(page):
    from sandbox.runs import evidence

    shown = {evidence.format_value(row["value"], row["spread"]) for row in _evidence() if row["spread"] is not None}
    text = (DOCS / "results" / page).read_text()
    quoted = re.findall(r"\d+\.\d{3} ± \d+\.\d{3}", text)
    assert quoted, f"docs/results/{page} quotes no mean ± std"
    missing = [value for value in quoted if value not in shown]
    assert not missing, (f"docs/results/{page} quotes {missing}, which docs/data/which_loss/evidence.csv does "
                         f"not hold: the page and the committed run disagree")


def test_every_number_the_paper_comparisons_quote_is_in_the_committed_evidence():
    # The column "the sandbox" of docs/results/papers.md: its values to three decimals, its percentages
    # and its "N against M iterations" (to a tenth of E(0)) are all in the run's evidence.
    rows = _evidence()
    text = (DOCS / "results" / "papers.md").read_text()
    column = "\n".join(row.split("|")[2] for row in text.splitlines() if row.startswith("| ") and "---" not in row)
    column = CLAIM.sub("", column)  # the paired differences: checked against pairs.csv below
    values = {f"{number:.3f}" for row in rows for number in (row["value"], row["spread"]) if number is not None}
    percents = {f"{round(100 * row['value'])} %" for row in rows if row["measure"].startswith("share")}
    iterations = {f"{row['value']:.0f}" for row in rows if row["measure"] == "iterations_to_tenth_error"}
    missing = [v for v in re.findall(r"(?<![\d.])\d\.\d{3}(?!\d)", column) if v not in values]
    missing += [v for v in re.findall(r"\d+ %", column) if v not in percents]
    missing += [n for pair in re.findall(r"(\d+) against (\d+) iterations", column) for n in pair
                if n not in iterations]
    assert not missing, f"docs/results/papers.md quotes {missing}, which the committed evidence.csv does not hold"


@pytest.mark.parametrize("page", ["which-loss.md", "papers.md"])
def test_every_paired_difference_the_results_pages_quote_is_in_the_committed_pairs(page):
    def pairs_of(run):
        assert not run, f"docs/results/{page} names a run ({run}): the which-loss pages have one, docs/data/which_loss"
        return WHICH_LOSS / "pairs.csv"
    assert check_claims(page, pairs_of), (f"docs/results/{page} writes its paired differences as `a − b` in "
                                          f"`measure`: +d (+low to +high)")


def test_the_which_loss_page_counts_the_learning_pairs_and_names_the_rates_as_the_committed_run_has_them():
    text = " ".join((DOCS / "results" / "which-loss.md").read_text().split())
    pairs = [r for r in _rows("pairs.csv") if r["setting"] == "learning" and r["measure"] == "accuracy_mean"]
    real = sum(r["tied"] == "False" for r in pairs)
    widths = sorted(float(r["half_width"]) for r in pairs)
    assert (f"{real} of the {len(pairs)} pairs differ beyond their 95 % interval, whose half-width is "
            f"{widths[0]:.3f} to {widths[-1]:.3f} (median {statistics.median(widths):.3f})") in text
    rates = {row["loss"]: float(row["lr"]) for row in _rows("rates.csv") if row["setting"] == "learning"}
    assert {loss: rate for loss, rate in rates.items() if rate != 3e-3} == {
        "log_iou": 1e-3, "bounded_iou": 1e-3, "piou_v2": 3.3e-4, "nwd": 3.3e-4}
    assert ("Four losses chose a rate other than 3e-3: log-IoU and Bounded IoU 1e-3, PIoU v2 and NWD 3.3e-4, "
            "the grid grown down twice") in text
    shared = sum(row["setting"] == "learning" and row["rank"] == "23" for row in _rows("ranking.csv"))
    assert shared == 7 and "Seven losses share rank 23" in text


# The link checker of make docs, on a small site.
def _check_links():
    spec = importlib.util.spec_from_file_location("check_links", DOCS / "check_links.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_link_checker_finds_a_missing_page_and_a_missing_heading(tmp_path):
    (tmp_path / "a.html").write_text('<a href="b.html#here">b</a> <a href="https://example.org/x">x</a>'
                                     '<img src="_images/f.png">')
    (tmp_path / "b.html").write_text('<h1 id="here">b</h1> <a href="a.html">a</a> <a href="#nowhere">?</a>'
                                     '<a href="c.html">c</a>')
    (tmp_path / "_images").mkdir()
    (tmp_path / "_images" / "f.png").write_bytes(b"")
    broken, pages = _check_links().broken_links(tmp_path)
    assert pages == 2
    assert broken == ["b.html: #nowhere: no #nowhere in b.html", "b.html: c.html: no such file"]


# The oriented which-loss run, committed in docs/data/which_loss_oriented/.
WHICH_LOSS_ORIENTED = DOCS / "data" / "which_loss_oriented"


def test_the_committed_oriented_run_covers_every_oriented_loss_and_its_ranking_follows_from_its_evidence():
    from sandbox.losses.oriented import ORIENTED_LOSSES
    from sandbox.runs import evidence
    from sandbox.runs.records import read_csv

    config = json.loads((WHICH_LOSS_ORIENTED / "config.json").read_text())
    assert config["oriented"] is True and config["losses"] == list(ORIENTED_LOSSES), (
        "docs/data/which_loss_oriented/ is a run over other losses than ORIENTED_LOSSES: run python "
        "experiments/which_loss.py --oriented --out results/which_loss_oriented and copy its seven files there")
    ranking, pairs = read_csv(WHICH_LOSS_ORIENTED / "ranking.csv"), read_csv(WHICH_LOSS_ORIENTED / "pairs.csv")
    rows = read_csv(WHICH_LOSS_ORIENTED / "evidence.csv")
    for row in rows:
        row["value"], row["spread"] = float(row["value"]), float(row["spread"]) if row["spread"] else None
    failed = {setting: {r["loss"]: r["reason"] for r in ranking if r["setting"] == setting and r["failed"] == "True"}
              for setting in evidence.SETTINGS}
    resolutions = dict(simulation=evidence.simulation_resolution(config["points"] * 343))
    again = evidence.rank_settings(rows, failed, resolutions, pairs)
    assert [(r["loss"], r["setting"], str(r["rank"] if r["rank"] is not None else "")) for r in again] == [
        (r["loss"], r["setting"], r["rank"]) for r in ranking]
    assert evidence.rank_table(rows, ranking) == (WHICH_LOSS_ORIENTED / "table.md").read_text().strip()
    text = " ".join((DOCS / "results" / "which-loss-oriented.md").read_text().split())
    # the simulation's values as the page lists them, in its order
    simulation = {r["loss"]: r["value"] for r in rows if r["setting"] == "simulation" and r["measure"] == "mean_final_iou"}
    names = dict(rotated_l1="raw L1", rotated_giou="rotated GIoU", gwd="GWD", kfiou="KFIoU", kld="KLD",
                 probiou="ProbIoU")
    assert ", ".join(f"{names[loss]} {simulation[loss]:.3f}" for loss in names) in text


def test_every_paired_difference_the_oriented_page_quotes_is_in_the_committed_pairs():
    def pairs_of(run):
        assert not run, "docs/results/which-loss-oriented.md names a run: it has one, docs/data/which_loss_oriented"
        return WHICH_LOSS_ORIENTED / "pairs.csv"
    assert check_claims("which-loss-oriented.md", pairs_of) >= 5
