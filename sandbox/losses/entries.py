"""The catalogue of losses: one `LossEntry` per loss of `sandbox.LOSSES`, for the docs and the tables.

Every field is read from where the loss is written, so a table or a page made from
`catalogue()` cannot go stale: the name, function and claims from its registration
(`sandbox.losses.formulas.registered`), the formula and the paper from the first line of
its docstring (``'DIoU loss, 1 - IoU + rho^2 / c^2 (Zheng et al., AAAI 2020, arXiv
1911.08287).'``: the paper in parentheses at the end), the parameters and their defaults
from its signature, and whether it has a fused kernel from `sandbox.losses.fused.HEADS`.
"""
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sandbox.losses.formulas import CLAIMS, IOU_BASED, LOSSES, VARIANTS, unchecked
from sandbox.losses.fused import HEADS

__all__ = ["LossEntry", "catalogue"]


@dataclass(frozen=True)
class LossEntry:
    """One loss of `sandbox.LOSSES`, as the docs' loss reference and the loss tables show it.

    Attributes
    ----------
    name : str
        Its name in `sandbox.LOSSES` and in every spec.
    function : callable
        ``sandbox.LOSSES[name]``, whose docstring says the rest.
    summary : str
        The first line of its docstring.
    formula : str
        The summary without its paper: ``'DIoU loss, 1 - IoU + rho^2 / c^2'``.
    paper : str
        The paper, as the summary cites it: ``'Zheng et al., AAAI 2020, arXiv 1911.08287'``.
    arxiv : str or None
        The paper's arXiv identifier, ``'1911.08287'``, where the citation gives one.
    parameters : dict
        Each parameter after ``pred, target``, with its default, in the signature's order.
    fused : bool
        Whether it has a fused kernel (`sandbox.losses.fused`); without one the engine
        differentiates it with autograd.
    base, variant : str or None
        For an Inner or Focaler variant, the IoU-based loss it modifies and its kind
        (``'inner'``, ``'focaler'``); None for the others.
    variants : tuple of str
        For an IoU-based loss, the names of its variants (``('inner_giou', 'focaler_giou')``).
    positive, symmetric, scale_invariant : bool
        What it claims at its default parameters (`sandbox.losses.formulas.Claims`).
    """

    name: str
    function: Callable[..., Any]
    summary: str
    formula: str
    paper: str
    arxiv: str | None
    parameters: dict[str, Any]
    fused: bool
    base: str | None
    variant: str | None
    variants: tuple[str, ...]
    positive: bool
    symmetric: bool
    scale_invariant: bool


def catalogue() -> list[LossEntry]:
    """Every loss of `sandbox.LOSSES`, in its order, as a `LossEntry`.

    Examples
    --------
    >>> entry = {entry.name: entry for entry in catalogue()}["mpdiou"]
    >>> entry.paper, entry.arxiv, entry.parameters, entry.fused
    ('Ma and Xu, arXiv 2307.07662', '2307.07662', {'frame_width': 10.0, 'frame_height': 10.0}, True)
    >>> entry.variants, entry.scale_invariant
    (('inner_mpdiou', 'focaler_mpdiou'), False)
    """
    return [_entry(name, function) for name, function in LOSSES.items()]


def _entry(name, function):
    summary = (inspect.getdoc(function) or "").partition("\n")[0].strip()
    formula, paper = _formula_and_paper(summary)
    arxiv = re.search(r"arXiv (\d{4}\.\d{4,5})", paper)
    signature = list(inspect.signature(unchecked(function)).parameters.values())[2:]  # after pred, target
    base, variant = next(((base, kind) for kind in VARIANTS for base in IOU_BASED if name == f"{kind}_{base}"),
                         (None, None))
    claims = CLAIMS[name]
    return LossEntry(name=name, function=function, summary=summary, formula=formula, paper=paper,
                     arxiv=arxiv.group(1) if arxiv else None,
                     parameters={p.name: p.default for p in signature}, fused=name in HEADS, base=base,
                     variant=variant, variants=tuple(f"{kind}_{name}" for kind in VARIANTS if name in IOU_BASED),
                     positive=claims.positive, symmetric=claims.symmetric, scale_invariant=claims.scale_invariant)


def _formula_and_paper(summary):
    """``'What it is, formula (Paper).'`` -> ``('What it is, formula', 'Paper')``; the paper is ''
    where the line does not end in parentheses."""
    text = summary.rstrip(".").rstrip()
    if not text.endswith(")"):
        return text, ""
    depth = 0
    for i in range(len(text) - 1, -1, -1):  # back to the parenthesis that opens the last group
        depth += {")": 1, "(": -1}.get(text[i], 0)
        if depth == 0:
            return text[:i].rstrip(" ,:;"), text[i + 1:-1].strip()
    return text, ""
