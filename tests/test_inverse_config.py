"""The inverse commands' typed configs: every shipped YAML and every CLI option of the outer GAN
through them, one-line errors for bad values, --print_config, and a recorded run's numbers."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from inverse import blackbox, closure, fit, mle
from inverse.config import (
    BlackboxConfig,
    ClosureConfig,
    FitConfig,
    GanConfig,
    build_parser,
    load_config,
    parse_cli,
    to_dict,
)
from surrogates.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = {
    **{p: FitConfig for p in sorted((ROOT / "configs" / "inverse").glob("*.yaml"))},
    ROOT / "configs" / "inverse" / "blackbox.yaml": BlackboxConfig,
    ROOT / "configs" / "closure" / "proxy.yaml": ClosureConfig,
}


def _contains(small: dict, big: dict, where: str = "") -> None:
    """Every key of ``small`` (a YAML) is in ``big`` (the typed config) with the same value."""
    for key, value in small.items():
        assert key in big, f"{where}{key}"
        if isinstance(value, dict) and isinstance(big[key], dict) and key != "detector":
            _contains(value, big[key], f"{where}{key}.")
        else:
            assert big[key] == value, f"{where}{key}: {big[key]!r} != {value!r}"


@pytest.mark.parametrize("path", list(SHIPPED), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_shipped_yaml_reads_into_its_config(path):
    """Each shipped YAML loads (file and command line alike) with every value as written."""
    cls = SHIPPED[path]
    cfg = load_config(path, cls)
    assert isinstance(cfg, cls)
    _contains(yaml.safe_load(path.read_text()), to_dict(cfg))
    # the same through the command line, by the shipped name from any directory
    name = f"configs/{path.parent.name}/{path.name}"
    assert parse_cli(cls, ["--config", name], "prog", None) == cfg


def test_a_recorded_run_config_reads_back(tmp_path):
    """config.yaml as a run writes it (every key, events and out included) is a valid --config."""
    cfg = load_config("configs/inverse/proxy-large.yaml")
    written = tmp_path / "config.yaml"
    written.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    assert load_config(written) == cfg


# a value for every option of `python -m inverse.fit`, unlike its default (the test below fails
# for an option that has none here: a new key must be settable on the command line)
SAMPLES = {
    "--theory": "dis",
    "--source": "flow-zuko,vaim",
    "--seed": "7",
    "--steps": "30",
    "--replicas": "9",
    "--data_replicas": "3",
    "--events_per_step": "64",
    "--average_last": "0.5",
    "--face_cut": "false",
    "--compare_mle": "false",
    "--posterior": "false",
    "--detector": "{kind: dis, x_resolution: 0.05}",
    "--events": "obs.npz",
    "--out": "runs/x",
    "--resume": "true",
    "--progress": "false",
    "--gan.lr_g": "0.003",
    "--gan.lr_g_events": "20000",
    "--gan.lr_d": "0.002",
    "--gan.d_steps": "5",
    "--gan.d_lr_floor": "0.5",
    "--gan.g_lr_floor": "0.1",
    "--gan.d_hidden": "[16, 8]",
    "--gan.shared": "true",
    "--gan.g_latent": "3",
    "--gan.g_hidden": "[8]",
    "--gan.norm_weight": "0.5",
    "--gan.inset": "0.01",
    "--gan.box_map": "reflect",
    "--gan.trace_every": "5",
    "--gan.precondition": "false",
    "--gan.precondition_start": "false",
    "--gan.precondition_at": "[0.1, 0.3]",
    "--gan.precondition_scale": "softest",
    "--gan.precondition_diagonal": "false",
    "--gan.d_dtype": "float32",
    "--gan.d_quantiles": "64",
    "--gan.d_smooth": "8",
    "--gan.d_smooth_from": "0.4",
    "--gan.d_score": "true",
    "--gan.bootstrap_restart": "true",
    "--gan.data_restart": "true",
    "--gan.spread_start": "true",
    "--stop.enabled": "true",
    "--stop.window": "10",
    "--stop.k": "2.0",
    "--stop.tolerance": "0.1",
    "--stop.precision": "0.3",
    "--stop.patience": "5",
    "--stop.lag": "1",
    "--stop.min_steps": "100",
    "--stop.anneal": "500",
    "--trainer.accelerator": "cpu",
    "--trainer.devices": "2",
    "--trainer.strategy": "ddp",
    "--trainer.checkpoint_every": "50",
    "--overwrite": "true",
}


def _options() -> list[str]:
    """The value options of the outer GAN's parser (not --help, --config, --print_config and the
    per-block config files --gan, --trainer)."""
    parser = build_parser(FitConfig, "python -m inverse.fit", None)
    skip = {"--help", "--config", "--print_config", "--gan", "--stop", "--trainer"}
    longs = [[o for o in a.option_strings if o.startswith("--")] for a in parser._actions]
    return [o[0] for o in longs if o and o[0] not in skip]


def _lookup(cfg: FitConfig, option: str) -> object:
    value: object = cfg
    for part in option.removeprefix("--").split("."):
        value = getattr(value, part)
    return value


# options that are refused on their own: what each needs beside it
NEEDS = {
    "--gan.d_smooth": ["--gan.d_quantiles", "64"],
    "--gan.spread_start": ["--gan.data_restart", "true"],
}


def test_every_outer_gan_option_is_accepted_and_lands_in_the_config():
    options = _options()
    assert set(options) == set(SAMPLES), set(options) ^ set(SAMPLES)
    assert (
        len(options) == 57
    )  # every key of the YAML: 20 top-level, 27 gan, 9 stop, 4 trainer, minus blocks
    for option in options:
        needs = NEEDS.get(option, [])
        cfg = parse_cli(FitConfig, [*needs, option, SAMPLES[option]], "prog", None)
        expected = yaml.safe_load(SAMPLES[option])
        assert _lookup(cfg, option) == expected, option
        assert _lookup(cfg, option) != _lookup(FitConfig(), option), option
    # all at once, too, and the argparse era's spellings (--overwrite and --resume exclude each
    # other, as --gan.data_restart (and --gan.spread_start, which needs it) and
    # --gan.precondition false do)
    skip = {"--overwrite", "--gan.data_restart", "--gan.spread_start"}
    argv = [x for option in options if option not in skip for x in (option, SAMPLES[option])]
    assert parse_cli(FitConfig, argv, "prog", None).gan.d_dtype == "float32"
    old = ["--events-per-step", "16", "--no-progress", "--trainer.devices", "2"]
    cfg = parse_cli(FitConfig, old, "prog", None)
    assert (cfg.events_per_step, cfg.progress, cfg.trainer.devices) == (16, False, 2)
    # a true/false option alone means true (--resume as before), with a value that value
    cfg = parse_cli(FitConfig, ["--resume", "--gan.shared", "--steps", "3"], "prog", None)
    assert (cfg.resume, cfg.gan.shared, cfg.steps) == (True, True, 3)
    assert not parse_cli(FitConfig, ["--resume", "false"], "prog", None).resume


def _refused(capsys, main, argv: list[str]) -> str:  # noqa: ANN001
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    ("argv", "yaml_text", "message"),
    [
        (["--steps", "-3"], "steps: -3", "steps must be a positive integer, got -3"),
        (["--steps", "ten"], "steps: ten", "steps must be an int, got 'ten'"),
        (["--replicas", "2.5"], "replicas: 2.5", "replicas must be an int"),
        (["--gan.lr_q", "1"], "gan: {lr_q: 1}", "lr_q"),
        (
            ["--average_last", "1.5"],
            "average_last: 1.5",
            "average_last must be a fraction in (0, 1]",
        ),
        (["--gan.box_map", "tanh"], "gan: {box_map: tanh}", "choose one of sigmoid, reflect"),
        (["--trainer.devices", "0"], "trainer: {devices: 0}", "trainer.devices must be"),
        (["--gan", "3"], "gan: 3", "gan"),
        (["--stop.window", "0"], "stop: {window: 0}", "stop.window must be a positive integer"),
        (["--stop.k", "-1"], "stop: {k: -1}", "stop.k must be a finite number > 0"),
        (["--gan.lr_g", ".inf"], "gan: {lr_g: .inf}", "gan.lr_g must be a finite number > 0"),
        (["--trainer.accelerator", "tpu"], "trainer: {accelerator: tpu}", "no TPU device"),
    ],
)
def test_bad_values_are_one_line_before_anything_runs(
    tmp_path, capsys, obs_file, argv, yaml_text, message
):
    out = tmp_path / "run"
    common = ["--events", str(obs_file), "--out", str(out)]
    assert message in _refused(capsys, fit.main, [*common, *argv])
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml_text + "\n")
    err = _refused(capsys, fit.main, [*common, "--config", str(bad)])
    assert (message if message != "gan" else "gan must be a mapping") in err
    assert not out.exists()


def test_a_bad_value_is_one_line_from_the_shell(tmp_path, obs_file):
    """The real command: exit status 2, one line on stderr, no traceback, no run folder."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "inverse.fit", "--events", str(obs_file), "--out", str(out)]
    r = subprocess.run([*cmd, "--steps", "ten"], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "error: steps must be an int, got 'ten'; see python -m inverse.fit --help"
    ], r.stderr
    assert not out.exists()


