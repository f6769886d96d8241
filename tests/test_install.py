"""A zoo that installs: the wheel carries the checkpoints, the configs and the console scripts, and
the installed package (not the checkout) runs the documented commands from an empty folder; the
zoo path finds a user's checkpoints first and `export` never writes into an installed package."""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from surrogates import resources, zoo
from surrogates.errors import InputError

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = {
    "surrogates-fit": "surrogates.fit:main",
    "surrogates-simulate": "surrogates.simulate:main",
    "surrogates-zoo": "surrogates.zoo:main",
    "surrogates-dashboard": "surrogates.dashboard:main",
    "surrogates-hpo": "surrogates.hpo:main",
    "inverse-fit": "inverse.fit:main",
    "inverse-mle": "inverse.mle:main",
    "inverse-closure": "inverse.closure:main",
    "inverse-blackbox": "inverse.blackbox:main",
    "inverse-study": "inverse.study:main",
}
# what a source tree may hold that is no input to a wheel (a stale build/ would even leak into it)
_NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "runs", "wandb",
    "lightning_logs", "sbi-logs", ".pytest_cache", ".ruff_cache", "*.npz",
)  # fmt: skip


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `pip wheel` builds from a clean copy of the repository (no network, no deps)."""
    tmp = tmp_path_factory.mktemp("wheel")
    source = shutil.copytree(ROOT, tmp / "source", ignore=_NOT_SOURCES)
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    done = subprocess.run([*cmd, "-w", str(tmp / "dist"), str(source)], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (built,) = (tmp / "dist").glob("surrogate_zoo-*.whl")
    return built


@pytest.fixture(scope="module")
def site(wheel) -> Path:
    """The wheel installed with `pip install --target` (no deps: the venv's are importable)."""
    target = wheel.parent.parent / "site"
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target)]
    done = subprocess.run([*cmd, str(wheel)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return target


def _shipped_files() -> set[str]:
    """The repository's data files, as the wheel names them."""
    ckpts = [p for p in (ROOT / "checkpoints").iterdir() if p.suffix in (".ckpt", ".json")]
    configs = [p for p in (ROOT / "configs").rglob("*") if p.is_file()]
    return (
        {f"surrogates/_zoo/{p.name}" for p in ckpts}
        | {f"surrogates/_configs/{p.relative_to(ROOT / 'configs').as_posix()}" for p in configs}
        | {"surrogates/theory/test_sets.json"}  # the recorded test θ (test_theta)
    )


def test_wheel_holds_the_zoo_the_configs_every_module_and_the_scripts(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert _shipped_files() <= names
    assert {"surrogates/_zoo/flow-zuko.ckpt", "surrogates/_configs/inverse/proxy.yaml"} <= names
    modules = {p.relative_to(ROOT).as_posix() for d in ("surrogates", "inverse") for p in (ROOT / d).rglob("*.py")}  # fmt: skip
    assert modules <= names, f"modules missing from the wheel: {sorted(modules - names)}"
    (info,) = {n.split("/")[0] for n in names if n.endswith(".dist-info/entry_points.txt")}
    entry_points = configparser.ConfigParser()
    entry_points.read_string(zipfile.ZipFile(wheel).read(f"{info}/entry_points.txt").decode())
    assert dict(entry_points["console_scripts"]) == SCRIPTS


def _run(args: list[str], cwd: Path, site: Path, tmp_path: Path) -> str:
    """Run a command in ``cwd`` with the installed wheel first on the path and an empty user zoo."""
    env = {k: v for k, v in os.environ.items() if k != resources.ZOO_PATH_ENV}
    env |= {
        "PYTHONPATH": str(site), "XDG_DATA_HOME": str(tmp_path / "data"),
        "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1",
    }  # fmt: skip
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{args}: {done.stderr[-3000:]}"
    return done.stdout


def test_installed_wheel_runs_the_documented_commands_from_an_empty_folder(site, tmp_path):
    work = tmp_path / "empty"
    work.mkdir()
    py = sys.executable
    loaded = _run([py, "-c", (
        "import surrogates, surrogates.resources as r; s = surrogates.load_surrogate('flow-zuko'); "
        "print(surrogates.__file__); print(r.checkpoint_dir()); print(r.export_dir()); "
        "print(type(s).__name__)"
    )], work, site, tmp_path)  # fmt: skip
    module, zoo_dir, export, family = loaded.split("\n")[:4]
    assert Path(module).is_relative_to(site)  # the wheel was imported, not the checkout
    assert Path(zoo_dir) == site / "surrogates" / "_zoo"
    assert Path(export) == tmp_path / "data" / "surrogate-zoo"  # not site-packages
    assert family == "FlowSurrogate"

    listed = _run([py, "-m", "surrogates.zoo", "list"], work, site, tmp_path)
    assert {line.split()[0] for line in listed.splitlines()} == set(zoo.list_checkpoints(resources.checkpoint_dir()))  # fmt: skip

    events, out = work / "obs.npz", work / "fit"
    _run([py, "-m", "surrogates.simulate", "observed", "--case", "C", "--seed", "1", "--out", str(events)], work, site, tmp_path)  # fmt: skip
    _run([py, "-m", "inverse.fit", "--source", "flow-zuko", "--config", "configs/inverse/proxy.yaml",
          "--events", str(events), "--steps", "20", "--replicas", "4", "--out", str(out),
          "--no-progress", "--posterior", "false"], work, site, tmp_path)  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    assert len(metrics["params_mean"]) == 6
    # the worked example's card ships as package data: by its shipped path and by its name
    for spec, name in (("examples/peak/peak.toml", "peak1.npz"), ("peak", "peak2.npz")):
        _run([py, "-m", "surrogates.simulate", "observed", "--theory", spec, "--events", "300,200",
              "--out", str(work / name)], work, site, tmp_path)  # fmt: skip
    assert sorted(os.listdir(work)) == ["fit", "obs.npz", "peak1.npz", "peak2.npz"]

    scripts = {p.name for p in (site / "bin").iterdir()}
    assert set(SCRIPTS) <= scripts
    listed_by_script = _run([str(site / "bin" / "surrogates-zoo"), "list"], work, site, tmp_path)
    assert listed_by_script == listed


@pytest.fixture
def user_zoo(tmp_path, monkeypatch) -> list[Path]:
    """Two user zoo folders on $SURROGATE_ZOO_PATH: ``mine`` (a copy of vaim) in the first, a
    ``flow-zuko`` that is really the gan in the second."""
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, name, source in ((first, "mine", "vaim"), (second, "flow-zuko", "gan")):
        folder.mkdir()
        for suffix in (".ckpt", ".json"):
            shutil.copy(
                resources.checkpoint_dir() / f"{source}{suffix}", folder / f"{name}{suffix}"
            )
    monkeypatch.setenv(resources.ZOO_PATH_ENV, os.pathsep.join([str(first), "", str(second)]))
    return [first, second]


def test_zoo_path_finds_user_checkpoints_before_the_shipped_ones(user_zoo):
    first, second = user_zoo
    assert resources.zoo_path() == [first, second, resources.checkpoint_dir()]
    names = zoo.list_checkpoints()
    assert "mine" in names and "gan" in names and names == sorted(set(names))
    assert zoo.resolve_checkpoint("mine") == first / "mine.ckpt"
    assert zoo.resolve_checkpoint("flow-zuko") == second / "flow-zuko.ckpt"  # shadows the shipped
    assert zoo.card_of(zoo.resolve_checkpoint("flow-zuko"))["family"] == "gan"
    assert "mine" in zoo.list_checkpoints(theory="proxy")
    assert "mine" not in zoo.list_checkpoints(resources.checkpoint_dir())
    assert resources.export_dir() == first
    with pytest.raises(InputError, match="SURROGATE_ZOO_PATH"):
        zoo.resolve_checkpoint("nowhere")


def test_export_never_writes_into_an_installed_package(tmp_path, monkeypatch):
    monkeypatch.delenv(resources.ZOO_PATH_ENV, raising=False)
    assert resources.source_checkout()  # the tests run from the repository
    assert resources.export_dir() == ROOT / "checkpoints" == resources.checkpoint_dir()
    assert (
        resources.config_file("inverse/proxy.yaml") == ROOT / "configs" / "inverse" / "proxy.yaml"
    )
    installed = tmp_path / "site-packages" / "surrogates"
    (installed / "_zoo").mkdir(parents=True)
    (installed / "_configs").mkdir()
    monkeypatch.setattr(resources, "_PACKAGE", installed)
    monkeypatch.setattr(resources, "_REPO", installed.parent)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert not resources.source_checkout()
    assert resources.checkpoint_dir() == installed / "_zoo"
    assert resources.config_dir() == installed / "_configs"
    if sys.platform.startswith("linux"):
        assert resources.export_dir() == tmp_path / "data" / "surrogate-zoo"
    assert not resources.export_dir().is_relative_to(installed)
    assert resources.zoo_path() == [resources.user_zoo_dir(), installed / "_zoo"]
