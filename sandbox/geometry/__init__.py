"""Boxes and the geometry of a pair of boxes: formats, checks, areas, the enclosing box, `Pair`,
the parameterisations an optimiser moves, and the one rule by which names are matched.
"""
from sandbox._lazy import attach

__getattr__, __dir__ = attach(__name__, __path__)
