"""Other CPUs on this one: the variables that change how NumPy and SciPy round, and a probe that says they took.

Three things decide the last bits of a result besides the code:

- OpenBLAS's kernels (every matrix product, the quasi-Newton updates, the networks), which
  it picks for the CPU it finds; ``OPENBLAS_CORETYPE`` makes it pick another core's;
- OpenBLAS's threads (``OPENBLAS_NUM_THREADS``), which split the sums of a product;
- NumPy's SIMD dispatch of the elementwise functions (exp, log, arctan, power, ...) and
  of its sort, which orders equal values otherwise; ``NPY_DISABLE_CPU_FEATURES``
  switches it down to NumPy's baseline.

Each must be set before NumPy is imported, so they are set on a child process, and a
child process started with them reports what it got (`probe`). ``make test-portable``
(tests/portable.py) runs the test suite so, and experiments/reproducibility.py every
published figure's command.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from typing import Any, Mapping

VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
             "NPY_DISABLE_CPU_FEATURES")
"""Every variable that changes the kernels or the threads; `environment` starts without them."""

CORE_NAMES = {"Prescott": {"prescott", "katmai"}, "Sandybridge": {"sandybridge"}, "Haswell": {"haswell"},
              "SkylakeX": {"skylakex"}}
"""The names threadpoolctl reports for each core's kernels: OpenBLAS names kernels after the first
core that shares them, so Prescott's are Katmai's in a 64-bit build."""

CORE_FEATURES = {"Sandybridge": "AVX", "Haswell": "AVX2", "SkylakeX": "AVX512_SKX"}
"""The instructions each core's kernels need beyond the x86-64 baseline, as NumPy names them
(``__cpu_features__``): a CPU without them cannot run those kernels (OpenBLAS would stop on an
illegal instruction), so an older CPU emulates older cores only."""

PROBE = """
import hashlib, json, numpy as np, threadpoolctl
try:
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
except ImportError:  # NumPy 1
    from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__
a = np.random.default_rng(0).standard_normal((267, 529))
product, arctan = a @ a.T, np.arctan(np.linspace(-5.0, 5.0, 100_001))
order = np.argsort(np.random.default_rng(0).integers(0, 3, 1000).astype(float))  # ties
import scipy.linalg  # loads SciPy's own OpenBLAS beside NumPy's
pools = [pool for pool in threadpoolctl.threadpool_info() if pool["internal_api"] == "openblas"]
print(json.dumps(dict(blas=sorted({pool["architecture"] for pool in pools}),
                      threads=sorted({pool["num_threads"] for pool in pools}),
                      simd=[t for t in __cpu_dispatch__ if __cpu_features__.get(t)],
                      product=hashlib.sha256(product.tobytes()).hexdigest(),
                      arctan=hashlib.sha256(arctan.tobytes()).hexdigest(),
                      order=hashlib.sha256(order.tobytes()).hexdigest())))
"""


def simd_off() -> dict[str, str]:
    """The variable that switches off every SIMD target of NumPy's dispatch, found on this CPU or not."""
    try:
        from numpy._core._multiarray_umath import __cpu_dispatch__
    except ImportError:  # NumPy 1
        from numpy.core._multiarray_umath import __cpu_dispatch__  # type: ignore[no-redef]
    return {"NPY_DISABLE_CPU_FEATURES": " ".join(__cpu_dispatch__)}


def unavailable(variables: Mapping[str, str]) -> str:
    """Why this CPU cannot run the kernels `variables` ask for (`CORE_FEATURES`), in one line, or ''."""
    core = variables.get("OPENBLAS_CORETYPE", "")
    feature = CORE_FEATURES.get(core)
    if feature is None:
        return ""
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # NumPy 1
        from numpy.core._multiarray_umath import __cpu_features__  # type: ignore[no-redef]
    if __cpu_features__.get(feature):
        return ""
    return f"this CPU lacks {feature}, which {core}'s kernels need"


def environment(variables: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any of `VARIABLES`, plus `variables`: a child's whole environment."""
    return {**{k: v for k, v in os.environ.items() if k not in VARIABLES}, **variables}


def probe(env: Mapping[str, str]) -> dict[str, Any]:
    """What a process started with the environment `env` gets.

    Returns a dict: ``blas``, the OpenBLAS kernels of NumPy's and SciPy's OpenBLAS
    (threadpoolctl's "architecture"); ``threads``, their thread counts; ``simd``,
    the SIMD targets NumPy dispatches to; ``product``, ``arctan`` and ``order``,
    digests of a 267 x 529 matrix product, of arctan on 100,001 points and of the
    order argsort gives 1,000 values with ties, which differ from another
    environment's where its rounding (or its sort) does. RuntimeError if the process fails.
    """
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True)
    if done.returncode == -signal.SIGILL:
        raise RuntimeError("the probe of the emulated CPU stopped on an illegal instruction: this CPU lacks "
                           f"instructions the kernels of {env.get('OPENBLAS_CORETYPE', 'this environment')} need")
    if done.returncode:
        lines = done.stderr.strip().splitlines() or [f"exit status {done.returncode}"]
        raise RuntimeError(f"the probe of the emulated CPU failed: {lines[-1]}")
    return json.loads(done.stdout)


def not_taken(variables: Mapping[str, str], found: Mapping[str, Any]) -> str:
    """One line naming the first of `variables` that did not take in the process that reported `found`, or ''."""
    core = variables.get("OPENBLAS_CORETYPE")
    if core and not all(kernel.lower() in CORE_NAMES[core] for kernel in found["blas"]):
        return (f"OPENBLAS_CORETYPE={core} did not take: OpenBLAS runs {', '.join(found['blas'])} kernels; "
                f"this CPU may lack the instructions of {core}'s kernels")
    threads = variables.get("OPENBLAS_NUM_THREADS")
    if threads and found["threads"] != [int(threads)]:
        return f"OPENBLAS_NUM_THREADS={threads} did not take: OpenBLAS runs {found['threads']} threads"
    if "NPY_DISABLE_CPU_FEATURES" in variables and found["simd"]:
        return f"NPY_DISABLE_CPU_FEATURES did not take: NumPy still dispatches to {' '.join(found['simd'])}"
    return ""


def describe(found: Mapping[str, Any]) -> str:
    """What a probe found, in words: ``OpenBLAS kernels Haswell on 2 thread(s), NumPy SIMD baseline only``."""
    return (f"OpenBLAS kernels {', '.join(found['blas'])} on {', '.join(map(str, found['threads']))} thread(s), "
            f"NumPy SIMD {' '.join(found['simd']) or 'baseline only'}")
