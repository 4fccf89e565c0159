import os

import matplotlib
from hypothesis import settings
from threadpoolctl import threadpool_limits

matplotlib.use("Agg")
# Reproducible property tests: the same examples on every run and every machine.
settings.register_profile("sandbox", derandomize=True, deadline=None, max_examples=200)
settings.load_profile("sandbox")
# One BLAS thread per process unless OPENBLAS_NUM_THREADS says otherwise: on 2 cores the networks
# train about four times faster without OpenBLAS's threads competing with the worker processes. The
# variable reaches the processes the tests start (experiments, notebooks, spawned workers); numpy
# may already be loaded here, so threadpoolctl sets this process's own. `make test-portable` runs
# one emulated CPU with two threads, so no test may depend on the number.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
threadpool_limits(int(os.environ["OPENBLAS_NUM_THREADS"]), user_api="blas")
