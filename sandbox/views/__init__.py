"""Figures: trajectories, animations and result plots (`plotting`), the interactive loss
explorer (`explorer`), and the norms-against-IoU figures of the GIoU paper (`norms`).
"""
from sandbox._lazy import attach

__getattr__, __dir__ = attach(__name__, __path__)
