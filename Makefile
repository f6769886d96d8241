# Two commands from a fresh machine: `make demo` (set up, run the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
# The CPU wheel on these machines; elsewhere pass your own, e.g. make TORCH="torch==2.5.1".
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: setup demo test test-slow bench lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

demo: setup
	$(BIN)/python -m inverse.closure --config configs/closure/proxy.yaml --out runs/closure

test: setup
	WANDB_MODE=disabled $(BIN)/python -m pytest -q

test-slow: setup
	WANDB_MODE=disabled $(BIN)/python -m pytest -q -m slow

bench: setup
	$(BIN)/python benchmarks/sampling.py

lint: setup
	$(BIN)/ruff check surrogates inverse tests benchmarks

clean:
	rm -rf $(VENV) runs
