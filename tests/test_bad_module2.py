"""Bad input a user's module-2 or files can give, found by probing the commands: a density that is
no density somewhere in the box, user code that raises, an events-only theory given to the
maximum-likelihood commands, and event files whose extra arrays or channel order are off. Each is
one line naming the problem, before anything is written, never a traceback or a wrong number."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import run_cli

from inverse import closure as inverse_closure
from inverse import fit as inverse_fit
from inverse import mle as inverse_mle
from surrogates import fit as surrogates_fit
from surrogates import simulate
from surrogates.data import read_events, simulate_observed, write_events
from surrogates.errors import InputError
from surrogates.generators import CallableGenerator

CARD = """name = "{name}"
channels = ["a", "b"]
x = [0.0, 2.0]
truth = [1.5, 1.5]
density = "dens.py:sigma"
[parameters]
n = [0.5, 2.0]
k = [0.5, 2.0]
"""

# σ_a is a density only for n ≥ 1: NaN, negative, zero or raising below it
BODIES = {
    "nan": "np.sqrt(n - 1) * np.exp(-k * x)",
    "negative": "(n - 1) * np.exp(-k * x)",
    "zero": "np.where(n < 1, 0.0, 1.0) * np.exp(-k * x)",
    "raises": "(np.exp(-k * x) if n >= 1 else 1 / np.array([]).item())",
}


def generator(name: str, fn) -> CallableGenerator:  # noqa: ANN001 - fn(θ, n, seed)
    return CallableGenerator(fn, name, ["n", "k"], ["a", "b"], [0.5, 0.5], [2.0, 2.0], [0.0], [1.0])


def bad_card(tmp_path, kind: str):
    folder = tmp_path / kind
    folder.mkdir()
    (folder / "dens.py").write_text(
        "import numpy as np\n\n\ndef sigma(x, theta):\n    n, k = theta\n"
        f"    return np.stack([{BODIES[kind]}, k * np.exp(-n * x)])\n"
    )
    (folder / "card.toml").write_text(CARD.format(name=f"{kind}-{tmp_path.name}"))  # one per test
    return folder / "card.toml"


@pytest.mark.parametrize("kind", sorted(BODIES))
def test_a_density_that_is_none_somewhere_in_the_box_is_one_line(tmp_path, capsys, kind):
    """The card's own check passes at the truth (n = 1.5); at n = 0.7 σ_a is NaN, negative, zero or
    raises: observed data and a training set that reach it stop in one line naming θ, unwritten."""
    card = str(bad_card(tmp_path, kind))
    out = tmp_path / f"obs-{kind}.npz"
    argv = ["observed", "--theory", card, "--theta", "0.7,1.5", "--events", "50,50"]
    status, _, err = run_cli(simulate.main, [*argv, "--out", str(out)], capsys)
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "0.7" in err and ("no density" in err or "fails at" in err), err
    assert not out.exists()
    # a training set over the box meets n < 1 in its first rows
    train = tmp_path / f"train-{kind}.npz"
    argv = [
        "training",
        "--theory",
        card,
        "--n-params",
        "16",
        "--events-per-param",
        "4",
        "--no-progress",
    ]
    status, _, err = run_cli(
        simulate.main, [*argv, "--grid-size", "16", "--out", str(train)], capsys
    )
    assert status == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert "no density" in err or "fails at" in err, err
    assert not train.exists()


def test_good_theta_of_the_same_card_still_simulate(tmp_path, capsys):
    """The check refuses only where σ is no density: at n ≥ 1 the same card simulates."""
    card = str(bad_card(tmp_path, "nan"))
    out = tmp_path / "obs.npz"
    argv = ["observed", "--theory", card, "--theta", "1.5,1.5", "--events", "50,50"]
    status, _, err = run_cli(simulate.main, [*argv, "--out", str(out)], capsys)
    assert status == 0 and out.exists(), err


def test_a_python_generator_that_raises_is_one_line(tmp_path):
    def generate(theta, n, seed):  # noqa: ANN001, ANN202
        if theta[0] < 1:
            raise RuntimeError("table lookup failed")
        return [np.full((n, 1), 0.5), np.full((n, 1), 0.5)], [1.0, 1.0]

    gen = generator("raises", generate)
    with pytest.raises(InputError, match=r"generator 'raises' fails at θ = \[0.7, 1.5\].*"
                                         "RuntimeError: table lookup failed"):  # fmt: skip
        gen.generate(np.array([0.7, 1.5]), 10, 3)


@pytest.mark.parametrize("command", ["mle", "closure"])
def test_the_likelihood_commands_refuse_an_events_only_theory_before_writing(
    tmp_path, capsys, command
):
    out = tmp_path / "run"
    if command == "mle":
        gen = generator(
            "events-only", lambda theta, n, seed: ([np.full((n, 1), 0.5)] * 2, [1.0, 1.0])
        )
        from surrogates.theory import register_theory

        register_theory(gen)
        data = simulate_observed(gen, [1.0, 1.0], [20, 20], seed=1)
        events = write_events(tmp_path / "obs.npz", data, gen.channels)
        argv = ["--theory", "events-only", "--events", str(events), "--out", str(out)]
        status, _, err = run_cli(inverse_mle.main, argv, capsys)
    else:
        argv = ["--theory", "proxy-smeared", "--cases", "[C]", "--out", str(out)]
        status, _, err = run_cli(inverse_closure.main, argv, capsys)
    assert status == 2 and err.count("\n") == 1 and "no density" in err and "inverse.fit" in err
    assert not out.exists()


def test_fewer_than_two_bootstrap_replicas_are_refused(tmp_path, capsys, obs_file):
    """σ is the spread of the bootstrap replicas: one (or none) would give σ = NaN."""
    out = tmp_path / "run"
    for replicas in ("1", "2"):
        argv = [
            "--events",
            str(obs_file),
            "--replicas",
            replicas,
            "--steps",
            "3",
            "--out",
            str(out),
        ]
        status, _, err = run_cli(inverse_fit.main, argv, capsys)
        assert status == 2 and "at least 2 bootstrap replicas" in err, err
        assert not out.exists()


def _resave(path, target, **change):
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    arrays.update(change)
    np.savez(target, **arrays)
    return target


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"expected_counts": np.array([-5.0, 3.0])}, "expected_counts must be 2 positive"),
        ({"expected_counts": np.array([np.nan, 3.0])}, "expected_counts must be 2 positive"),
        ({"expected_counts": np.array([0.0, 0.0])}, "expected_counts must be 2 positive"),
        ({"expected_counts": np.array([1.0, 2.0, 3.0])}, "expected_counts must be 2 positive"),
        ({"theta_true": np.ones((3, 6))}, "theta_true must be 6 numbers"),
    ],
)
def test_an_event_files_extra_arrays_are_checked(tmp_path, proxy, obs_file, change, problem):
    bad = _resave(obs_file, tmp_path / "bad.npz", **change)
    with pytest.raises(InputError, match=problem):
        read_events(bad, proxy)


def test_an_event_file_with_its_channels_in_another_order_is_read_in_the_theorys(
    tmp_path, proxy, obs_file
):
    """A file listing sigma2 before sigma1 (its arrays are named by channel) reads as the same
    data; a file naming a channel the theory lacks is refused."""
    good = read_events(obs_file, proxy)
    with np.load(obs_file) as f:
        meta = json.loads(str(f["meta"]))
        arrays = {k: f[k] for k in f.files}
    swapped = dict(arrays)
    for key in ("norms", "norms_sigma", "counts", "expected_counts"):
        if key in swapped:
            swapped[key] = arrays[key][::-1]
    swapped["meta"] = json.dumps({**meta, "channels": meta["channels"][::-1]})
    np.savez(tmp_path / "swapped.npz", **swapped)
    read = read_events(tmp_path / "swapped.npz", proxy)
    for a, b in zip(read.events, good.events, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(read.norms, good.norms)
    np.testing.assert_array_equal(read.expected_counts, good.expected_counts)
    renamed = {**arrays, "meta": json.dumps({**meta, "channels": ["sigma1", "other"]})}
    renamed["events_other"] = arrays["events_sigma2"]
    np.savez(tmp_path / "renamed.npz", **renamed)
    with pytest.raises(InputError, match=r"holds channels \['sigma1', 'other'\]"):
        read_events(tmp_path / "renamed.npz", proxy)


def test_a_csv_names_its_channels_or_numbers_them(tmp_path, proxy):
    """The event-file guide's long CSV takes a channel's name or index; a spreadsheet's byte-order
    mark is read; semicolons and a repeated column are one line each."""
    head = "# norms: 3.2, 1.9\n# norms_sigma: 0.1, 0.1\n"
    (tmp_path / "names.csv").write_text(
        "\ufeff" + head + "channel,x\nsigma1,0.5\nsigma2,0.3\nsigma1,0.2\n"
    )
    (tmp_path / "index.csv").write_text(head + "channel,x\n0,0.5\n1,0.3\n0,0.2\n")
    named, numbered = (
        read_events(tmp_path / "names.csv", proxy),
        read_events(tmp_path / "index.csv", proxy),
    )
    for a, b in zip(named.events, numbered.events, strict=True):
        np.testing.assert_array_equal(a, b)
    assert [len(e) for e in named.events] == [2, 1]
    (tmp_path / "semi.csv").write_text(head + "channel;x\n0;0.5\n1;0.3\n")
    with pytest.raises(InputError, match="separated by ';'"):
        read_events(tmp_path / "semi.csv", proxy)
    (tmp_path / "twice.csv").write_text(head + "sigma1,sigma1\n0.5,0.3\n")
    with pytest.raises(InputError, match="names a column twice"):
        read_events(tmp_path / "twice.csv", proxy)
    (tmp_path / "other.csv").write_text(head + "channel,x\nsigma3,0.5\n")
    with pytest.raises(InputError, match=r"'sigma3' in column channel, not a number or a channel"):
        read_events(tmp_path / "other.csv", proxy)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_an_accelerator_the_machine_lacks_is_one_line(tmp_path, capsys, obs_file):
    out = tmp_path / "run"
    argv = ["--events", str(obs_file), "--trainer.accelerator", "gpu", "--out", str(out)]
    status, _, err = run_cli(inverse_fit.main, argv, capsys)
    assert status == 2 and "no GPU device" in err and "auto" in err, err
    assert not out.exists()
    argv = ["flow", "--trainer.accelerator", "cuda", "--out", str(tmp_path / "flow")]
    status, _, err = run_cli(surrogates_fit.main, argv, capsys)
    assert status == 2 and "no CUDA device" in err, err
    assert not (tmp_path / "flow").exists()


@pytest.mark.parametrize(
    "parameters, problem",
    [
        ("  n: [0.5, 2.0]\n  n: [0.5, 3.0]\n  k: [0.5, 2.0]\n", "the key 'n' is given twice"),
        ("  on: [0.5, 2.0]\n  k: [0.5, 2.0]\n", "has the name True, not text"),
    ],
)
def test_a_yaml_card_that_yaml_would_silently_change_is_one_line(tmp_path, parameters, problem):
    """Plain YAML keeps the last of two equal keys and reads `on` as true: a card is refused."""
    from surrogates.theory import get_theory

    (tmp_path / "dens.py").write_text(
        "import numpy as np\n\n\ndef sigma(x, theta):\n    return np.stack([np.exp(-x), np.exp(-x)])\n"
    )
    card = tmp_path / "card.yaml"
    card.write_text(
        f"name: yaml-{tmp_path.name}\nchannels: [a, b]\nx: [0.0, 2.0]\ndensity: dens.py:sigma\n"
        f"parameters:\n{parameters}"
    )
    with pytest.raises(InputError, match=problem):
        get_theory(str(card))


def test_a_fit_refused_after_parsing_prints_only_its_error(tmp_path):
    """In a separate process (Lightning logs past capsys): a training set of another theory and an
    --init_from of another family are refused with nothing else on stderr (no "Seed set", no
    device lines), and no run folder."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from surrogates.data import simulate_training
    from surrogates.theory import get_theory

    data = simulate_training(get_theory("proxy"), 8, 4, seed=1, grid_size=16).save(
        tmp_path / "t.npz"
    )
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(root), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    vae = root / "checkpoints" / "vae.ckpt"
    for extra, problem in [
        (["--data.theory", "peak"], "is for theory 'proxy', not 'peak'"),
        (["--init_from", str(vae)], "is a vae surrogate"),
    ]:
        argv = ["flow", "--data", str(data), *extra, "--out", str(tmp_path / "run")]
        done = subprocess.run(
            [sys.executable, "-m", "surrogates.fit", *argv],
            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300,
        )  # fmt: skip
        assert done.returncode == 2 and problem in done.stderr, done.stderr
        assert done.stderr.count("\n") == 1, done.stderr
        assert not (tmp_path / "run").exists()
