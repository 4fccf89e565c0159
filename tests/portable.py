"""`make test-portable`: the test suite under emulated CPUs, on one machine.

A result that may depend on the machine must not be pinned by a test, so the suite runs
again where the arithmetic underneath changes:

- OpenBLAS's kernels for older and newer x86-64 cores (``OPENBLAS_CORETYPE``): every
  BLAS call of NumPy and SciPy (quasi-Newton updates, ``matmul``, the networks) then
  rounds as it would on that core;
- NumPy with its SIMD dispatch switched off down to its baseline
  (``NPY_DISABLE_CPU_FEATURES``): the elementwise transcendental functions (exp, log,
  arctan, ...) then round as they would on a CPU without AVX2 or AVX-512;
- two BLAS threads instead of the suite's one (tests/conftest.py), which splits the
  sums of a matrix product differently.

The oldest CPU, Prescott's kernels with NumPy's SIMD off, runs the whole suite; each of
the others runs the tests marked ``portable`` (optimisers, networks, Figure 1). Before
each run a child process with the run's environment says which kernels it got
(OpenBLAS's core name from threadpoolctl, NumPy's SIMD targets) and whether a matrix
product and NumPy's arctan then round differently from this machine's own; a run whose
variables did not take stops the whole command.

Run from the repository root: ``.venv/bin/python tests/portable.py [pytest options]``.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# OpenBLAS names a core's kernels after the first core that shares them (threadpoolctl's
# "architecture"): Prescott's are Katmai's in a 64-bit build.
CORE_NAMES = {"Prescott": {"prescott", "katmai"}, "Sandybridge": {"sandybridge"}, "Haswell": {"haswell"},
              "SkylakeX": {"skylakex"}}

PROBE = """
import hashlib, json, numpy as np, threadpoolctl
from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__
a = np.random.default_rng(0).standard_normal((267, 529))
product, arctan = a @ a.T, np.arctan(np.linspace(-5.0, 5.0, 100_001))
import scipy.linalg  # loads SciPy's own OpenBLAS beside NumPy's
pools = [pool for pool in threadpoolctl.threadpool_info() if pool["internal_api"] == "openblas"]
print(json.dumps(dict(blas=sorted({pool["architecture"] for pool in pools}),
                      threads=sorted({pool["num_threads"] for pool in pools}),
                      simd=[t for t in __cpu_dispatch__ if __cpu_features__.get(t)],
                      product=hashlib.sha256(product.tobytes()).hexdigest(),
                      arctan=hashlib.sha256(arctan.tobytes()).hexdigest())))
"""


def probe(environment):
    """What kernels a process started with `environment` gets: OpenBLAS's cores, NumPy's SIMD targets."""
    done = subprocess.run([sys.executable, "-c", PROBE], env=environment, capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout)


def simd_targets():
    """NumPy's SIMD dispatch targets, found or not: the value that switches every one of them off."""
    from numpy._core._multiarray_umath import __cpu_dispatch__
    return " ".join(__cpu_dispatch__)


def runs():
    """(name, extra environment, pytest selection) of each emulated CPU."""
    simd_off = {"NPY_DISABLE_CPU_FEATURES": simd_targets()}
    return [("Prescott, SIMD off", {"OPENBLAS_CORETYPE": "Prescott", **simd_off}, []),
            ("Sandybridge", {"OPENBLAS_CORETYPE": "Sandybridge"}, ["-m", "portable"]),
            ("Haswell, 2 threads", {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_NUM_THREADS": "2"}, ["-m", "portable"]),
            ("SkylakeX", {"OPENBLAS_CORETYPE": "SkylakeX"}, ["-m", "portable"]),
            ("SIMD off", simd_off, ["-m", "portable"])]


def check_emulation(name, environment, extra, own):
    """One line on the kernels a run gets; SystemExit if a variable did not take."""
    found = probe(environment)
    core = extra.get("OPENBLAS_CORETYPE")
    if core and not all(name.lower() in CORE_NAMES[core] for name in found["blas"]):
        raise SystemExit(f"test-portable: OPENBLAS_CORETYPE={core} did not take: OpenBLAS runs {found['blas']}; "
                         f"this CPU may lack the instructions of {core}'s kernels")
    if found["threads"] != [int(environment["OPENBLAS_NUM_THREADS"])]:
        raise SystemExit(f"test-portable: OPENBLAS_NUM_THREADS={environment['OPENBLAS_NUM_THREADS']} did not take: "
                         f"OpenBLAS runs {found['threads']} threads")
    if "NPY_DISABLE_CPU_FEATURES" in extra and found["simd"]:
        raise SystemExit(f"test-portable: NPY_DISABLE_CPU_FEATURES did not take: NumPy still dispatches to "
                         f"{' '.join(found['simd'])}")
    def compared(key):
        return "other bits" if found[key] != own[key] else "the same bits"
    print(f"== {name}: OpenBLAS kernels {', '.join(found['blas'])} on {found['threads'][0]} thread(s), NumPy SIMD "
          f"{' '.join(found['simd']) or 'baseline only'}; against this machine's own, a matrix product "
          f"gives {compared('product')}, arctan {compared('arctan')}", flush=True)


def main(argv=None):
    options = sys.argv[1:] if argv is None else argv
    # as `make test` runs the suite: this machine's kernels, one BLAS thread (tests/conftest.py)
    clean = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES")}
    clean["OPENBLAS_NUM_THREADS"] = "1"
    own = probe(clean)
    print(f"this machine: OpenBLAS kernels {', '.join(own['blas'])} on {own['threads'][0]} thread(s), NumPy SIMD "
          f"{' '.join(own['simd'])}", flush=True)
    results = []
    for name, extra, selection in runs():
        environment = {**clean, **extra}
        check_emulation(name, environment, extra, own)
        began = time.perf_counter()
        status = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *selection, *options],
                                env=environment, cwd=ROOT).returncode
        results.append((name, "whole suite" if not selection else "portable tests", status,
                        time.perf_counter() - began))
    print("\ntest-portable:")
    for name, what, status, seconds in results:
        print(f"  {name:<20} {what:<15} {'passed' if status == 0 else 'FAILED'} in {seconds / 60:.1f} min")
    return 0 if all(status == 0 for _, _, status, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
