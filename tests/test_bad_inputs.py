"""A catalogue of bad inputs across the commands: each exits non-zero with one line on stderr
naming the problem, no traceback, and leaves no new file behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from inverse import blackbox, closure, mle, study
from inverse import fit as inverse_fit
from surrogates import dashboard, hpo, simulate, zoo
from surrogates import fit as surrogate_fit
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
    (simulate.main, [*TRAIN, "--grid-tol", "0", "--out", "{tmp}/x.npz"], "--grid-tol must be >"),
    (simulate.main, [*TRAIN, "--grid", "fine", "--out", "{tmp}/x.npz"], "invalid choice"),
    (
        simulate.main,
        [*TRAIN, "--theory", "dis", "--grid", "adaptive", "--out", "{tmp}/x.npz"],
        "is for 1-D events",
    ),
    (simulate.main, [*TRAIN[:1], "--n-params", "10000000000", "--out", "{tmp}/x.npz"], "at most"),
    (simulate.main, [*TRAIN, "--workers", "0", "--out", "{tmp}/x.npz"], "--workers must"),
    (simulate.main, [*TRAIN, "--chunk", "0", "--out", "{tmp}/x.npz"], "--chunk must"),
    (simulate.main, [*TRAIN, "--engine", "spark", "--out", "{tmp}/x.npz"], "invalid choice"),
    # choices and names
    (simulate.main, [*OBS, "--theory", "nope", "--out", "{tmp}/x.npz"], "unknown theory"),
    (simulate.main, [*OBS, "--theory", "nomodule_xyz:f", "--out", "{tmp}/x.npz"], "cannot load"),
    (simulate.main, [*OBS, "--theory", "{tmp}/no.toml", "--out", "{tmp}/x.npz"], "theory card"),
    (
        simulate.main,
        [*OBS, "--theory", "{tmp}/afile.txt", "--out", "{tmp}/x.npz"],
        "unknown theory",
    ),
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
    (
        hpo.main,
        ["flow", "--max-evals", "2", "--address", "auto", "--out", "{tmp}/s"],
        "--evaluator ray",
    ),
    (
        hpo.main,
        [
            "flow",
            "--max-evals",
            "2",
            "--evaluator",
            "ray",
            "--address",
            "127.0.0.1:1",
            "--out",
            "{tmp}/s",
        ],
        "cannot reach the Ray cluster",
    ),
    # the outer GAN
    *[
        (inverse_fit.main, ["--events", "{obs}", "--out", "{tmp}/r", *argv], words)
        for argv, words in [
            (["--steps", "0"], "steps must be"),
            (["--steps", "ten"], "steps must be an int"),
            (["--replicas", "2.5"], "replicas must be an int"),
            (["--replicas", "-1"], "replicas must be"),
            (["--events_per_step", "0"], "events_per_step must be"),
            (["--seed", "-1"], "seed must be"),
            (["--seed", str(2**64)], "seed must be"),
            (["--average_last", "1.5"], "average_last"),
            (["--average_last", "0"], "average_last"),
            (["--data_replicas", "20"], "data_replicas"),
            (["--gan.lr_g", "-1"], "gan.lr_g"),
            (["--gan.lr_g", "fast"], "lr_g"),
            (["--gan.lr_d", "0"], "gan.lr_d"),
            (["--gan.d_steps", "0"], "gan.d_steps"),
            (["--gan.d_hidden", "[0]"], "gan.d_hidden"),
            (["--gan.box_map", "tanh"], "choose one of"),
            (["--gan.precondition_at", "1.5"], "precondition_at"),
            (["--gan.d_dtype", "float16"], "choose one of"),
            (["--gan.unknown", "1"], "unknown"),
            (["--trainer.devices", "0"], "trainer.devices"),
            (["--trainer.checkpoint_every", "0"], "checkpoint_every"),
            (["--source", "nope"], "not found"),
            (["--source", "{tmp}/afile.txt"], "not found"),
            (["--source", "exact,flow-zuko"], "surrogates only"),
            (["--theory", "dis"], "theory"),
            (["--theory", "nope"], "unknown theory"),
            (["--theory", "{tmp}/missing.toml"], "theory card"),
            (["--theory", "peak"], "not 'peak'"),
            (["--config", "{tmp}/missing.yaml"], "missing.yaml"),
            (["--config", "{tmp}/afile.txt"], "afile.txt"),
            (["--resume"], "--resume: no"),
            (["--resume", "--overwrite"], "give one"),
            (["--out", "{tmp}/afile.txt"], "is a file"),
            (["--bogus", "1"], "bogus"),
        ]
    ],
    (inverse_fit.main, ["--out", "{tmp}/r"], "--events is required"),
    (inverse_fit.main, ["--events", "{tmp}/missing.npz", "--out", "{tmp}/r"], "not found"),
    (inverse_fit.main, ["--events", "{tmp}/afile.txt", "--out", "{tmp}/r"], "unknown type"),
    # the maximum-likelihood yardstick and its closure
    (mle.main, ["--out", "{tmp}/m"], "--events is required"),
    (mle.main, ["--events", "{obs}", "--starts", "0", "--out", "{tmp}/m"], "starts must be"),
    (mle.main, ["--events", "{obs}", "--seed", "-2", "--out", "{tmp}/m"], "seed must be"),
    (mle.main, ["--events", "{obs}", "--theory", "dis", "--out", "{tmp}/m"], "theory"),
    (mle.main, ["--events", "{obs}", "--out", "{tmp}/afile.txt"], "is a file"),
    (closure.main, ["--starts", "0", "--out", "{tmp}/c"], "starts must be"),
    (closure.main, ["--cases", "[Z]", "--out", "{tmp}/c"], "unknown case"),
    (closure.main, ["--theta", "[9, 0, 3, 1, 0, 4]", "--out", "{tmp}/c"], "outside"),
    (closure.main, ["--theta", "[1, 2]", "--out", "{tmp}/c"], "values"),
    (closure.main, ["--out", "{tmp}/afile.txt"], "is a file"),
    (closure.main, ["--seed", "-5", "--out", "{tmp}/c"], "seed must be"),
    # the black-box closure: every stage's input checked before the first stage runs
    (blackbox.main, ["--case", "Q", "--out", "{tmp}/b"], "unknown case"),
    (blackbox.main, ["--theta", "[1, 2]", "--out", "{tmp}/b"], "values"),
    (blackbox.main, ["--theory", "nope", "--out", "{tmp}/b"], "unknown theory"),
    (blackbox.main, ["--surrogate.family", "diffusion", "--out", "{tmp}/b"], "diffusion"),
    (blackbox.main, ["--surrogate.config", "{tmp}/no.yaml", "--out", "{tmp}/b"], "not found"),
    (blackbox.main, ["--inverse", "{tmp}/no.yaml", "--out", "{tmp}/b"], "no.yaml"),
    (blackbox.main, ["--training.n_params", "0", "--out", "{tmp}/b"], "n_params"),
    (blackbox.main, ["--out", "{tmp}/afile.txt"], "is a file"),
    # the surrogate fit: every option checked before config.yaml or logs are written
    *[
        (surrogate_fit.main, ["flow", "--out", "{tmp}/f", *argv], words)
        for argv, words in [
            (["--data.batch_size", "0"], "data.batch_size"),
            (["--data.val_fraction", "1.5"], "data.val_fraction"),
            (["--data.val_fraction", "1"], "below 1"),
            (["--data.n_params", "0"], "data.n_params"),
            (["--data.grid_size", "1"], "grid_size"),
            (["--data.grid", "fine"], "unknown data.grid"),
            (["--data.grid_tol", "0"], "data.grid_tol must be >"),
            (["--data.seed", "-1"], "data.seed"),
            (["--data.path", "{tmp}/missing.npz"], "not found"),
            (["--data", "{tmp}/missing.npz"], "not found"),
            (["--data.theory", "nope"], "unknown theory"),
            (["--data.theory", "{tmp}/missing.yaml"], "theory card"),
            (["--model.lr", "-1"], "model.lr"),
            (["--model.bins", "0"], "bins"),
            (["--model.backend", "pyro"], "choose one of"),
            (["--model.norm_steps", "-3"], "norm_steps"),
            (["--trainer.max_epochs", "0"], "max_epochs"),
            (["--trainer.max_epochs", "-5"], "max_epochs"),
            (["--trainer.max_steps", "0"], "max_steps"),
            (["--trainer.devices", "0"], "devices"),
            (["--eval.checkpoint", "middle"], "choose best or last"),
            (["--eval.held_out", "0"], "eval.held_out"),
            (["--eval.shift_events", "-1"], "shift_events"),
            (["--ckpt_path", "last"], "no "),
            (["--ckpt_path", "{tmp}/missing.ckpt"], "not found"),
            (["--init_from", "{tmp}/missing.ckpt"], "not found"),
            (["--init_from", "vaim"], "same kind"),
            (["--seed_everything", "-1"], "seed"),
            (["--config", "{tmp}/missing.yaml"], "missing.yaml"),
            (["--out", "{tmp}/afile.txt"], "is a file"),
        ]
    ],
    (surrogate_fit.main, [], "say which surrogate"),
    (surrogate_fit.main, ["diffusion"], "choose one of"),
    # the zoo
    (zoo.main, ["export", "{tmp}/norun", "--name", "x", "--folder", "{tmp}/z"], "no checkpoint"),
    (zoo.main, ["export", "{tmp}/afile.txt", "--name", "x", "--folder", "{tmp}/z"], "checkpoint"),
    (zoo.main, ["export", "{tmp}/norun", "--name", "../x", "--folder", "{tmp}/z"], "name"),
    (zoo.main, ["frobnicate"], "invalid choice"),
    # the dashboard
    (dashboard.main, ["{tmp}/nowhere", "--out", "{tmp}/d"], "does not exist"),
    (dashboard.main, ["--out", "{tmp}/d"], "nothing to show"),
    (dashboard.main, ["--zoo", "--out", "{tmp}/afile.txt"], "is a file"),
    (dashboard.main, ["--zoo", "--out", "{tmp}/d", "--screenshot", "{tmp}"], "is a folder"),
    (dashboard.main, ["--zoo"], "required: --out"),
    (dashboard.main, ["--zoo", "--out", "{tmp}/d", "--bogus"], "unrecognized"),
    # the pseudo-experiment study
    *[
        (study.main, [*argv, "--out", "{tmp}/st"], words)
        for argv, words in [
            (["--n", "0"], "--n must"),
            (["--n", "2.5"], "invalid int"),
            (["--case", "Z"], "--case must"),
            (["--truths", "edge"], "--truths must"),
            (["--theta", "1,0,3,1,0,4"], "--theta sets a fixed truth"),
            (["--truths", "fixed", "--theta", "9,0,3,1,0,4"], "outside"),
            (["--truths", "fixed", "--theta", "1,2"], "has 2 values"),
            (["--fitters", "mle,foo"], "--fitters takes"),
            (["--fitters", "mle,mle"], "twice"),
            (["--workers", "0"], "--workers must"),
            (["--engine", "spark"], "--engine must"),
            (["--address", "tcp://127.0.0.1:1"], "--engine ray or --engine dask"),
            (["--seed", "-1"], "--seed must"),
            (["--posterior-steps", "0"], "--posterior-steps"),
            (["--config", "{tmp}/missing.yaml"], "missing.yaml"),
            (["--fitters", "gan", "--source", "{tmp}/missing.ckpt"], "missing.ckpt"),
        ]
    ],
    (study.main, ["--out", "{tmp}/afile.txt"], "is a file"),
    (study.main, ["--n", "2"], "required: --out"),
    (study.main, ["report", "{tmp}/nowhere"], "holds no study"),
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
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, main, argv, words, obs_file):
    (tmp_path / "afile.txt").write_text("a file, not a folder")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    argv = [a.format(tmp=tmp_path, obs=obs_file) for a in argv]
    status, _, err = run_cli(main, argv, capsys)
    assert status not in (0, None), f"exit {status} for {argv}"
    assert err.startswith("error:") and err.count("\n") == 1, err
    assert "Traceback" not in err and words in err, err
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == before, f"{argv} left {set(after) - set(before)}"
    assert not Path("x.npz").exists()


def test_a_finished_outer_gan_run_is_never_overwritten_silently(tmp_path, capsys, obs_file):
    out = tmp_path / "run"
    tiny = ["--events", str(obs_file), "--out", str(out), "--steps", "6", "--replicas", "3"]
    tiny += ["--events_per_step", "16", "--compare_mle", "false", "--no-progress"]
    assert run_cli(inverse_fit.main, tiny, capsys)[0] == 0
    first = (out / "metrics.json").read_text()
    status, _, err = run_cli(inverse_fit.main, [*tiny, "--seed", "3"], capsys)
    assert status == 2 and "holds a finished run" in err and "--overwrite" in err, err
    assert (out / "metrics.json").read_text() == first, "a refused run touched the results"
    assert run_cli(inverse_fit.main, [*tiny, "--seed", "3", "--overwrite"], capsys)[0] == 0
    assert (out / "metrics.json").read_text() != first
    assert not list(out.glob("**/*.part")), "a temporary file was left"
