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
import difflib


def canonical(name, valid, what, listing="valid:"):
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
    valid = list(valid)
    text = str(name)
    for candidate in valid:
        if candidate.lower() == text.lower():
            return candidate
    close = difflib.get_close_matches(text.lower(), [v.lower() for v in valid], n=1)
    suggestion = f"; did you mean {valid[[v.lower() for v in valid].index(close[0])]!r}?" if close else ""
    raise ValueError(f"unknown {what} {name!r}; {listing} {', '.join(valid)}{suggestion}")
