# `make demo` and `make test` set everything up from nothing: a virtual environment in .venv
# with the package (editable) and the versions pinned in constraints.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test notebooks lab clean

demo: $(INSTALLED)
	$(BIN)/python experiments/stall_vs_converge.py --out results/stall_vs_converge

test: $(INSTALLED)
	$(BIN)/python -m pytest

# Re-execute every notebook in place, so the committed outputs are the current ones
# (without timestamps, so that a re-run changes only what the notebooks show).
notebooks: $(INSTALLED)
	$(BIN)/jupyter nbconvert --to notebook --execute --inplace --ExecutePreprocessor.timeout=600 \
		--ExecutePreprocessor.record_timing=False notebooks/*.ipynb

# JupyterLab on the notebooks, from the same environment (ipywidgets included);
# as root (a container), JupyterLab must be told that is intended.
lab: $(INSTALLED)
	$(BIN)/jupyter lab notebooks $(if $(filter 0,$(shell id -u)),--allow-root)

# sandbox/__init__.py holds the version, which the installed metadata must follow.
$(INSTALLED): pyproject.toml constraints.txt sandbox/__init__.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[test]'
	touch $@

# Only what a rebuild recreates; results/ can hold hours of runs and is never deleted here.
clean:
	rm -rf $(VENV) .pytest_cache .hypothesis build *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
