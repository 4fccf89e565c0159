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

The oldest CPU, Prescott's kernels with NumPy's SIMD off, runs every test but the slow
end-to-end ones not marked ``portable`` (``-m "not slow or portable"``: the suite outgrew the
30 minutes CI has on 2 cores); each of the others runs the tests marked ``portable``
(optimisers, networks, Figure 1); a newer core's
kernels than this CPU can run (SkylakeX's need AVX-512) are not run, and the summary says so. Before
each run a child process with the run's environment says which kernels it got
(OpenBLAS's core name from threadpoolctl, NumPy's SIMD targets) and whether a matrix
product and NumPy's arctan then round differently from this machine's own, and whether its
sort orders tied values otherwise (as Nelder-Mead's simplex sort may); a run whose
variables did not take stops the whole command.

Run from the repository root: ``.venv/bin/python tests/portable.py [pytest options]``.
"""
import subprocess
import sys
import time
from pathlib import Path

from sandbox.runs import emulation

ROOT = Path(__file__).resolve().parent.parent


def runs():
    """(name, variables, pytest selection) of each emulated CPU."""
    simd_off = emulation.simd_off()
    return [("Prescott, SIMD off", {"OPENBLAS_CORETYPE": "Prescott", **simd_off}, ["-m", "not slow or portable"]),
            ("Sandybridge", {"OPENBLAS_CORETYPE": "Sandybridge"}, ["-m", "portable"]),
            ("Haswell, 2 threads", {"OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_NUM_THREADS": "2"}, ["-m", "portable"]),
            ("SkylakeX", {"OPENBLAS_CORETYPE": "SkylakeX"}, ["-m", "portable"]),
            ("SIMD off", simd_off, ["-m", "portable"])]


def check_emulation(name, variables, own):
    """One line on the kernels a run gets; SystemExit if a variable did not take."""
    found = emulation.probe(emulation.environment(variables))
    problem = emulation.not_taken(variables, found)
    if problem:
        raise SystemExit(f"test-portable: {problem}")

    def compared(key, other="other bits", same="the same bits"):
        return other if found[key] != own[key] else same
    print(f"== {name}: {emulation.describe(found)}; against this machine's own, a matrix product gives "
          f"{compared('product')}, arctan {compared('arctan')}, a sort of tied values "
          f"{compared('order', 'another order', 'the same order')}", flush=True)


def main(argv=None):
    options = sys.argv[1:] if argv is None else argv
    one_thread = {"OPENBLAS_NUM_THREADS": "1"}  # as `make test` runs the suite (tests/conftest.py)
    own = emulation.probe(emulation.environment(one_thread))
    print(f"this machine: {emulation.describe(own)}", flush=True)
    results = []
    for name, extra, selection in runs():
        variables = {**one_thread, **extra}
        reason = emulation.unavailable(variables)
        if reason:  # an older CPU cannot emulate a newer one
            print(f"== {name}: not run: {reason}", flush=True)
            results.append((name, "not run", None, 0.0))
            continue
        check_emulation(name, variables, own)
        began = time.perf_counter()
        status = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *selection, *options],
                                env=emulation.environment(variables), cwd=ROOT).returncode
        results.append((name, "portable tests" if selection == ["-m", "portable"] else "all but slow", status,
                        time.perf_counter() - began))
    print("\ntest-portable:")
    for name, what, status, seconds in results:
        outcome = "(this CPU lacks its instructions)" if status is None else \
            f"{'passed' if status == 0 else 'FAILED'} in {seconds / 60:.1f} min"
        print(f"  {name:<20} {what:<15} {outcome}")
    return 0 if all(status in (0, None) for _, _, status, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
