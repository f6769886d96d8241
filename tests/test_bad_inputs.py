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


def _bad_files(folder: Path) -> dict[str, Path]:
    """Event files and training sets broken in each way a file from elsewhere can be."""
    import json

    import numpy as np

    from surrogates.data import simulate_observed, simulate_training, write_events
    from surrogates.theory import ProxyTheory

    theory = ProxyTheory()
    good = write_events(
        folder / "good.npz",
        simulate_observed(theory, theory.truth.numpy(), [20, 10], 1),
        theory.channels,
    )
    train = simulate_training(theory, 6, 2, 1, 8).save(folder / "train.npz")
    arrays, tarrays = dict(np.load(good)), dict(np.load(train))
    files = {
        "binary.csv": bytes(range(256)) * 4,
        "latin1.csv": b"x,channel\n0.5,0\n" + b"\xff\xfe\n",
        "empty.npz": b"",
        "truncated-training.npz": train.read_bytes()[: train.stat().st_size // 2],
        "not-a-zip.npz": b"PK\x03\x04 not really",
    }
    for name, raw in files.items():
        (folder / name).write_bytes(raw)
    variants = {
        "meta-list.npz": (arrays, {"meta": json.dumps([1, 2])}),
        "meta-not-json.npz": (arrays, {"meta": "{oops"}),
        "training-meta-str.npz": (tarrays, {"meta": json.dumps("training")}),
        "training-nan.npz": (tarrays, {"densities": np.where(tarrays["densities"] > 0, np.nan, 0)}),
        "training-shapes.npz": (tarrays, {"norms": tarrays["norms"][:2]}),
    }
    for name, (base, change) in variants.items():
        np.savez(folder / name, **(base | change))
    good.unlink()
    train.unlink()
    return {p.name: p for p in folder.iterdir()}


@pytest.mark.parametrize(
    "name",
    [
        "binary.csv",
        "latin1.csv",
        "empty.npz",
        "not-a-zip.npz",
        "meta-list.npz",
        "meta-not-json.npz",
        "truncated-training.npz",
        "training-meta-str.npz",
        "training-nan.npz",
        "training-shapes.npz",
    ],
)
def test_a_broken_file_is_refused_in_one_line(tmp_path, name):
    from surrogates.data import load_training, read_events
    from surrogates.errors import EventFileError
    from surrogates.theory import ProxyTheory

    path = _bad_files(tmp_path)[name]
    read = load_training if name.startswith(("training", "truncated")) else read_events
    with pytest.raises(EventFileError) as err:
        read(path, ProxyTheory())
    assert "\n" not in str(err.value) and path.name in str(err.value)


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
