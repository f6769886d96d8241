"""Plug-in cards: a user's module-2 declared in one small file and used by name from every command
(docs/guide/bring-your-own.md); the shipped worked example (configs/examples/peak)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import surrogates.theory as registry
from inverse import fit as inverse_fit
from surrogates import fit as surrogate_fit
from surrogates import simulate
from surrogates.errors import InputError
from surrogates.resources import config_file
from surrogates.theory import (
    NumpyTheory,
    TorchFunctionTheory,
    get_theory,
    installed_theory,
    read_card,
)
from tests.conftest import run_cli

# σ_a = n e^(−k x), σ_b = k e^(−n x) on [0, 2]: integrals in closed form
BUMP_PY = """
import numpy as np

def sigma(x, theta):
    n, k = theta
    return np.stack([n * np.exp(-k * x), k * np.exp(-n * x)])

def sigma_batched(x, theta):
    n, k = theta[:, :1], theta[:, 1:]
    return np.stack([n * np.exp(-k * x[..., 0]), k * np.exp(-n * x[..., 0])], axis=1)

def sigma_torch(x, theta):
    import torch
    n, k = theta[:, :1], theta[:, 1:]
    return torch.stack([n * torch.exp(-k * x[..., 0]), k * torch.exp(-n * x[..., 0])], dim=1)

def wrong_shape(x, theta):
    return np.ones(len(x))

def negative(x, theta):
    return -np.ones((2, len(x)))
