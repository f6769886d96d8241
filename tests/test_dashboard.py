"""The local comparison dashboard, built from tiny real runs and opened in headless Chromium."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from surrogates.dashboard import build_dashboard, find_runs, load_run
from surrogates.dashboard import main as dashboard_main
from surrogates.data import CASES, simulate_observed, write_events
from surrogates.resources import checkpoint_dir
from surrogates.theory import get_theory
from surrogates.tracking import read_wandb_run
from tests.conftest import run_cli

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _cli(module: str, args: list[str], **env: str) -> None:
    """``python -m MODULE ARGS`` in a child process (its own wandb service when offline)."""
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=os.environ | {"OMP_NUM_THREADS": "1"} | env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def _tiny_fit(family: str, out: Path, *extra: str, **env: str) -> None:
    args = [family, "--config", str(ROOT / "configs" / "surrogates" / f"{family}.yaml")]
    args += [*extra, "--data.n_params", "48", "--data.events_per_param", "4"]
    args += ["--data.grid_size", "32", "--data.batch_size", "16", "--model.norm_steps", "100"]
    args += ["--trainer.max_epochs", "2", "--trainer.enable_progress_bar", "false"]
    args += ["--eval.held_out", "2", "--eval.events", "500", "--eval.shift_events", "5000"]
    _cli("surrogates.fit", [*args, "--out", str(out)], **env)


def _inverse_fit(events: Path, out: Path, **env: str) -> None:
    args = ["--events", str(events), "--source", "exact", "--steps", "60", "--replicas", "3"]
    args += ["--events-per-step", "32", "--no-progress", "--out", str(out)]
    args += ["--posterior", "false"]  # the page shows no posterior; emcee took ~30 s here
    _cli("inverse.fit", args, **env)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Real runs of every kind the dashboard reads: two surrogate run directories, an inverse
    run directory with its offline wandb run, a folder holding only an offline wandb run, and a
    folder holding only a Lightning CSV log."""
    base = tmp_path_factory.mktemp("runs")
    root = base / "runs"
    _tiny_fit("vaim", root / "vaim", WANDB_MODE="offline")
    _tiny_fit("flow", root / "flow-zuko", "--model.hidden", "[8, 8]", "--model.transforms", "1")
    theory = get_theory("proxy")
    data = simulate_observed(theory, np.array(theory.truth), CASES["C"], seed=11)
    events = write_events(base / "obs.npz", data, theory.channels)
    _inverse_fit(events, root / "inv-exact", WANDB_MODE="offline")
    # the same run's offline wandb folder alone, and its CSV log alone
    shutil.copytree(root / "inv-exact" / "wandb", root / "only-wandb" / "wandb", symlinks=True)
    shutil.copytree(root / "inv-exact" / "logs", root / "only-csv" / "logs")
    return root


def test_runs_of_every_origin_are_found_and_read(runs):
    found = [load_run(p, runs) for p in find_runs([runs])]
    by_name = {r.name: r for r in found}
    assert sorted((r.origin, r.kind) for r in found) == [
        ("CSV log", "inverse"),
        ("run dir", "inverse"),
        ("run dir", "surrogate"),
        ("run dir", "surrogate"),
        ("wandb offline", "inverse"),
    ], [(r.name, r.origin, r.kind) for r in found]
    assert {"vaim", "flow-zuko", "inv-exact", "only-csv (csv)"} <= set(by_name)
    # what the offline wandb run says is what the run directory says
    wandb_run = next(r for r in found if r.origin == "wandb offline")
    direct = by_name["inv-exact"]
    assert wandb_run.name.startswith("only-wandb (wandb ")
    np.testing.assert_allclose(wandb_run.metrics["params_mean"], direct.metrics["params_mean"])
    np.testing.assert_allclose(wandb_run.metrics["pull"], direct.metrics["pull"])
    assert wandb_run.metrics["mle"]["params"] == direct.metrics["mle"]["params"]
    assert wandb_run.config["source"] == "exact" and wandb_run.config["steps"] == 60
    assert {"traces", "curves", "events"} <= set(wandb_run.images)
    # the curves agree too: wandb history and the CSV log hold the same logged values
    x_w, y_w = wandb_run.curves["g_shape"]
    x_c, y_c = by_name["only-csv (csv)"].curves["g_shape"]
    np.testing.assert_allclose(x_w, x_c)
    np.testing.assert_allclose(y_w, y_c, rtol=1e-6)
    assert by_name["only-csv (csv)"].metrics["steps"] == x_c.max()
    assert by_name["vaim"].family == "vaim" and by_name["flow-zuko"].backend == "zuko"
    assert len(by_name["vaim"].curves["val_loss@epoch"][0]) == 2  # one point per epoch


