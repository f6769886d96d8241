"""A catalogue of bad inputs across the commands: each exits non-zero with one line on stderr
naming the problem, no traceback, and leaves no new file behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from surrogates import hpo, simulate
from tests.conftest import run_cli

OBS = ["observed", "--case", "C"]
TRAIN = ["training", "--n-params", "4", "--events-per-param", "2", "--grid-size", "8"]

# (command main, argv with {tmp} for the test's folder, words the one line must hold)
CATALOGUE = [
    # output locations
    (simulate.main, [*OBS, "--out", "{tmp}"], "is a folder"),
    (simulate.main, [*OBS, "--out", "{tmp}/"], "is a folder"),
    (simulate.main, [*OBS, "--out", "{tmp}/afile.txt/x.npz"], "not a folder"),
    (simulate.main, [*TRAIN, "--out", "{tmp}"], "is a folder"),
    (simulate.main, [*OBS, "--out", "/proc/nowhere/x.npz"], "check the path"),
    # numbers out of range or of the wrong kind
    (simulate.main, [*OBS, "--seed", "-1", "--out", "{tmp}/x.npz"], "--seed must be at least 0"),
    (simulate.main, [*OBS, "--seed", str(2**64), "--out", "{tmp}/x.npz"], "--seed must be"),
    (simulate.main, [*OBS, "--seed", "one", "--out", "{tmp}/x.npz"], "invalid int value"),
    (simulate.main, ["observed", "--events", "nan,5", "--out", "{tmp}/x.npz"], "positive counts"),
    (simulate.main, ["observed", "--events", "1e12,5", "--out", "{tmp}/x.npz"], "at most"),
    (simulate.main, ["observed", "--events=-3,5", "--out", "{tmp}/x.npz"], "positive counts"),
    (simulate.main, ["observed", "--events", "inf,5", "--out", "{tmp}/x.npz"], "positive counts"),
    (simulate.main, ["observed", "--events", "5", "--out", "{tmp}/x.npz"], "needs 2"),
    (simulate.main, ["observed", "--events", "a,b", "--out", "{tmp}/x.npz"], "comma-separated"),
    (simulate.main, ["observed", "--case", "Z", "--out", "{tmp}/x.npz"], "unknown case"),
    (simulate.main, ["observed", "--theta", "1,2", "--out", "{tmp}/x.npz"], "has 2 values"),
    (simulate.main, ["observed", "--theta", "nan,0,3,1,0,4", "--out", "{tmp}/x.npz"], "finite"),
    (simulate.main, ["observed", "--theta", "9,0,3,1,0,4", "--out", "{tmp}/x.npz"], "outside"),
    (simulate.main, [*TRAIN[:1], "--n-params", "0", "--out", "{tmp}/x.npz"], "--n-params must"),
    (simulate.main, [*TRAIN[:1], "--n-params", "2.5", "--out", "{tmp}/x.npz"], "invalid int"),
    (simulate.main, [*TRAIN[:1], "--events-per-param", "0", "--out", "{tmp}/x.npz"], "must be"),
    (simulate.main, [*TRAIN[:1], "--grid-size", "1", "--out", "{tmp}/x.npz"], "--grid-size"),
    (simulate.main, [*TRAIN[:1], "--n-params", "10000000000", "--out", "{tmp}/x.npz"], "at most"),
    # choices and names
    (simulate.main, [*OBS, "--theory", "nope", "--out", "{tmp}/x.npz"], "unknown theory"),
    (simulate.main, [*OBS, "--theory", "nomodule_xyz:f", "--out", "{tmp}/x.npz"], "cannot load"),
    (simulate.main, [*OBS, "--sampler", "magic", "--out", "{tmp}/x.npz"], "invalid choice"),
    (simulate.main, [*OBS, "--detector", "missing.yaml", "--out", "{tmp}/x.npz"], "--detector"),
    (simulate.main, ["observed"], "required: --out"),
    (simulate.main, ["flying", "--out", "{tmp}/x.npz"], "invalid choice"),
    (simulate.main, [], "required"),
    (simulate.main, [*OBS, "--bogus", "1", "--out", "{tmp}/x.npz"], "unrecognized"),
    # the hyperparameter search
    (hpo.main, ["flow", "--max-evals", "0", "--out", "{tmp}/s"], "--max-evals must"),
    (hpo.main, ["flow", "--max-evals", "2", "--epochs", "0", "--out", "{tmp}/s"], "--epochs must"),
    (hpo.main, ["flow", "--max-evals", "2", "--workers", "0", "--out", "{tmp}/s"], "--workers"),
    (hpo.main, ["flow", "--max-evals", "2", "--seed", "-4", "--out", "{tmp}/s"], "--seed"),
    (hpo.main, ["flow", "--max-evals", "2", "--held-out", "0", "--out", "{tmp}/s"], "--held-out"),
    (hpo.main, ["flow", "--max-evals", "2", "--shift-events", "-1", "--out", "{tmp}/s"], "shift"),
    (hpo.main, ["flow", "--max-evals", "2", "--out", "{tmp}/afile.txt"], "is a file"),
    (
        hpo.main,
        ["flow", "--max-evals", "2", "--data", "{tmp}/no.npz", "--out", "{tmp}/s"],
        "not found",
    ),
    (
        hpo.main,
        ["flow", "--max-evals", "2", "--data", "{tmp}/afile.txt", "--out", "{tmp}/s"],
        "not a training set",
    ),
    (hpo.main, ["diffusion", "--max-evals", "2", "--out", "{tmp}/s"], "invalid choice"),
    (hpo.main, ["flow", "--out", "{tmp}/s"], "required: --max-evals"),
    (hpo.main, ["flow", "--max-evals", "two", "--out", "{tmp}/s"], "invalid int"),
    (
        hpo.main,
        ["flow", "--max-evals", "2", "--evaluator", "slurm", "--out", "{tmp}/s"],
        "invalid choice",
    ),
    (hpo.main, ["flow", "--max-evals", "2", "--resume", "--out", "{tmp}/s"], "--resume"),
]


@pytest.mark.parametrize(
    ("main", "argv", "words"),
    CATALOGUE,
    ids=[f"{m.__module__.split('.')[-1]}:{' '.join(a)[:60]}" for m, a, _ in CATALOGUE],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, main, argv, words):
    (tmp_path / "afile.txt").write_text("a file, not a folder")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    status, _, err = run_cli(main, [a.format(tmp=tmp_path) for a in argv], capsys)
    assert status not in (0, None), f"exit {status} for {argv}"
    assert err.startswith("error:") and err.count("\n") == 1, err
    assert "Traceback" not in err and words in err, err
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == before, f"{argv} left {set(after) - set(before)}"
    assert not Path("x.npz").exists()