"""
# the lines of a good card: top-level keys, then the [parameters] table
TOP = {
    "name": '"bump"',
    "channels": '["a", "b"]',
    "x": "[0.0, 2.0]",
    "truth": "[1.0, 1.5]",
    "reference_counts": "[2000, 1000]",
    "density": '"bump.py:sigma"',
}
PARAMETERS = {"n": "[0.5, 2.0]", "k": "[0.5, 2.0]"}


@pytest.fixture(autouse=True)
def _fresh_registry(monkeypatch):
    """Each test starts from the built-in theories: cards registered by one test are not seen by
    another (as in a new process)."""
    monkeypatch.setattr(registry, "_LOADED", dict(registry._LOADED))
    monkeypatch.setattr(registry, "_CARDS", dict(registry._CARDS))


def exact_norms(theta) -> np.ndarray:
    n, k = np.atleast_2d(theta).T
    return np.stack([n * -np.expm1(-2 * k) / k, k * -np.expm1(-2 * n) / n], axis=1)


def write_card(folder: Path, stem: str = "bump", **change: str | None) -> Path:
    """``folder/stem.toml`` (the theory named ``stem``) and its ``bump.py``: the good card with
    keys changed (None drops a key; a parameter's name changes its [low, high])."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bump.py").write_text(BUMP_PY)
    top, params = {**TOP, "name": f'"{stem}"'}, dict(PARAMETERS)
    for key, value in change.items():
        target = params if key in params else top
        if value is None:
            target.pop(key, None)
        else:
            target[key] = value
    lines = [f"{k} = {v}" for k, v in top.items()] + ["[parameters]"]
    path = folder / f"{stem}.toml"
    path.write_text("\n".join(lines + [f"{k} = {v}" for k, v in params.items()]) + "\n")
    return path


# ----------------------------------------------------------------------------- the density forms


@pytest.mark.parametrize(
    ("density", "extra", "cls"),
    [
        ('"bump.py:sigma"', {}, NumpyTheory),
        ('"bump.py:sigma_batched"', {"vectorized": "true"}, NumpyTheory),
        ('"bump.py:sigma_torch"', {"vectorized": "true", "torch": "true"}, TorchFunctionTheory),
    ],
    ids=["numpy", "numpy-vectorized", "torch"],
)
def test_a_density_card_loads_registers_and_integrates(tmp_path, density, extra, cls):
    card = write_card(tmp_path, density=density, **extra)
    theory = get_theory(str(card))
    assert isinstance(theory, cls) and theory.name == "bump"
    assert theory.param_names == ("n", "k") and theory.channels == ("a", "b")
    assert theory.event_dim == 1 and theory.x_high.tolist() == [2.0]
    assert theory.reference_counts == (2000.0, 1000.0)
    theta = theory.sample_prior(16, torch.Generator().manual_seed(1))
    with torch.no_grad():
        norms = theory.norms(theta).numpy()
    np.testing.assert_allclose(norms, exact_norms(theta.numpy()), rtol=1e-9)
    # every later lookup by the stored name (a training file, a checkpoint) resolves here
    assert installed_theory("bump") is theory and get_theory("bump") is theory
    assert get_theory(str(card)) is theory, "a card is loaded once per process"


def test_a_torch_card_carries_gradients_and_a_numpy_card_refuses_them(tmp_path):
    torch_card = write_card(
        tmp_path / "t",
        "bumpt",
        density='"bump.py:sigma_torch"',
        vectorized="true",
        torch="true",
    )
    theory = get_theory(str(torch_card))
    theta = torch.tensor([[1.0, 1.5]], dtype=torch.float64, requires_grad=True)
    theory.norms(theta)[0, 0].backward()
    # d/dk ∫ n e^(−kx) dx on [0, 2] = n (2k e^(−2k) − (1 − e^(−2k))) / k²
    n, k = 1.0, 1.5
    expected = n * (2 * k * np.exp(-2 * k) - (1 - np.exp(-2 * k))) / k**2
    assert float(theta.grad[0, 1]) == pytest.approx(expected, rel=1e-8)
    numpy_theory = get_theory(str(write_card(tmp_path / "n", "bumpn")))
    with pytest.raises(InputError, match="no gradients"):
        numpy_theory.norms(torch.tensor([[1.0, 1.5]], dtype=torch.float64, requires_grad=True))


def test_a_yaml_card_declares_the_same_theory_and_x_can_have_three_dimensions(tmp_path):
    toml = get_theory(str(write_card(tmp_path / "t", "same-t")))
    body = read_card(tmp_path / "t" / "same-t.toml")
    (tmp_path / "y").mkdir()
    (tmp_path / "y" / "bump.py").write_text(BUMP_PY)
    card = {
        "name": "same-y",
        "channels": list(body.channels),
        "x": [0.0, 2.0],
        "truth": list(body.truth),
        "density": "bump.py:sigma",
        "parameters": {"n": [0.5, 2.0], "k": [0.5, 2.0]},
    }
    (tmp_path / "y" / "card.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    yml = get_theory(str(tmp_path / "y" / "card.yaml"))
    assert {**yml.describe(), "theory": ""} == {**toml.describe(), "theory": ""}
    x3 = tmp_path / "x3"
    x3.mkdir()
    (x3 / "f.py").write_text(
        "import numpy as np\ndef f(x, t):\n    return np.stack([t[0] * x.sum(1)])\n"
    )
    (x3 / "c.toml").write_text(
        'name = "three"\nchannels = ["c"]\nx = [[0, 1], [1, 2], [2, 3]]\ndensity = "f.py:f"\n'
        "[parameters]\na = [1, 2]\n"
    )
    three = get_theory(str(x3 / "c.toml"))
    assert three.event_dim == 3 and three.x_low.tolist() == [0.0, 1.0, 2.0]
    with torch.no_grad():  # ∫ a (x1 + x2 + x3) over the unit cube [0,1]×[1,2]×[2,3] = 4.5 a
        assert float(three.norms([1.5])[0, 0]) == pytest.approx(6.75, rel=1e-9)


def test_relative_paths_resolve_against_the_cards_folder_and_no_bytecode_is_left(
    tmp_path, monkeypatch
):
    card = write_card(tmp_path / "cards", "elsewhere")
    monkeypatch.chdir(tmp_path)
    theory = get_theory("cards/elsewhere.toml")
    assert theory.name == "elsewhere"
    assert not list((tmp_path / "cards").rglob("__pycache__")), "bytecode written beside the card"
    assert card.is_file()


def test_a_name_read_from_a_file_never_loads_a_card(tmp_path):
    """installed_theory (names stored in files) never reads a card or imports its Python file."""
    card = write_card(tmp_path, "marked")
    marker = tmp_path / "imported"
    (tmp_path / "bump.py").write_text(f"open({str(marker)!r}, 'w').close()\n" + BUMP_PY)
    for name in (str(card), "marked"):
        with pytest.raises(InputError, match="is not installed"):
            installed_theory(name)
    assert not marker.exists()
    get_theory(str(card))  # a path the user types: imported
    assert marker.exists()


def test_a_card_cannot_take_a_name_already_in_use(tmp_path):
    with pytest.raises(InputError, match="'proxy' is a built-in theory"):
        get_theory(str(write_card(tmp_path / "a", "proxy")))
    get_theory(str(write_card(tmp_path / "b", "twin")))
    with pytest.raises(InputError, match="'twin' is already taken"):
        get_theory(str(write_card(tmp_path / "c", "twin")))


# ----------------------------------------------------------------------------- bad cards

BAD_CARDS = [
    ({"name": None}, "key 'name' is missing"),
    ({"name": '"my theory!"'}, "name = 'my theory!' must be a plain name"),
    ({"densty": '"bump.py:sigma"'}, "did you mean 'density'?"),
    ({"density": None}, "exactly one of density, generator, command"),
    (
        {"command": '["prog", "{out}"]'},
        "exactly one of density, generator, command; got ['density', 'command']",
    ),  # fmt: skip
    ({"rates": '"bump.py:sigma"'}, "rates only goes with generator"),
    ({"n": "[2.0, 0.5]"}, "parameters.n = [2, 0.5] needs low < high"),
    ({"k": "[0.5]"}, "parameters.k must be a list of 2 finite numbers"),
    ({"x": "[1.0, 1.0]"}, "x range [1, 1] needs low < high"),
    ({"x": "[[0, 1], [0, 1], [0, 1], [0, 1]]"}, "one [low, high] per event dimension (1 to 3)"),
    ({"channels": '["a", "a"]'}, "channels has a repeated name"),
    ({"channels": "[]"}, "channels must be a non-empty list of names"),
    ({"truth": "[1.0]"}, "truth must be a list of 2 finite numbers"),
    ({"truth": "[1.0, 9.0]"}, "truth k = 9 is outside its prior [0.5, 2]"),
    ({"reference_counts": "[100, 100, 100]"}, "reference_counts must be a list of 2 finite"),
    ({"reference_counts": "[100, -1]"}, "reference_counts must be positive"),
    ({"torch": '"yes"'}, "torch must be true or false"),
    ({"density": '"bump.py"'}, "must be 'file.py:function' or 'package.module:function'"),
    (
        {"density": '"missing.py:sigma"'},
        "which does not exist; paths are relative to the card's folder",
    ),  # fmt: skip
    ({"density": '"bump.py:nope"'}, "'nope' is not a function of 'bump.py'"),
    ({"density": '"no_such_module_xyz:f"'}, "cannot import 'no_such_module_xyz'"),
    ({"density": '"bump.py:wrong_shape"'}, "returned shape (1, 7), expected (1, 2, 7)"),
    ({"density": '"bump.py:negative"'}, "returned negative or non-finite σ"),
    ({"density": '"broken.py:f"'}, "file 'broken.py' fails to import: SyntaxError"),
    ({"name": '"bump" = 3'}, "is not valid TOML"),
]


@pytest.mark.parametrize(("change", "words"), BAD_CARDS, ids=[str(c) for c, _ in BAD_CARDS])
def test_a_bad_card_is_one_line_naming_the_key_and_nothing_is_written(
    tmp_path, capsys, change, words
):
    card = write_card(tmp_path, **change)
    (tmp_path / "broken.py").write_text("def f(x, t) return x\n")
    before = sorted(tmp_path.rglob("*"))
    argv = [
        "observed",
        "--theory",
        str(card),
        "--events",
        "50,50",
        "--out",
        str(tmp_path / "x.npz"),
    ]
    status, _, err = run_cli(simulate.main, argv, capsys)
    assert status == 2 and err.startswith("error:") and err.count("\n") == 1, err
    assert words in err and "Traceback" not in err, err
    assert sorted(tmp_path.rglob("*")) == before, "a refused card left files behind"


def test_a_missing_card_names_the_fix(tmp_path, capsys):
    argv = ["observed", "--theory", str(tmp_path / "no.toml"), "--out", str(tmp_path / "x.npz")]
    status, _, err = run_cli(simulate.main, argv, capsys)
    assert status == 2 and "theory card" in err and "not found" in err and "bring-your-own" in err


# ----------------------------------------------------------------------------- end to end

TINY_FLOW = [
    "--model.hidden", "[8, 8]", "--model.transforms", "1", "--model.bins", "4",
    "--model.norm_steps", "20", "--model.event_variable", "unit", "--data.batch_size", "8",
    "--trainer.max_epochs", "1", "--trainer.enable_progress_bar", "false",
    "--eval.held_out", "1", "--eval.events", "200", "--eval.shift_events", "0",
]  # fmt: skip


def test_a_card_theory_runs_from_training_set_to_theta(tmp_path, capsys, monkeypatch):
    """simulate training → surrogates.fit → simulate observed → inverse.fit, each stage naming the
    card by another path and starting from an empty registry (as a new process would): the
    training file, the checkpoint and the event file store the name, which resolves."""
    card = write_card(tmp_path / "mine", "bump-e2e")
    monkeypatch.chdir(tmp_path)

    def stage(main, argv):
        monkeypatch.setattr(registry, "_LOADED", {})
        monkeypatch.setattr(registry, "_CARDS", {})
        status, out, err = run_cli(main, argv, capsys)
        assert status == 0, err[-2000:]
        return out

    train = ["--n-params", "24", "--events-per-param", "8", "--grid-size", "16"]
    stage(simulate.main, ["training", "--theory", "mine/bump-e2e.toml", *train, "--out", "tr.npz"])
    stage(
        surrogate_fit.main,
        [
            "flow",
            "--data.theory",
            "mine/bump-e2e.toml",
            "--data",
            "tr.npz",
            *TINY_FLOW,
            "--out",
            "run",
        ],
    )
    ckpt = torch.load(tmp_path / "run/checkpoints/best.ckpt", weights_only=True, map_location="cpu")
    assert ckpt["hyper_parameters"]["theory"] == "bump-e2e", "checkpoints store the name"
    assert json.loads((tmp_path / "run/metrics.json").read_text())["theory"] == "bump-e2e"
    obs = ["observed", "--theory", "./mine/bump-e2e.toml", "--events", "400,300", "--seed", "2"]
    stage(simulate.main, [*obs, "--out", "obs.npz"])
    gan = ["--steps", "4", "--replicas", "3", "--events_per_step", "16", "--no-progress"]
    stage(
        inverse_fit.main,
        ["--theory", str(card), "--events", "obs.npz", "--source", "run/checkpoints/best.ckpt",
         *gan, "--out", "inv"],
    )  # fmt: skip
    metrics = json.loads((tmp_path / "inv/metrics.json").read_text())
    assert len(metrics["params_mean"]) == 2 and np.isfinite(metrics["params_mean"]).all()


# ----------------------------------------------------------------------------- the worked example


def test_the_shipped_peak_example_loads_by_name_and_path_and_integrates_to_its_norms():
    path = config_file("examples/peak/peak.toml")
    assert path.is_file() and (path.parent / "peak.py").is_file()
    theory = get_theory("peak")
    for spec in ("examples/peak/peak.toml", "configs/examples/peak/peak.toml", str(path)):
        assert get_theory(spec) is theory
    assert installed_theory("peak") is theory, "a built-in: resolves wherever its name is stored"
    assert theory.n_params == 5 and theory.n_channels == 2 and theory.differentiable
    assert theory.reference_counts is not None and len(theory.reference_counts) == 2
    span = float(theory.x_high - theory.x_low)
    truth = theory.truth.numpy()
    width = truth[theory.param_names.index("width")]
    assert 0.01 < width / span < 0.04, "the example's peak is a sharp feature"
    mass = theory.param_names.index("mass")
    assert float(theory.prior_high[mass] - theory.prior_low[mass]) / span > 0.6
    from surrogates.theory.card import _MODULES

    module = _MODULES[(path.parent / "peak.py").resolve()]
    theta = theory.sample_prior(64, torch.Generator().manual_seed(3))
    with torch.no_grad():
        quad = theory.norms(theta).numpy()
        # a plain fine Riemann sum of the density, independent of the quadrature rule
        x = torch.linspace(float(theory.x_low), float(theory.x_high), 40001, dtype=torch.float64)
        dens = theory.density(x.reshape(1, -1, 1), theta).numpy()
    np.testing.assert_allclose(quad, module.norms(theta.numpy()), rtol=1e-9)
    np.testing.assert_allclose(np.trapezoid(dens, x.numpy(), axis=-1), quad, rtol=1e-6)
    assert not list(path.parent.rglob("__pycache__")), "loading the example wrote bytecode"


def test_the_shipped_peak_configs_name_the_example():
    from inverse.config import FitConfig, load_config

    flow = yaml.safe_load(config_file("surrogates/flow-peak.yaml").read_text())
    assert flow["data"]["theory"] == "peak" and flow["model"]["objective"] == "pdf"
    cfg = load_config(config_file("inverse/peak.yaml"), FitConfig)
    assert cfg.theory == "peak"
    theory = get_theory(cfg.theory)
    counts = np.asarray(theory.reference_counts)
    assert 1e4 <= counts.min() and counts.max() <= 1e5, "case-A-like reference data"


def test_the_guide_shows_every_plug_in_form():
    guide = (Path(__file__).resolve().parent.parent / "docs/guide/bring-your-own.md").read_text()
    for needle in ("density =", "torch = true", "generator =", "command =", "detector =",
                   "configs/surrogates/flow-peak.yaml", "configs/inverse/peak.yaml"):  # fmt: skip
        assert needle in guide, needle
    assert guide.count("```") % 2 == 0