def test_offline_wandb_run_summary_table_and_tags(runs):
    run = read_wandb_run(next((runs / "inv-exact" / "wandb").glob("offline-run-*")))
    metrics = json.loads((runs / "inv-exact" / "metrics.json").read_text())
    assert run.group == "inverse" and run.job_type == "outer-gan" and run.name == "inv-exact"
    assert {"inverse", "proxy", "exact"} <= set(run.tags)
    assert run.summary["steps"] == metrics["steps"]
    assert run.summary["pull/N_u"] == pytest.approx(metrics["pull"][0])
    assert run.summary["recovered_theta"]["_type"] == "table-file"
    assert (run.path / "files" / run.summary["recovered_theta"]["path"]).is_file()
    # a surrogate fit: resolved config, per-parameter fidelity, held-out table, image
    fit_run = read_wandb_run(next((runs / "vaim" / "wandb").glob("offline-run-*")))
    fit_metrics = json.loads((runs / "vaim" / "metrics.json").read_text())
    assert fit_run.group == "vaim" and fit_run.job_type == "fit" and "proxy" in fit_run.tags
    assert fit_run.config["family"] == "vaim" and fit_run.config["seed"] == 1
    assert fit_run.config["data"]["n_params"] == 48 and fit_run.config["theory"] == "proxy"
    assert fit_run.summary["theta_shift_crb/b_d"] == pytest.approx(
        fit_metrics["theta_shift_crb"][5]
    )
    assert fit_run.summary["held_out_fidelity"]["nrows"] == 2 and "heldout" in fit_run.images
    assert any("val_loss" in row for row in fit_run.history)
    # a run file cut off mid-write (a killed job) is read up to the tear
    cut = runs.parent / "cut.wandb"
    data = next(run.path.glob("run-*.wandb")).read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    partial = read_wandb_run(cut)
    assert partial.run_id == run.run_id and 0 < len(partial.history) <= len(run.history)


def test_dashboard_page_holds_every_run_and_plot(runs, tmp_path):
    page = build_dashboard([runs], tmp_path / "dash")
    text = page.read_text()
    assert "<script src" not in text and "http://" not in text and "https://" not in text
    cells = re.findall(r"<tbody>(.*?)</tbody>", text, re.S)[0]
    for name in ("vaim", "flow-zuko", "inv-exact", "only-csv (csv)", "only-wandb (wandb "):
        assert f"<td>{name}" in cells, name
    assert text.count("<h3>Induced parameter shift") == 1
    assert "<h3>vaim</h3>" in text and "<h3>flow</h3>" in text  # curves overlaid per family
    for plot in ("traces", "curves", "events", "heldout"):
        assert f": {plot}" in text, plot
    assert text.count('src="data:image/png;base64,') >= 10


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("CI_REQUIRE_CHROMIUM"),
    reason="Debian's chromium is not installed (.ci/run installs it: apt-get install chromium)",
)
def test_dashboard_in_headless_chromium(runs, tmp_path):
    playwright = pytest.importorskip("playwright.sync_api")
    assert CHROMIUM, "CI_REQUIRE_CHROMIUM is set but no chromium on PATH"
    page_path = build_dashboard([runs], tmp_path / "dash")
    n_runs = len(find_runs([runs]))
    problems: list[str] = []
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on(
            "console",
            lambda m: (
                problems.append(f"{m.type}: {m.text}") if m.type in ("error", "warning") else None
            ),
        )
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
        page.goto(page_path.as_uri())
        page.wait_for_load_state("load")
        rows = page.locator("#runs tbody tr")
        assert rows.count() == n_runs
        names = rows.locator("td:first-child").all_inner_texts()
        for name in ("vaim", "flow-zuko", "inv-exact", "only-csv (csv)"):
            assert name in names
        # every image decoded
        assert page.evaluate(
            "Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)"
        )
        assert page.evaluate("document.images.length") >= 10
        # sorting: click 'seconds' twice → descending order of the numbers shown
        col = page.locator("#runs thead th").all_inner_texts().index("seconds")
        header = page.locator("#runs thead th").nth(col)
        header.click()
        header.click()
        assert header.get_attribute("aria-sort") == "descending"
        values = page.evaluate(
            f"Array.from(document.querySelectorAll('#runs tbody tr'))"
            f".map(r => r.cells[{col}].dataset.v).filter(v => v !== '').map(Number)"
        )
        assert len(values) == n_runs - 1 and values == sorted(values, reverse=True)
        # filtering hides the rows that do not match
        page.fill("#filter", "vaim")
        assert page.locator("#runs tbody tr:visible").count() == 1
        page.fill("#filter", "")
        shot = tmp_path / "dashboard.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert problems == []
    assert shot.stat().st_size > 50_000
    out = os.environ.get("DASHBOARD_SCREENSHOT")
    if out:  # .ci/run keeps the screenshot of this run
        shutil.copy(shot, out)


