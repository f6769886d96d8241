"""DeepHyper search over surrogate hyperparameters: real tiny trainings, resume, best config."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from surrogates.data import simulate_training
from surrogates.errors import InputError
from surrogates.models import FAMILIES
from surrogates.theory import get_theory

pytest.importorskip("deephyper")
from surrogates.ensemble import Ensemble  # noqa: E402
from surrogates.hpo import SPACE, _overrides, build_problem, run_search  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--model.norm_steps", "50"]


@pytest.mark.parametrize("family", FAMILIES)
def test_search_space_per_family(family):
    problem = build_problem(family)
    names = set(problem.hyperparameter_names)
    assert {"lr", "weight_decay", "batch_size", "scheduler", "layers", "width"} <= names
    assert ("backend" in names) == (family == "flow") and ("bins" in names) == (family == "flow")
    assert names == {n for n, (_, _, fams) in SPACE.items() if family in fams}
    options = _overrides(family, problem.default_configuration)
    assert options[options.index("--model.hidden") + 1].startswith("[")


def test_search_resumes_and_its_best_config_trains(tmp_path):
    data = simulate_training(get_theory("proxy"), 64, 4, seed=1, grid_size=32)
    data.save(tmp_path / "train.npz")
    out = tmp_path / "search"
    os.environ["OMP_NUM_THREADS"] = "1"
    kwargs = dict(data=str(tmp_path / "train.npz"), epochs=1, workers=2, held_out=1)
    kwargs |= dict(shift_events=2000, events=500, extra=TINY, backends=["zuko"])
    first = run_search("flow", out, 3, **kwargs)
    assert first["evaluations"] == 3
    with pytest.raises(InputError, match="--resume"):
        run_search("flow", out, 4, **kwargs)
    second = run_search("flow", out, 4, resume=True, **kwargs)
    assert second["evaluations"] == 4 and second["failed"] == 0
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and len({r["job_id"] for r in rows}) == 4
    # the first three were kept, not rerun: their run directories predate the resumed ones
    assert len(list((out / "evals").iterdir())) == 4
    scores = [float(r["objective"]) for r in rows]
    for r in rows:
        metrics = json.loads((Path(r["m:run_dir"]) / "metrics.json").read_text())
        assert float(r["objective"]) == pytest.approx(-max(metrics["theta_shift_crb"]))
    assert (out / "search.png").stat().st_size > 5000
    # best.yaml is the best evaluation's config and trains through the normal CLI unchanged
    best_row = rows[int(np.argmax(scores))]
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert best["model"]["bins"] == int(best_row["p:bins"])
    assert best["model"]["lr"] == pytest.approx(float(best_row["p:lr"]))
    done = subprocess.run(
        [sys.executable, "-m", "surrogates.fit", "flow", "--config", str(out / "best.yaml")]
        + ["--out", str(tmp_path / "again")],
        cwd=ROOT,
        env=os.environ | {"WANDB_MODE": "disabled"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    first_run = json.loads((Path(best_row["m:run_dir"]) / "metrics.json").read_text())
    assert again["val_loss"] == pytest.approx(
        first_run["val_loss"], rel=1e-5
    )  # same seed, same run
    # the top three evaluations as an ensemble EventSource
    ens = Ensemble.from_search(out, k=3, theory="proxy")
    assert ens.n_members == 3
    theta = (ens.prior_low + 0.5 * (ens.prior_high - ens.prior_low)).unsqueeze(0)
    with torch.no_grad():
        assert ens.sample(theta, 30)[0].shape == (1, 30, 1)


def test_serial_evaluator_runs_the_evaluations_in_this_process(tmp_path, monkeypatch):
    """``--evaluator serial`` (DeepHyper awaits a coroutine there): every evaluation runs, in
    order, and the best one's config is written. The training itself is stood in for."""
    import surrogates.hpo as hpo

    seen = []

    def fake(job, family: str, out: str, budget: dict) -> dict:  # noqa: ANN001
        run_dir = Path(out) / "evals" / str(len(seen))
        run_dir.mkdir(parents=True)
        (run_dir / "config.yaml").write_text(yaml.safe_dump({"model": dict(job.parameters)}))
        seen.append(dict(job.parameters))
        return {"objective": -float(job.parameters["lr"]), "metadata": {"run_dir": str(run_dir)}}

    monkeypatch.setattr(hpo, "run_evaluation", fake)
    summary = run_search("flow", tmp_path / "s", 3, evaluator="serial", backends=["zuko"])
    assert summary["evaluations"] == 3 and len(seen) == 3 and summary["failed"] == 0
    best = yaml.safe_load((tmp_path / "s" / "best.yaml").read_text())
    assert best["model"]["lr"] == min(p["lr"] for p in seen)
