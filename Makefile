# Two commands from a fresh machine: `make demo` (set up, run the main job) and `make test`.
PYTHON ?= python3
VENV ?= .venv
# The CPU wheel on these machines; elsewhere pass your own, e.g. make TORCH="torch==2.5.1".
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin

.PHONY: setup demo demo-mle demo-blackbox dashboard test test-slow bench lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

# The main job: case-B events at the truth → outer GAN through the shipped flow surrogate → θ ± σ.
demo: setup
	$(BIN)/python -m surrogates.simulate observed --case B --seed 1 --out runs/demo/observed.npz
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m inverse.fit --config configs/inverse/proxy.yaml \
		--events runs/demo/observed.npz --source flow-zuko --out runs/demo/flow-zuko

# The statistical yardstick: maximum likelihood for cases A, B, C.
demo-mle: setup
	$(BIN)/python -m inverse.closure --config configs/closure/proxy.yaml --out runs/closure

# A theory with no gradients: training set → VAIM surrogate → outer GAN.
demo-blackbox: setup
	OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} $(BIN)/python -m inverse.blackbox \
		--config configs/inverse/blackbox.yaml --out runs/blackbox

# The local comparison page of every run under runs/ (open runs/dashboard/index.html).
dashboard: setup
	$(BIN)/python -m surrogates.dashboard runs --out runs/dashboard

# Two pytest-xdist workers, one file each at a time (a file's module fixtures are built once), one
# thread per worker: the suite takes about half the time on 2 cores. TEST_WORKERS=0 runs serially.
TEST_WORKERS ?= 2
TEST_ENV := WANDB_MODE=disabled OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

test: setup
	$(TEST_ENV) $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=15

test-slow: setup
	$(TEST_ENV) $(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile -m slow

bench: setup
	$(BIN)/python benchmarks/sampling.py

lint: setup
	$(BIN)/ruff check surrogates inverse tests benchmarks
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) runs build dist *.egg-info