def test_dashboard_cli_errors(tmp_path, capsys):
    status, _, err = run_cli(
        dashboard_main, [str(tmp_path / "nope"), "--out", str(tmp_path)], capsys
    )
    assert status == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1
    (tmp_path / "empty").mkdir()
    status, _, err = run_cli(
        dashboard_main, [str(tmp_path / "empty"), "--out", str(tmp_path / "d")], capsys
    )
    assert status == 2 and "no runs under" in err and len(err.strip().splitlines()) == 1
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.json").write_text("{not json")
    status, _, err = run_cli(dashboard_main, [str(bad), "--out", str(tmp_path / "d")], capsys)
    assert status == 2 and "not valid JSON" in err and "skipped" in err  # then: no runs at all
    (bad / "metrics.json").write_text("[1, 2]")  # JSON, but not a fit's object
    status, _, err = run_cli(dashboard_main, [str(bad), "--out", str(tmp_path / "d")], capsys)
    assert status == 2 and "holds a JSON list" in err and "skipped" in err, err


def test_running_fits_count_once_and_broken_runs_are_skipped(runs, tmp_path, capsys):
    root = tmp_path / "runs"
    # a fit still training: config and CSV log and its wandb run, no metrics.json yet
    shutil.copytree(runs / "inv-exact" / "logs", root / "running" / "logs")
    shutil.copy(runs / "inv-exact" / "config.yaml", root / "running" / "config.yaml")
    shutil.copytree(runs / "inv-exact" / "wandb", root / "running" / "wandb", symlinks=True)
    # a wandb run file that is not one, and a user's own folder named tmp holding a run
    (root / "broken" / "wandb" / "offline-run-x").mkdir(parents=True)
    (root / "broken" / "wandb" / "offline-run-x" / "run-x.wandb").write_bytes(b"garbage")
    shutil.copytree(runs / "vaim", root / "tmp" / "vaim", ignore=shutil.ignore_patterns("wandb"))
    page = build_dashboard([root], tmp_path / "dash")
    err = capsys.readouterr().err
    assert "skipped" in err and "broken" in err and len(err.strip().splitlines()) == 1
    found = [load_run(p, root) for p in find_runs([root]) if "broken" not in str(p)]
    assert sorted((r.name, r.origin) for r in found) == [
        ("running", "run dir (running)"),
        ("tmp/vaim", "run dir"),
    ]
    running = next(r for r in found if r.name == "running")
    assert running.kind == "inverse" and running.metrics["steps"] > 0
    assert "<td>running</td>" in page.read_text()


# --- the zoo: checkpoint cards as runs ------------------------------------------------------

BUILT = re.compile(r"built \d{4}-\d\d-\d\d \d\d:\d\d")


def _row(text: str, table: int, name: str) -> list[str]:
    """The cells shown in the row of ``name`` in the ``table``-th table of a page."""
    body = re.findall(r"<tbody>(.*?)</tbody>", text, re.S)[table]
    row = next(r for r in body.split("</tr>") if f"<td>{name}</td>" in r)
    return [html.unescape(c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row)]


def test_zoo_page_lists_every_card_with_its_own_numbers(tmp_path, capsys):
    status, out, _ = run_cli(dashboard_main, ["--zoo", "--out", str(tmp_path)], capsys)
    assert status == 0, out
    text = (tmp_path / "index.html").read_text()
    cards = {p.stem: json.loads(p.read_text()) for p in checkpoint_dir().glob("*.json")}
    head = re.findall(r"<thead>(.*?)</thead>", text, re.S)[0]
    columns = [html.unescape(c) for c in re.findall(r"<th[^>]*>(.*?)</th>", head)]
    shift_col, c2st_col = columns.index("θ shift max (σ_CRB)"), columns.index("C2ST AUC max")
    for name, card in cards.items():
        cells = _row(text, 0, name)
        m = card["metrics"]
        assert cells[columns.index("read from")] == "zoo card"
        assert cells[columns.index("theory")] == card["theory"]["theory"]
        free = m.get("theta_shift_crb") is None  # a generator's surrogate: its density-free report
        shift = max(abs(v) for v in m["theta_shift_surrogate_crb" if free else "theta_shift_crb"])
        assert cells[shift_col] == f"{shift:.3g}", name
        c2st = max(m["c2st_auc_generator" if free else "c2st_auc"])
        assert cells[c2st_col] == f"{c2st:.3g}", name
    # flow-zuko: shift per parameter, named by the card's theory, as the card has them
    zuko = _row(text[text.index("<h3>Induced parameter shift") :], 0, "flow-zuko")
    assert zuko[3:] == [f"{v:.3g}" for v in cards["flow-zuko"]["metrics"]["theta_shift_crb"]]
    assert "No curves for the checkpoints read from their cards" in text
    assert "No held-out histograms" in text and "data:image/png" not in text
    assert "theory dis" in text and "deuteron" in text  # the DIS card gets its own tables


def test_broken_cards_are_skipped_with_a_note(tmp_path, capsys):
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    good = json.loads((checkpoint_dir() / "flow-zuko.json").read_text())
    (zoo / "good.json").write_text(json.dumps(good | {"name": "good"}))
    (zoo / "broken.json").write_text("{not json")
    (zoo / "bare.json").write_text(json.dumps({"family": "flow"}))
    (zoo / "notes.json").write_text("{not a card: no .ckpt beside it")
    for name in ("good", "broken", "bare"):
        (zoo / f"{name}.ckpt").write_bytes(b"")
    status, _, err = run_cli(dashboard_main, [str(zoo), "--out", str(tmp_path / "d")], capsys)
    assert status == 0
    lines = err.strip().splitlines()
    assert len(lines) == 2 and all(line.startswith("dashboard: skipped") for line in lines)
    assert any("broken.json" in line and "not valid JSON" in line for line in lines)
    assert any("bare.json" in line and "no 'metrics'" in line for line in lines)
    text = (tmp_path / "d" / "index.html").read_text()
    assert "skipped 2:" in text and "<td>good</td>" in text and "notes" not in text
    status, _, err = run_cli(dashboard_main, ["--out", str(tmp_path / "e")], capsys)
    assert status == 2 and "--zoo" in err and len(err.strip().splitlines()) == 1


def test_committed_example_page_is_what_the_zoo_gives(tmp_path, capsys):
    status, _, _ = run_cli(dashboard_main, ["--zoo", "--out", str(tmp_path)], capsys)
    assert status == 0
    fresh = BUILT.sub("built X", (tmp_path / "index.html").read_text())
    committed = BUILT.sub("built X", (ROOT / "docs" / "dashboard" / "index.html").read_text())
    assert fresh == committed, (
        "docs/dashboard/index.html is stale: python -m surrogates.dashboard --zoo "
        "--out docs/dashboard --screenshot docs/dashboard.png"
    )