def test_print_config_round_trips(tmp_path, capsys):
    argv = ["--config", "configs/inverse/proxy-large.yaml", "--gan.lr_g", "0.003", "--seed", "4"]
    with pytest.raises(SystemExit) as exc:
        fit.main([*argv, "--print_config"])
    assert exc.value.code == 0
    printed = tmp_path / "printed.yaml"
    printed.write_text(capsys.readouterr().out)
    again = parse_cli(FitConfig, ["--config", str(printed)], "prog", None)
    assert again == parse_cli(FitConfig, argv, "prog", None)
    shipped = load_config("configs/inverse/proxy-large.yaml")
    assert again.gan.lr_g == 0.003 and again.seed == 4  # the overrides, and the file's own value
    assert again.gan.d_steps == shipped.gan.d_steps != FitConfig().gan.d_steps


def test_help_shows_the_field_docs(capsys):
    with pytest.raises(SystemExit) as exc:
        fit.main(["--help"])
    assert exc.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--gan.lr_g" in text and "discriminator updates per generator update" in text
    assert "python -m inverse.fit --config configs/inverse/proxy.yaml" in text  # the examples


def test_configs_built_in_python_are_checked_too():
    with pytest.raises(InputError, match="gan.d_steps must be a positive integer"):
        GanConfig(d_steps=0)
    with pytest.raises(InputError, match="unknown key 'gan.lr_q'"):
        FitConfig(gan={"lr_q": 1})
    assert FitConfig(gan={"lr_g": 0.01}).gan == GanConfig(lr_g=0.01)
    with pytest.raises(InputError, match="starts must be a positive integer"):
        ClosureConfig(starts=0)


