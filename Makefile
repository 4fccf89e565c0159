# `make demo` and `make test` set everything up from nothing: a virtual environment in .venv
# with the package (editable) and the versions pinned in constraints.txt; `make test` also
# installs Debian's Chromium and ChromeDriver for the explorer's browser test where it can,
# and checks the package's types (`make typecheck`) before the tests run.
# `make docs` builds the documentation site into docs/_build/html from the same .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
DOCS_INSTALLED := $(VENV)/.docs-installed
DOCS_PORT ?= 8000

.PHONY: demo test typecheck test-portable browser notebooks lab docs docs-serve clean

demo: $(INSTALLED)
	$(BIN)/python experiments/stall_vs_converge.py --out results/stall_vs_converge

test: $(INSTALLED) browser typecheck
	$(BIN)/python -m pytest

# mypy on the package: pyproject.toml's [tool.mypy] says which modules must be annotated throughout.
typecheck: $(INSTALLED)
	$(BIN)/python -m mypy

# The suite again under emulated CPUs: OpenBLAS's kernels for older and newer cores, and NumPy
# with its SIMD dispatch off (tests/portable.py says which runs where, and checks each took).
test-portable: $(INSTALLED) browser
	$(BIN)/python tests/portable.py

# The explorer's browser test drives Debian's Chromium through its ChromeDriver. Installed here
# as root or with sudo that asks no password; otherwise one line says what to install, before
# any test runs (the test never skips: without a browser it fails).
browser:
	@if { command -v chromium || command -v chromium-browser; } >/dev/null 2>&1 && \
	    { command -v chromedriver || test -x /usr/bin/chromedriver; } >/dev/null 2>&1; then :; \
	elif ! command -v apt-get >/dev/null 2>&1; then \
	    echo "The explorer's browser test needs Chromium and ChromeDriver, and this machine has no apt-get: install chromium and chromedriver, put both on PATH, then run make test again" >&2; exit 1; \
	else \
	    if [ "$$(id -u)" = 0 ]; then sudo=; elif sudo -n true 2>/dev/null; then sudo="sudo -n"; else \
	        echo "The explorer's browser test needs Debian's Chromium and its driver: run 'sudo apt-get install chromium chromium-driver', then make test again" >&2; exit 1; fi; \
	    echo "Installing Debian's chromium and chromium-driver for the explorer's browser test"; \
	    $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq chromium chromium-driver >/dev/null \
	        || { echo "apt-get could not install chromium and chromium-driver (see above): install them, then run make test again" >&2; exit 1; }; \
	fi

# Re-execute every notebook in place, so the committed outputs are the current ones
# (without timestamps, so that a re-run changes only what the notebooks show).
notebooks: $(INSTALLED)
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=600 \
		--ExecutePreprocessor.record_timing=False notebooks/*.ipynb

# JupyterLab on the notebooks, from the same environment (ipywidgets included);
# as root (a container), JupyterLab must be told that is intended.
lab: $(INSTALLED)
	$(BIN)/jupyter lab notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

# The documentation site, with warnings as errors (and nitpicky: every cross-reference must
# resolve), then every link between its pages, fragment included, checked in the built HTML.
# No external link is fetched: there is no network in CI. The notebooks are rendered with their
# committed outputs, not executed (`make notebooks` refreshes those).
docs: $(DOCS_INSTALLED)
	rm -rf docs/_build/html docs/_build/doctrees
	$(BIN)/sphinx-build -W --keep-going -n -q -b html -d docs/_build/doctrees docs docs/_build/html
	$(BIN)/python docs/check_links.py docs/_build/html

# The built site on http://localhost:$(DOCS_PORT)/ (DOCS_PORT=... for another port).
docs-serve: docs
	$(BIN)/python -m http.server $(DOCS_PORT) --bind 127.0.0.1 --directory docs/_build/html

# The docs extra on top of the test environment, in a stamp of its own, so that `make test` and
# `make demo` do not pay for Sphinx.
$(DOCS_INSTALLED): $(INSTALLED)
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[docs]'
	touch $@

# sandbox/__init__.py holds the version, which the installed metadata must follow.
$(INSTALLED): pyproject.toml constraints.txt sandbox/__init__.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[test]'
	touch $@

# Only what a rebuild recreates; results/ can hold hours of runs and is never deleted here.
clean:
	rm -rf $(VENV) .pytest_cache .hypothesis .mypy_cache build *.egg-info docs/_build
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
