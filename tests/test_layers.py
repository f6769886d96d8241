"""The import layers of pyproject.toml's [tool.importlinter] hold, function-level imports included."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytest.importorskip("importlinter")


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run(
        [sys.executable, "-c", code, "--no-cache"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_package_keeps_its_layers() -> None:
    run = _lint_imports(ROOT)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout


@pytest.mark.parametrize(
    ("module", "line"),
    [
        # the zoo's metrics reaching up into the inverse loop, inside a function
        ("surrogates/metrics.py", "def _up():\n    from inverse.fit import main\n"),
        # a theory importing the models above it
        ("surrogates/theory/base.py", "def _up():\n    import surrogates.models\n"),
        # a library module importing an entry point
        ("surrogates/zoo.py", "def _up():\n    from surrogates.simulate import main\n"),
        # the outer GAN's library importing its command line
        ("inverse/gan.py", "def _up():\n    from inverse.fit import main\n"),
        # one entry point importing another
        ("inverse/blackbox.py", "def _up():\n    from inverse.closure import main\n"),
    ],
)
def test_an_import_against_the_layers_is_caught(tmp_path: Path, module: str, line: str) -> None:
    for name in ("surrogates", "inverse"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + "\n\n" + line)
    run = _lint_imports(tmp_path)
    assert run.returncode != 0, (
        f"an upward import in {module} went unnoticed:\n{run.stdout[-2000:]}"
    )
    assert "BROKEN" in run.stdout


def test_no_test_module_imports_another() -> None:
    """Shared helpers live in tests/conftest.py; a test module never imports a test module."""
    import ast

    offenders = []
    for path in sorted((ROOT / "tests").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            offenders += [
                f"{path.name}: {n}" for n in names if n.split(".")[-1].startswith("test_")
            ]
    assert not offenders, f"test modules importing test modules: {offenders}"
