"""Nothing loaded from a file executes code: crafted pickles and crafted theory names are refused
in one line and never run (a marker file would show that they did)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from surrogates import zoo
from surrogates.errors import InputError
from surrogates.theory import installed_theory, register_theory
from surrogates.theory.proxy import ProxyTheory

EVIL_MODULE = """
from pathlib import Path
from surrogates.theory.proxy import ProxyTheory

def make():
    Path({marker!r}).write_text("ran")
    return ProxyTheory()
"""


class _Payload:
    """Unpickling this runs `Path(marker).touch()`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (Path.touch, (self.marker,))


@pytest.fixture
def evil_theory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, Path]:
    """An importable module whose zero-argument factory writes a marker: its name as module:attr."""
    marker = tmp_path / "theory-ran"
    (tmp_path / "evil_theory_mod.py").write_text(EVIL_MODULE.format(marker=str(marker)))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "evil_theory_mod:make", marker
    sys.modules.pop("evil_theory_mod", None)


def _exported(tmp_path: Path) -> Path:
    from surrogates.models import get_family

    model = get_family("flow")(transforms=1, bins=4, hidden=(8, 8), norm_hidden=(8,))
    run = tmp_path / "run" / "checkpoints"
    run.mkdir(parents=True)
    zoo.save_model(model, run / "best.ckpt")
    return zoo.export_checkpoint(tmp_path / "run", "tiny", folder=tmp_path / "zoo")


def _rewrite(ckpt: Path, theory: str) -> None:
    """The checkpoint and its card name ``theory``; the card's checksum made to match."""
    raw = torch.load(ckpt, weights_only=True)
    raw["hyper_parameters"]["theory"] = theory
    raw[zoo._KEY]["theory"]["theory"] = theory
    torch.save(raw, ckpt)
    card = json.loads(ckpt.with_suffix(".json").read_text())
    card["theory"]["theory"] = theory
    card["sha256"] = zoo._sha256(ckpt)
    ckpt.with_suffix(".json").write_text(json.dumps(card))


def test_a_theory_name_in_a_checkpoint_is_never_imported(tmp_path, evil_theory):
    name, marker = evil_theory
    ckpt = _exported(tmp_path)
    _rewrite(ckpt, name)
    with pytest.raises(InputError, match="never imported") as err:
        zoo.load_surrogate(ckpt)
    assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="never imported"):
        zoo.export_checkpoint(ckpt, "again", folder=tmp_path / "zoo2")
    with pytest.raises(InputError, match="not installed"):
        installed_theory(name)
    assert not marker.exists(), "a theory name read from a file was imported and run"
    assert not (tmp_path / "zoo2").exists() or not list((tmp_path / "zoo2").iterdir())


def test_a_registered_theory_loads_by_its_stored_name(tmp_path):
    ckpt = _exported(tmp_path)
    _rewrite(ckpt, "my-proxy")
    with pytest.raises(InputError, match="not installed"):
        zoo.load_surrogate(ckpt)
    register_theory(lambda: ProxyTheory(), name="my-proxy")
    try:
        assert zoo.load_surrogate(ckpt).has_density  # built through the registered factory
    finally:
        from surrogates.theory import THEORIES

        THEORIES.pop("my-proxy")


@pytest.mark.parametrize("where", ["load_surrogate", "export", "card_of"])
def test_a_pickle_payload_in_a_checkpoint_never_runs(tmp_path, where):
    marker = tmp_path / "pickle-ran"
    ckpt = _exported(tmp_path)
    raw = torch.load(ckpt, weights_only=True)
    raw["hyper_parameters"]["payload"] = _Payload(marker)
    torch.save(raw, ckpt)
    card = json.loads(ckpt.with_suffix(".json").read_text())
    ckpt.with_suffix(".json").write_text(json.dumps(card | {"sha256": zoo._sha256(ckpt)}))
    with pytest.raises(InputError) as err:
        if where == "load_surrogate":
            zoo.load_surrogate(ckpt)
        elif where == "export":
            zoo.export_checkpoint(ckpt, "again", folder=tmp_path / "zoo2")
        else:
            ckpt.with_suffix(".json").unlink()
            zoo.card_of(ckpt)
    assert "\n" not in str(err.value)
    assert not marker.exists(), f"{where} unpickled a payload"


def test_crafted_checkpoints_through_the_commands_run_nothing(
    tmp_path, evil_theory, capsys, obs_file
):
    """--source (outer GAN), --init_from and --ckpt_path (surrogate fit) and the dashboard."""
    from inverse import fit as inverse_fit
    from surrogates import dashboard
    from surrogates import fit as surrogate_fit
    from tests.conftest import run_cli

    name, marker = evil_theory
    named = _exported(tmp_path)
    _rewrite(named, name)
    pickled = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {}, "payload": _Payload(marker)}, pickled)
    calls = [
        (inverse_fit.main, ["--events", str(obs_file), "--source", str(named), "--out", str(tmp_path / "g")]),
        (surrogate_fit.main, ["flow", "--init_from", str(named), "--out", str(tmp_path / "f1")]),
        (surrogate_fit.main, ["flow", "--init_from", str(pickled), "--out", str(tmp_path / "f2")]),
        (surrogate_fit.main, ["flow", "--ckpt_path", str(pickled), "--out", str(tmp_path / "f3"),
                              "--trainer.max_epochs", "1", "--data.n_params", "8",
                              "--data.events_per_param", "2", "--model.norm_steps", "0"]),
    ]  # fmt: skip
    for main, argv in calls:
        status, _, err = run_cli(main, argv, capsys)
        assert status == 2 and err.count("\n") == 1 and "Traceback" not in err, (argv, err)
    assert not any((tmp_path / d).exists() for d in ("g", "f1", "f2", "f3")), "a refused run wrote"
    # a run folder whose files name the crafted theory: the dashboard reads it without importing
    run = tmp_path / "runs" / "crafted"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(
        json.dumps({"model": "flow", "theory": name, "w1": [0.1, 0.2]})
    )
    (run / "config.yaml").write_text(f"data:\n  theory: '{name}'\n")
    status, _, err = run_cli(
        dashboard.main, [str(tmp_path / "runs"), "--out", str(tmp_path / "d")], capsys
    )
    assert not marker.exists(), "a crafted checkpoint or theory name ran code"


def test_a_crafted_last_checkpoint_is_not_resumed(tmp_path, capsys, obs_file):
    """inverse.fit --resume reads checkpoints/last.ckpt weights-only: a payload there never runs."""
    from inverse import fit as inverse_fit
    from tests.conftest import run_cli

    marker = tmp_path / "ran"
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True)
    torch.save({"state_dict": {}, "payload": _Payload(marker)}, last)
    argv = ["--events", str(obs_file), "--out", str(tmp_path / "run"), "--resume", "--steps", "4"]
    status, _, err = run_cli(inverse_fit.main, [*argv, "--replicas", "3", "--no-progress"], capsys)
    assert status == 2 and err.count("\n") == 1 and "readable checkpoint" in err, err
    assert not marker.exists()
