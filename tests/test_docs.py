"""The documentation stays true: generated results match the cards, the README stays a guide,
and no relative link points at nothing."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from surrogates.resources import checkpoint_dir

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results.py"
# the commit of the cards changes when history is rewritten or shallow; the table must not
COMMIT = re.compile(r"at commit \w+")
# a number with a unit of a measurement: "0.49 σ_CRB", "4 min", "12%", "3.5×", "28 s"
MEASURED = re.compile(r"\d+(?:\.\d+)?\s*(?:σ|%|×|min\b|s\b|seconds\b|events/s)")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def run_results(*args: str) -> subprocess.CompletedProcess:
    """`python benchmarks/results.py ARGS` with this checkout's packages first on the path."""
    return subprocess.run(
        [sys.executable, str(RESULTS), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "WANDB_MODE": "disabled"},
        timeout=120,
    )


def test_committed_zoo_table_is_the_one_the_cards_give(tmp_path: Path) -> None:
    done = run_results(
        "--checkpoints", str(checkpoint_dir()), "--benchmarks", str(tmp_path / "none"),
        "--results", str(tmp_path), "--out", str(tmp_path / "results.json"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    fresh = COMMIT.sub("at commit X", (tmp_path / "zoo.md").read_text())
    committed = COMMIT.sub("at commit X", (ROOT / "docs/results/zoo.md").read_text())
    assert fresh == committed, "docs/results/zoo.md is stale: run python benchmarks/results.py"
    rows = json.loads((tmp_path / "results.json").read_text())["zoo"]
    cards = sorted(p.stem for p in checkpoint_dir().glob("*.json"))
    assert sorted(r["name"] for r in rows) == cards


def test_the_results_index_links_every_page(tmp_path: Path) -> None:
    """docs/results/README.md is the index results.py makes of the folder as committed: a page
    added without regenerating it, or one removed, fails here."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("results", RESULTS)
    results = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(results)
    folder = ROOT / "docs" / "results"
    committed = (folder / "README.md").read_text()
    assert results.index_page(folder) == committed, "run python benchmarks/results.py"
    pages = {p.name for p in folder.glob("*.md")} - {"README.md"}
    assert pages and all(f"]({name})" in committed for name in pages)
    (tmp_path / "a-1.md").write_text("# One\n")
    (tmp_path / "a-2.md").write_text("# One\n")
    (tmp_path / "b.md").write_text("no title\n")
    made = results.index_page(tmp_path)
    assert "## a: One\n\n[a-1](a-1.md), [a-2](a-2.md)" in made and "## b: b\n\n[b](b.md)" in made


def zoo_page_of(tmp_path: Path, name: str, metrics: dict) -> str:
    """docs/results/zoo.md as results.py writes it from the shipped card ``name`` alone, with
    ``metrics`` put into its metrics."""
    cards = tmp_path / "cards"
    cards.mkdir()
    card = json.loads((checkpoint_dir() / f"{name}.json").read_text())
    card["metrics"].update(metrics)
    (cards / f"{name}.json").write_text(json.dumps(card))
    done = run_results(
        "--checkpoints", str(cards), "--benchmarks", str(tmp_path / "none"),
        "--results", str(tmp_path / "out"), "--out", str(tmp_path / "r.json"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return (tmp_path / "out/zoo.md").read_text()


def test_a_changed_card_changes_the_page(tmp_path: Path) -> None:
    text = zoo_page_of(tmp_path, "flow-zuko", {"theta_shift_crb": [0.0, 0.0, 12.34, 0.0, 0.0, 0.0]})
    assert "| flow-zuko | flow | zuko | 12.34 | b_u |" in text
    assert "Regenerate: `python benchmarks/results.py`" in text


def test_a_density_free_card_shows_its_generator_report(tmp_path: Path) -> None:
    """A surrogate of a generator with no density: the zoo page shows the fit's density-free
    report (shift in its own likelihood's σ, C2ST and rates against generator events), named so."""
    shift = [0.0, 0.0, 0.0, 0.0, 7.89, 0.0]
    text = zoo_page_of(
        tmp_path,
        "flow-proxy-smeared",
        {"theta_shift_surrogate_crb": shift, "c2st_auc_generator": [0.5111, 0.5222]},
    )
    assert "| flow-proxy-smeared | flow | zuko | 7.89 | a_d |" in text
    assert "0.511 / 0.522" in text and "of the surrogate's own likelihood (no density)" in text


def test_benchmark_json_becomes_a_page(tmp_path: Path) -> None:
    bench = tmp_path / "bench"
    bench.mkdir()
    row = {
        "surrogate": "flow-zuko", "held_out_5_max": 1.37, "points": 32, "seed": 7,
        "median_of_max": 1.31, "mean_of_max": 1.38, "above_3": 0, "largest": 2.36,
        "largest_at": {"theta": [0] * 6, "parameter": "b_u"}, "seconds": 9.0,
        "shifts": [[0.5] * 6, [0.1, -1.2, 0, 0, 0, 0], [2.36, 0, 0, 0, 0, 0]],
    }  # fmt: skip
    payload = {"rows": [row], "environment": {"argv": ["benchmarks/shift_map.py"]}}
    (bench / "shift_map.json").write_text(json.dumps(payload))
    done = run_results(
        "--checkpoints", str(checkpoint_dir()), "--benchmarks", str(bench),
        "--results", str(tmp_path / "out"), "--out", str(tmp_path / "r.json"),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "out/shift_map.md").read_text()
    # an older JSON (no p95 or near-face entries): the 95th percentile from its shifts
    assert "| flow-zuko | 1.37 | 32 | 0 | 7 | 1.31 | 1.38 | 2.24 | 2 | 0 | 2.36 | b_u | – | 9 |" in text
    assert "Regenerate: `python benchmarks/shift_map.py`" in text


def test_readme_is_a_short_guide() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move detail into docs/"
    for command in ("make demo", "make test"):
        assert any(command in line for line in lines), command
    prose = re.sub(r"```.*?```|`[^`]*`", "", "\n".join(lines), flags=re.S)
    typed = MEASURED.findall(prose)
    assert not typed, (
        f"measured numbers typed into README.md (generate them into docs/results): {typed}"
    )


def test_readme_zoo_table_names_every_shipped_checkpoint() -> None:
    """The README's table of the shipped zoo lists exactly the cards in checkpoints/."""
    text = (ROOT / "README.md").read_text().split("## The shipped zoo", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `([\w.-]+)` \|", text, flags=re.M))
    shipped = {card.stem for card in checkpoint_dir().glob("*.json")}
    assert shipped and listed == shipped, (
        f"README.md's shipped-zoo table: missing {sorted(shipped - listed)}, "
        f"not shipped {sorted(listed - shipped)}"
    )


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_files(path: Path) -> None:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)  # code blocks hold no links
    broken = []
    for target in LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue  # a web address or an anchor on the same page
        file = (path.parent / target.split("#")[0]).resolve()
        if not file.exists() or not file.is_relative_to(ROOT):
            broken.append(target)
    assert not broken, (
        f"{path.relative_to(ROOT)} links to missing files or outside the repository: {broken}"
    )


def _results_module():  # noqa: ANN202
    import importlib.util

    spec = importlib.util.spec_from_file_location("results", RESULTS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_a_page_dates_its_run_by_the_run_not_by_the_clone(tmp_path: Path) -> None:
    """A fresh clone gives every JSON today's file time: the page takes the run's own date, else
    the day git committed the JSON, never the file time of a committed file."""
    results = _results_module()
    path = tmp_path / "bench.json"
    path.write_text("{}")
    assert results.run_date({"date": "2026-01-02"}, path) == "2026-01-02"
    git = {**os.environ, "GIT_AUTHOR_DATE": "2020-05-06T12:00:00", "GIT_COMMITTER_DATE": "2020-05-06T12:00:00",
           "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t"}  # fmt: skip
    for cmd in (["init", "-q"], ["add", "bench.json"], ["commit", "-q", "-m", "run"]):
        subprocess.run(["git", "-c", "commit.gpgsign=false", *cmd], cwd=tmp_path, env=git,
                       check=True, capture_output=True)  # fmt: skip
    assert results.run_date({}, path) == "2020-05-06"  # the file itself is from today


def test_environment_and_machine_speed_are_recorded() -> None:
    """Every run's environment has its day and processor; the reference workload times > 0."""
    from surrogates.runs import environment, machine_speed

    env = environment()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", env["date"]) and env["cores"] >= 1
    assert (
        env["git_dirty"] is None if env["git_commit"] is None else env["git_dirty"] in (True, False)
    )
    speed = machine_speed(repeats=3)
    assert 0 < speed["reference_ms"] < 60_000
