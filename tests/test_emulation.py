"""sandbox.runs.emulation: the variables of an emulated CPU take, and a variable that did not is named."""
import pytest

from sandbox.runs import emulation


@pytest.mark.slow
def test_the_oldest_kernels_two_threads_and_no_simd_take_in_a_child_process():
    """What make test-portable relies on, on this machine: any x86-64 CPU runs Prescott's kernels."""
    variables = {"OPENBLAS_CORETYPE": "Prescott", "OPENBLAS_NUM_THREADS": "2", **emulation.simd_off()}
    found = emulation.probe(emulation.environment(variables))
    assert emulation.not_taken(variables, found) == ""
    assert found["blas"] == ["Katmai"] and found["threads"] == [2] and found["simd"] == []
    assert emulation.describe(found) == "OpenBLAS kernels Katmai on 2 thread(s), NumPy SIMD baseline only"


@pytest.mark.parametrize("variables, found, words", [
    ({"OPENBLAS_CORETYPE": "Haswell"}, dict(blas=["SkylakeX"], threads=[2], simd=[]),
     "OPENBLAS_CORETYPE=Haswell did not take: OpenBLAS runs SkylakeX kernels"),
    ({"OPENBLAS_NUM_THREADS": "2"}, dict(blas=["SkylakeX"], threads=[1], simd=[]),
     "OPENBLAS_NUM_THREADS=2 did not take: OpenBLAS runs [1] threads"),
    (emulation.simd_off(), dict(blas=["SkylakeX"], threads=[2], simd=["X86_V3"]),
     "NPY_DISABLE_CPU_FEATURES did not take: NumPy still dispatches to X86_V3"),
])
def test_a_variable_that_did_not_take_is_named(variables, found, words):
    assert emulation.not_taken(variables, found).startswith(words)


def test_a_child_environment_drops_the_callers_variables_and_sets_its_own(monkeypatch):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("MKL_NUM_THREADS", "3")
    child = emulation.environment({"OPENBLAS_NUM_THREADS": "1"})
    assert child["OPENBLAS_NUM_THREADS"] == "1" and child["PATH"]
    assert "OPENBLAS_CORETYPE" not in child and "MKL_NUM_THREADS" not in child


def test_a_probe_that_fails_says_why_in_one_line(monkeypatch):
    monkeypatch.setattr(emulation, "PROBE", "raise SystemExit('no threadpoolctl here')")
    with pytest.raises(RuntimeError, match="the probe of the emulated CPU failed: no threadpoolctl here$"):
        emulation.probe(emulation.environment({}))


def test_a_newer_cores_kernels_are_unavailable_exactly_where_the_cpu_lacks_their_instructions():
    try:
        from numpy._core._multiarray_umath import __cpu_features__
    except ImportError:  # NumPy 1
        from numpy.core._multiarray_umath import __cpu_features__
    for core, feature in emulation.CORE_FEATURES.items():
        reason = emulation.unavailable({"OPENBLAS_CORETYPE": core})
        assert reason == ("" if __cpu_features__[feature] else f"this CPU lacks {feature}, which {core}'s kernels need")
    assert emulation.unavailable({"OPENBLAS_CORETYPE": "Prescott"}) == ""  # every x86-64 CPU runs it
    assert emulation.unavailable({}) == ""


def test_a_probe_stopped_by_an_illegal_instruction_says_so(monkeypatch):
    monkeypatch.setattr(emulation, "PROBE", "import os, signal; os.kill(os.getpid(), signal.SIGILL)")
    with pytest.raises(RuntimeError, match="stopped on an illegal instruction: this CPU lacks instructions the "
                                           "kernels of SkylakeX need"):
        emulation.probe(emulation.environment({"OPENBLAS_CORETYPE": "SkylakeX"}))
