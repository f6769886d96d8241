"""The Python face of the fit CLI: fit_surrogate, its run files, and the no-option default."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from surrogates.errors import InputError
from surrogates.runs import to_jsonable
from surrogates.training import default_config, fit_surrogate

ROOT = Path(__file__).resolve().parent.parent

# A tiny run: few θ, one epoch, no θ-shift measurement.
TINY = {
    "seed_everything": 3,
    "model": {"objective": "pdf", "event_variable": "root", "hidden": [8, 8], "transforms": 1,
              "bins": 4, "norm_steps": 50},
    "data": {"n_params": 24, "events_per_param": 4, "grid_size": 16, "batch_size": 8},
    "trainer": {"max_epochs": 1},
    "eval": {"held_out": 1, "events": 300, "shift_events": 0},
}  # fmt: skip


def test_fit_surrogate_writes_its_run_and_returns_its_metrics(tmp_path, monkeypatch):
    """From Python with a dict config: the run folder holds config.yaml (written once, before
    training: the checkpoints are newer), metrics.json equal to the returned metrics; the dict
    replaces the shipped config and the overrides come after it."""
    writes = []
    original = Path.write_text

    def counting(self: Path, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        writes.append(self.name)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", counting)
    out = tmp_path / "run"
    metrics = fit_surrogate(
        "flow", TINY, overrides=["--model.lr", "0.002"], out=out, progress=False
    )
    assert writes.count("config.yaml") == 1, writes
    written = json.loads((out / "metrics.json").read_text())
    assert json.dumps(written) == json.dumps(to_jsonable(metrics))  # NaN (shift skipped) too
    assert metrics["model"] == "flow" and metrics["epochs"] == 1 and metrics["objective"] == "pdf"
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["model"]["lr"] == 0.002 and config["seed_everything"] == 3
    assert config["data"]["n_params"] == 24 and config["trainer"]["enable_progress_bar"] is False
    assert config["out"] == str(out)
    ckpt = out / "checkpoints" / "last.ckpt"
    assert (out / "config.yaml").stat().st_mtime_ns <= ckpt.stat().st_mtime_ns


def test_a_finished_run_is_replaced_only_with_overwrite_given_bare(tmp_path):
    """`--overwrite` alone (as the README writes it, as for simulate and inverse.fit) replaces a
    finished run; without it the run is refused and kept."""
    out = tmp_path / "run"
    fit_surrogate("flow", TINY, out=out, progress=False)
    first = (out / "metrics.json").read_text()
    with pytest.raises(InputError, match="finished run"):
        fit_surrogate("flow", TINY, overrides=["--model.lr", "0.002"], out=out, progress=False)
    assert (out / "metrics.json").read_text() == first
    fit_surrogate("flow", TINY, overrides=["--overwrite", "--model.lr", "0.002"], out=out, progress=False)
    assert yaml.safe_load((out / "config.yaml").read_text())["model"]["lr"] == 0.002


def test_fit_surrogate_reads_a_yaml_path_and_refuses_a_missing_one(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY))
    metrics = fit_surrogate("flow", path, out=tmp_path / "run", progress=False)
    assert metrics["epochs"] == 1 and (tmp_path / "run" / "environment.json").is_file()
    with pytest.raises(InputError, match="not found.*surrogates/flow.yaml"):
        fit_surrogate("flow", tmp_path / "nope.yaml")


def _print_config(*args: str, shell: bool = False) -> dict:
    """The resolved config of ``surrogates.fit ARGS --print_config``: from the real command
    (``shell``) or from its ``main`` in this process (the same code, without ~8 s of imports)."""
    if not shell:
        import contextlib
        import io

        from surrogates.fit import main

        out = io.StringIO()
        with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
            main([*args, "--print_config"])
        assert done.value.code in (0, None)
        return yaml.safe_load(out.getvalue())
    done = subprocess.run(
        [sys.executable, "-m", "surrogates.fit", *args, "--print_config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return yaml.safe_load(done.stdout)


def test_no_option_fit_uses_the_shipped_recommended_config(tmp_path):
    """`python -m surrogates.fit flow` resolves to configs/surrogates/flow.yaml (pdf objective,
    root event variable, stratified points; not the class defaults events/logit/grid) with a
    first-try evaluation budget; a --config replaces it and options override single keys."""
    shipped = yaml.safe_load(default_config("flow").read_text())
    config = _print_config("flow", shell=True)
    model = config["model"]
    assert (model["objective"], model["event_variable"], model["pdf_points"]) == (
        "pdf",
        "root",
        "stratified",
    )
    for block in ("model", "data", "trainer", "eval"):
        for key, value in shipped[block].items():
            assert config[block][key] == value, f"{block}.{key}"
    assert config["eval"]["shift_events"] <= 1_000_000, "a first try evaluates in minutes"
    own = _print_config("flow", "--config", "surrogates/flow-dis.yaml", "--trainer.max_epochs", "2")
    assert own["data"]["theory"] == "dis" and own["trainer"]["max_epochs"] == 2
    partial = tmp_path / "partial.yaml"
    partial.write_text("model:\n  backend: nflows\n")
    mine = _print_config("flow", "--config", str(partial))["model"]
    assert mine["backend"] == "nflows" and mine["objective"] == "events", "replaced, not merged"


def test_bad_eval_checkpoint_is_refused_before_training(tmp_path):
    with pytest.raises(InputError, match="choose best or last"):
        fit_surrogate("flow", TINY, overrides=["--eval.checkpoint", "worst"], out=tmp_path / "r")
    assert not (tmp_path / "r" / "checkpoints").exists(), "refused before any training"
