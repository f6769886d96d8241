"""Same seed, same numbers (surrogate fit, maximum likelihood; the outer GAN's recorded run is in
test_inverse_config.py), and a fit killed mid-way resumes from its last whole checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from surrogates.likelihood import fit_mle
from surrogates.training import fit_surrogate

TINY = {
    "seed_everything": 5,
    "model": {"hidden": [8, 8], "transforms": 1, "bins": 4, "norm_steps": 30},
    "data": {"n_params": 24, "events_per_param": 4, "grid_size": 16, "batch_size": 8},
    "trainer": {"max_epochs": 2, "enable_progress_bar": False},
    "eval": {"held_out": 1, "events": 300, "shift_events": 2000},
}  # fmt: skip


def test_a_seeded_surrogate_fit_gives_identical_weights_and_metrics(tmp_path):
    runs = [fit_surrogate("flow", TINY, out=tmp_path / f"run{i}", progress=False) for i in (0, 1)]
    for key in ("val_loss", "theta_shift_crb", "c2st_auc", "w1", "norm_error"):
        np.testing.assert_array_equal(np.asarray(runs[0][key]), np.asarray(runs[1][key]), key)
    a, b = (torch.load(tmp_path / f"run{i}" / "checkpoints" / "last.ckpt", weights_only=True)
            for i in (0, 1))  # fmt: skip
    for name, tensor in a["state_dict"].items():
        assert torch.equal(tensor, b["state_dict"][name]), name


def test_the_same_data_and_seed_give_the_same_mle(proxy, obs_file):
    from surrogates.data import read_events

    data = read_events(obs_file, proxy)
    first, second = fit_mle(proxy, data, seed=3), fit_mle(proxy, data, seed=3)
    np.testing.assert_array_equal(first.theta, second.theta)
    np.testing.assert_array_equal(first.cov, second.cov)


@pytest.mark.slow
def test_a_fit_killed_mid_way_resumes_from_its_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    args = [sys.executable, "-m", "surrogates.fit", "flow", "--out", str(out)]
    args += ["--model.hidden", "[8, 8]", "--model.transforms", "1", "--model.norm_steps", "0"]
    args += ["--data.n_params", "400", "--data.grid_size", "16", "--eval.shift_events", "0"]
    args += [
        "--eval.held_out",
        "1",
        "--eval.events",
        "300",
        "--trainer.enable_progress_bar",
        "false",
    ]
    env = os.environ | {"WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([*args, "--trainer.max_epochs", "400"], env=env, cwd=tmp_path)
    last = out / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and not (last.is_file() and _epoch(last) >= 2):
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    epoch = _epoch(last)  # loads: a whole checkpoint, whatever the kill interrupted
    assert epoch >= 2, f"no checkpoint of epoch ≥ 2 within the time limit (got {epoch})"
    print("killed at epoch", epoch)
    done = subprocess.run([*args, "--trainer.max_epochs", str(epoch + 3), "--ckpt_path", "last"],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    print("resumed to epoch", _epoch(last))
    assert _epoch(last) > epoch, "the resumed run did not continue past the killed one"
    assert (out / "metrics.json").is_file()


def _epoch(path: Path) -> int:
    return int(torch.load(path, weights_only=True)["epoch"])
