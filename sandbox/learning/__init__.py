"""Learning: synthetic images of one box (`synthetic`), small networks (`networks`), the heads
detectors read their outputs with (`heads`), their training with any loss (`training`) and the
box metrics of a trained model (`metrics`).
"""
from sandbox._lazy import attach

__getattr__, __dir__ = attach(__name__, __path__)
