"""Experiments as records: sweep files and their grid (`sweep`), the store that keeps their
results (`store`), the simulation's protocol, the evidence behind the which-loss ranking, the
command-line helpers every experiment shares (`cli`), records and provenance (`records`) and
emulated CPUs (`emulation`).
"""
from sandbox._lazy import attach

__getattr__, __dir__ = attach(__name__, __path__)
