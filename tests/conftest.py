import matplotlib
from hypothesis import settings

matplotlib.use("Agg")
# Reproducible property tests: the same examples on every run and every machine.
settings.register_profile("sandbox", derandomize=True, deadline=None, max_examples=200)
settings.load_profile("sandbox")
