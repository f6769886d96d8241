"""Shared fixtures: seeded, offline, tiny."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from pytorch_lightning.callbacks import Callback

os.environ.setdefault("WANDB_MODE", "disabled")
# One torch thread: on a 2-core machine, torch's OpenMP pool and OpenBLAS threads left spinning
# by scipy/scikit-learn otherwise slow the many small operations of these tests several-fold.
torch.set_num_threads(1)

from surrogates.data import CASES, simulate_observed, write_events  # noqa: E402
from surrogates.theory import ProxyTheory, get_theory  # noqa: E402

# Parameter points across the prior box, edges included (never only the seed's truth).
BOX_POINTS = [
    [2.1875, -0.5, 3.0, 1.09375, -0.5, 4.0],
    [0.5, -1.0, 0.0, 2.5, 1.0, 5.0],
    [3.0, 1.0, 5.0, 0.0, -1.0, 0.01],
    [1.0, 0.3, 0.2, 1.0, -0.9, 4.9],
    [0.2, 0.8, 1.5, 2.9, -0.2, 0.5],
]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture
def proxy() -> ProxyTheory:
    return get_theory("proxy")


@pytest.fixture
def obs_file(tmp_path, proxy):
    data = simulate_observed(proxy, proxy.truth.numpy(), CASES["C"], seed=7)
    return write_events(tmp_path / "obs.npz", data, proxy.channels)


def run_cli(main, argv, capsys):
    """Run a CLI main; return (exit status, stdout, stderr)."""
    try:
        status = main(argv)
    except SystemExit as exc:
        status = exc.code
    out = capsys.readouterr()
    return status, out.out, out.err


# ---------------------------------------------------------------- pseudo-experiment studies
FAST_POSTERIOR = {"walkers": 12, "steps": 100, "burn": 20, "check_every": 100, "min_ess": 10}


def _study(out, fitters=("mle", "posterior"), seed=3, truths="prior", config=None):
    """A case-C study in ``out`` with a fast posterior (proxy.yaml's GAN unless ``config``)."""
    from inverse.study import Study
    from inverse.training import load_config

    cfg = config if config is not None else load_config("configs/inverse/proxy.yaml")
    return Study(cfg, "C", truths, tuple(fitters), seed, str(out), dict(FAST_POSTERIOR))


@pytest.fixture
def study():
    """``study(out, fitters, seed, truths, config)`` → an `inverse.study.Study` (case C)."""
    return _study


@pytest.fixture
def records():
    """``records(out)`` → a study folder's experiments without their timings."""
    from inverse.study import read_records

    return lambda out: read_records(out, timings=False)


class InterruptAt(Callback):
    """Stops an outer-GAN run as a kill would (KeyboardInterrupt) once its generator has made
    ``at`` steps: for the tests that resume a run from its checkpoint."""

    def __init__(self, at: int) -> None:
        self.at = at

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if int(pl_module.step_count) == self.at:
            raise KeyboardInterrupt
