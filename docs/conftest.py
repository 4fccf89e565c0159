"""pytest under docs/: the pages' Python blocks run as doctests (--doctest-glob=*.md); the
build's own code and output are not tests (the extension needs Sphinx, which the test
environment does not install)."""
collect_ignore = ["conf.py", "_ext", "_build"]
