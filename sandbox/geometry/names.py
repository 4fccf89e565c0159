"""One rule for every name a user types: losses, methods, parameterisations, schedules.

Names match whatever their case (``GIoU``, ``bfgs``, ``XYXY``) and come back in the
sandbox's own spelling; an unknown name is an error that lists the valid ones and
suggests the closest.

    >>> canonical("Cxcywh", ["xyxy", "xywh", "cxcywh", "log"], "parameterisation")
    'cxcywh'
    >>> canonical("gioux", ["iou", "giou"], "loss", "valid losses are")
    Traceback (most recent call last):
    ...
    ValueError: unknown loss 'gioux'; valid losses are iou, giou; did you mean 'giou'?
"""
from __future__ import annotations

import difflib
from typing import Iterable


def canonical(name: object, valid: Iterable[str], what: str, listing: str = "valid:") -> str:
    """The name in `valid` that `name` spells in any case; ValueError naming the valid ones otherwise.

    Parameters
    ----------
    name : str
        What the user wrote.
    valid : iterable of str
        The names, in the sandbox's spelling.
    what : str
        What the names are, for the message: ``'loss'``, ``'method'``.
    listing : str
        The words before the list of valid names in the message.
    """
    names = list(valid)
    text = str(name)
    for candidate in names:
        if candidate.lower() == text.lower():
            return candidate
    close = difflib.get_close_matches(text.lower(), [v.lower() for v in names], n=1)
    suggestion = f"; did you mean {names[[v.lower() for v in names].index(close[0])]!r}?" if close else ""
    raise ValueError(f"unknown {what} {name!r}; {listing} {', '.join(names)}{suggestion}")