def test_closure_mle_and_blackbox_read_their_options(capsys, tmp_path):
    cfg = parse_cli(ClosureConfig, ["--cases", "[B]", "--starts", "8"], "prog", None)
    assert cfg.cases == ["B"] and cfg.starts == 8 and cfg.theta == "truth"
    argv = ["--config", "configs/inverse/blackbox.yaml", "--training.n_params", "64"]
    cfg = parse_cli(
        BlackboxConfig, [*argv, "--surrogate.family", "flow", "--no-progress"], "p", None
    )
    assert (cfg.training.n_params, cfg.surrogate.family, cfg.progress) == (64, "flow", False)
    assert cfg.surrogate.args[:2] == ["--trainer.max_epochs", 100]
    assert "starts must be" in _refused(capsys, closure.main, ["--starts", "0"])
    assert "--events is required" in _refused(capsys, mle.main, ["--starts", "2"])
    assert "unknown key 'training.n_param'" in _refused(
        capsys, blackbox.main, ["--config", str(_yaml(tmp_path, "training: {n_param: 3}"))]
    )


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text + "\n")
    return path


# Recorded with the generator's steps scaled per parameter from step 0 (the gan defaults since
# issue 23; before, the pin was of unscaled steps, recorded at commit bd34732), CPU, one torch
# thread (the tests' setting):
#   python -m surrogates.simulate observed --case C --seed 1 --out obsC.npz
#   python -m inverse.fit --config small.yaml --events obsC.npz --source exact --out run --no-progress
# with small.yaml = RECORDED_CONFIG below.
RECORDED_CONFIG = "steps: 30\nreplicas: 3\nevents_per_step: 64\ngan:\n  trace_every: 5\n"
RECORDED_MEAN = [
    1.9539276336747842,
    -0.16088684682514923,
    2.455280643568882,
    1.7400937148901179,
    -0.19229136624741353,
    2.751532134569414,
]
RECORDED_STD = [
    0.049023136563895814,
    0.018106022627194924,
    0.012878074651738682,
    0.03245967179222276,
    0.018695296152265856,
    0.027032743820715376,
]


def test_a_recorded_run_gives_the_same_numbers(tmp_path, capsys):
    """Same config and seed as a run recorded before the config system: the same θ (to the
    exact sampler's interpolation error)."""
    from surrogates.simulate import main as simulate

    obs = tmp_path / "obsC.npz"
    assert simulate(["observed", "--case", "C", "--seed", "1", "--out", str(obs)]) in (0, None)
    small = _yaml(tmp_path, RECORDED_CONFIG.strip())
    out = tmp_path / "run"
    argv = ["--config", str(small), "--events", str(obs), "--source", "exact", "--out", str(out)]
    # (the exact posterior, sampled after training, would add ~15 s and is not under test here)
    assert fit.main([*argv, "--no-progress", "--posterior", "false"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    # the exact sampler's table became adaptive per θ (2049 nodes placed by the density instead of
    # a fixed Chebyshev grid): its events move by ~the interpolation error, θ by ~1e-8 relative;
    # any change of the config system's meaning moves them by far more
    assert metrics["params_mean"] == pytest.approx(RECORDED_MEAN, rel=1e-6)
    # (σ is the replicas' spread × the Student-t factor of its degrees of freedom since 853715f)
    spread = np.asarray(metrics["params_std"]) / metrics["interval_factor"]
    assert spread == pytest.approx(RECORDED_STD, rel=1e-5)
    assert metrics["interval_factor"] == pytest.approx(1.8373, abs=1e-4)  # t₁ at Φ(1), B = 2
    assert metrics["scatter_std"] is None  # one data replica: no scatter measured
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["steps"] == 30 and resolved["events"] == str(obs)
    assert load_config(out / "config.yaml").gan.trace_every == 5
    capsys.readouterr()
