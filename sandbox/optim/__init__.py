"""Optimisation: update rules and schedules (`rules`), the first-order engine for one box or a
million (`engine`), `fit` and `fit_many` (`fitting`), the DIoU simulation's `regress` (`batch`),
start boxes (`starts`), a run's settings resolved once (`settings`) and the line-search study.
"""
from sandbox._lazy import attach

__getattr__, __dir__ = attach(__name__, __path__)
