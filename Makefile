# `make demo` and `make test` set everything up from nothing: a virtual environment in .venv
# with the package (editable) and the versions pinned in constraints.txt.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test clean

demo: $(INSTALLED)
	$(BIN)/python experiments/stall_vs_converge.py --out results/stall_vs_converge

test: $(INSTALLED)
	$(BIN)/python -m pytest

$(INSTALLED): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --constraint constraints.txt --editable '.[test]'
	touch $@

clean:
	rm -rf $(VENV) results
