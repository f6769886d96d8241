"""Two θ streams, two roles (issue 24): validation θ for every choice, the recorded test set for
reporting only; the cards' test-set numbers against the issue's targets."""

from __future__ import annotations

import builtins
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

import surrogates.metrics as metrics_module
from surrogates.errors import InputError
from surrogates.metrics import (
    TEST_SETS,
    VALIDATION_SEED_OFFSET,
    design_theta,
    make_test_set,
    record_test_set,
    shift_summary,
    test_set_record,
    test_theta,
    validation_theta,
)
from surrogates.resources import checkpoint_dir
from surrogates.theory import get_theory

ROOT = Path(__file__).resolve().parents[1]

# The recorded test sets, pinned: a changed set would silently change every reported number.
PINNED = {
    "proxy": "b517c8e0c11e2d795e19deef74fc9230dcd8a0b776ca4e2dd55afc99a40b6eaf",
    "dis": "e3cb4b1567bd",  # prefix
}

# A tiny fit: few θ, one epoch, a small θ-shift measurement (the evaluation used for choices).
TINY = {
    "seed_everything": 3,
    "model": {"objective": "pdf", "event_variable": "root", "hidden": [8, 8], "transforms": 1,
              "bins": 4, "norm_steps": 50},
    "data": {"n_params": 24, "events_per_param": 4, "grid_size": 16, "batch_size": 8},
    "trainer": {"max_epochs": 2},
    "eval": {"held_out": 2, "events": 300, "shift_events": 2000},
}  # fmt: skip

# sitecustomize for a child process: any read of the test set raises there
GUARD = f"""
import builtins, io
import surrogates.metrics as m

def _refuse(*args, **kwargs):
    raise RuntimeError("a selection path read the test set")

m.test_theta = m.test_set_record = _refuse
_open = io.open

def _guarded(file, *args, **kwargs):
    if str(file).endswith({TEST_SETS.name!r}):
        _refuse()
    return _open(file, *args, **kwargs)

io.open = builtins.open = _guarded
"""


def _forbid_test_set(monkeypatch) -> None:
    """In this process: test_theta, test_set_record and any open of the test-set file raise."""

    def refuse(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("a selection path read the test set")

    monkeypatch.setattr(metrics_module, "test_theta", refuse)
    monkeypatch.setattr(metrics_module, "test_set_record", refuse)
    original = io.open

    def guarded(file, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if str(file).endswith(TEST_SETS.name):
            refuse()
        return original(file, *args, **kwargs)

    monkeypatch.setattr(io, "open", guarded)
    monkeypatch.setattr(builtins, "open", guarded)


@pytest.mark.parametrize("name", ["proxy", "dis"])
def test_recorded_test_set_is_pinned_and_reproducible(name):
    theory = get_theory(name)
    record = test_set_record(theory)  # checks the points against its sha256 and the prior box
    assert record["sha256"].startswith(PINNED[name]) and record["id"].endswith(PINNED[name][:12])
    again = make_test_set(theory, key=["proxy", "dis"].index(name))  # the recipe, once more
    assert again["sha256"] == record["sha256"]
    assert torch.equal(test_theta(theory), torch.as_tensor(record["theta"], dtype=theory.dtype))


@pytest.mark.parametrize("name", ["proxy", "dis"])
def test_test_set_fills_the_box_and_has_near_face_points(name):
    theory = get_theory(name)
    record = test_set_record(theory)
    low, high = theory.prior_low.numpy(), theory.prior_high.numpy()
    u = (test_theta(theory).numpy() - low) / (high - low)
    assert len(u) >= 64 and np.all((u > 0) & (u < 1))
    fill = u[: record["n_fill"]]
    # every parameter's range is filled: 8 equal strata, each with 1/8 of the Sobol' points
    for j in range(theory.n_params):
        counts = np.histogram(fill[:, j], bins=8, range=(0, 1))[0]
        assert np.all(counts == len(fill) // 8), (j, counts)
    # ... beyond the validation θ's 5% inset, in every parameter
    assert np.all(((fill < 0.05) | (fill > 0.95)).sum(0) >= 2)
    near = np.minimum(u, 1 - u) <= 0.02  # coordinates within 2% of a face
    face = u[record["n_fill"] :]
    assert len(face) == record["n_near_face"] >= 16
    assert np.all(near[record["n_fill"] :].any(1))  # each has one or two placed there


@pytest.mark.parametrize("name", ["proxy", "dis"])
def test_validation_and_test_streams_are_distinct_and_disjoint(name):
    theory = get_theory(name)
    test = test_theta(theory).numpy()
    span = (theory.prior_high - theory.prior_low).numpy()
    for seed in (0, 1, 3, 7, 1 + VALIDATION_SEED_OFFSET, 3 + VALIDATION_SEED_OFFSET):
        val = validation_theta(theory, 64, seed).numpy()
        gaps = np.abs((val[:, None, :] - test[None, :, :]) / span).max(-1)  # (64, N) sup norm
        assert gaps.min() > 1e-3, (seed, gaps.min())
    # the test stream is not a Sobol' stream the validation could be given an integer seed for
    assert "SeedSequence" in test_set_record(theory)["stream"]


def test_a_theory_without_a_test_set_and_a_second_recording_are_refused(tmp_path):
    proxy = get_theory("proxy")
    path = tmp_path / "sets.json"
    with pytest.raises(InputError, match="no test set recorded for theory 'proxy'"):
        test_set_record(proxy, path)
    first = record_test_set(proxy, path, n_fill=8, n_face=2)
    assert test_set_record(proxy, path)["id"] == first["id"]
    with pytest.raises(InputError, match="already has a test set"):
        record_test_set(proxy, path)
    sets = json.loads(path.read_text())
    sets["proxy"]["theta"][0][0] += 0.1
    path.write_text(json.dumps(sets))
    with pytest.raises(InputError, match="does not match its sha256"):
        test_set_record(proxy, path)


def test_fit_cli_choices_and_its_evaluation_read_only_validation_theta(tmp_path, monkeypatch):
    """A fit (best checkpoint by validation loss, the held-out θ-shift evaluation) with every
    way to the test set made to raise: it completes, on validation θ of its own seed."""
    from surrogates.training import fit_surrogate

    _forbid_test_set(monkeypatch)
    metrics = fit_surrogate("flow", TINY, out=tmp_path / "run", progress=False)
    assert metrics["theta_set"] == "validation"
    assert metrics["checkpoint"].endswith("best.ckpt")
    proxy = get_theory("proxy")
    expected = validation_theta(proxy, 2, TINY["seed_everything"] + VALIDATION_SEED_OFFSET)
    assert np.allclose(metrics["held_out_theta"], expected.numpy())
    assert np.all(np.isfinite(metrics["theta_shift_crb"]))


@pytest.mark.slow
def test_hpo_objective_never_reads_the_test_set(tmp_path, monkeypatch):
    """The HPO objective (a fit in a child process, scored on its metrics) with the test set
    unreadable in that process: it scores, on validation numbers."""
    pytest.importorskip("deephyper")
    from surrogates.data import simulate_training
    from surrogates.hpo import build_problem, run_evaluation

    simulate_training(get_theory("proxy"), 24, 4, seed=1, grid_size=16).save(tmp_path / "t.npz")
    (tmp_path / "guard").mkdir()
    (tmp_path / "guard" / "sitecustomize.py").write_text(GUARD)
    path = os.pathsep.join([str(tmp_path / "guard"), str(ROOT)])
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.setenv("WANDB_MODE", "disabled")

    class Job:
        id = "0.1"
        parameters = dict(build_problem("flow", ["zuko"]).default_configuration)

    budget = dict(data=str(tmp_path / "t.npz"), epochs=1, seed=2, held_out=1, shift_events=2000)
    budget |= dict(events=300, extra=["--model.norm_steps", "50", "--model.hidden", "[8,8]"])
    score = run_evaluation(Job(), "flow", str(tmp_path / "search"), budget)
    log = (tmp_path / "search" / "evals" / "0001" / "fit.log").read_text()
    assert isinstance(score, dict), (score, log[-2000:])
    run = json.loads((tmp_path / "search" / "evals" / "0001" / "metrics.json").read_text())
    assert run["theta_set"] == "validation" and np.isfinite(score["objective"])


# --- the cards' test-set numbers against issue 24's targets (the test reads, never recomputes)
TARGET = {"flow": 1.0, "gan": 3.0, "vae": 3.0, "vaim": 3.0}  # max |θ shift| / σ_CRB(A)
# Cards that miss today, with the measured test-set max (benchmarks/fidelity.py: docs/results/
# fidelity.md says where and when; the flows were remade 2026-12-07 with the log_theta feature,
# flow-zuko and flow-nflows again on a set with log-uniform b_u, b_d (2026-12-07, 2026-12-08:
# flow-nflows was kept by its validation rule and its test-set max rose 4.44 → 7.16, recorded
# here as measured: docs/notes/2026-12-08-guides-and-bad-input.md), the GAN and the VAE measured
# 2026-12-01; VAIM, remade 2026-12-07, meets its target). Strict
# xfail on TargetMissed
# only: the test fails when one starts meeting its target unannounced, and a regression past
# the recorded number (or a missing block) fails outright.
MISSING: dict[str, float] = {
    "flow-nflows": 7.16,
    "flow-normflows": 7.18,
    "flow-zuko": 3.07,
    "gan": 52.06,
    "vae": 40.30,
}


class TargetMissed(AssertionError):
    """A card's test-set max above issue 24's target."""


def _proxy_cards() -> list[str]:
    return sorted(
        p.stem
        for p in checkpoint_dir().glob("*.json")
        if json.loads(p.read_text()).get("theory", {}).get("theory") == "proxy"
    )


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(
            n,
            marks=pytest.mark.xfail(
                strict=True,
                raises=TargetMissed,
                reason=f"test-set max {MISSING[n]} σ_CRB(A) > target {TARGET[n.split('-')[0]]:g}",
            ),
        )
        if n in MISSING
        else n
        for n in _proxy_cards()
    ],
)
def test_card_test_set_meets_the_issue_target(name):
    card = json.loads((checkpoint_dir() / f"{name}.json").read_text())
    block = card.get("test_set")
    assert block, f"{name}: no test_set block; run benchmarks/fidelity.py --cards checkpoints"
    record = test_set_record(get_theory("proxy"))
    assert block["set"] == "test" and block["sha256"] == record["sha256"]
    assert block["points"] == len(record["theta"]) and "fidelity.py" in block["command"]
    assert block["max_all"] == pytest.approx(max(block["max"]))
    if name in MISSING:  # no worse than measured when listed
        assert block["max_all"] <= MISSING[name] + 0.05, (name, block["max_all"], MISSING[name])
    if block["max_all"] > TARGET[card["family"]]:
        raise TargetMissed(
            f"{name}: test-set max {block['max_all']:.2f} > {TARGET[card['family']]}"
        )


def test_fidelity_page_and_dashboard_show_the_test_set_table(tmp_path):
    """docs/results/fidelity.md is rendered from its JSON with every checkpoint's max / p95 /
    median; the dashboard's test-set table shows each card's block."""
    import importlib.util

    from surrogates.dashboard import build_dashboard

    spec = importlib.util.spec_from_file_location("results", ROOT / "benchmarks" / "results.py")
    results = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(results)
    path = ROOT / "docs" / "results" / "fidelity.json"
    payload = json.loads(path.read_text())
    page = results.benchmark_page("fidelity", payload, path)
    assert payload["test_set"]["id"] in page and "python benchmarks/fidelity.py" in page
    for r in payload["rows"]:
        assert (
            f"| {r['surrogate']} | {r['family']} | {r['max_all']:.2f} | {r['p95_all']:.2f} | {r['median_all']:.2f} |"
            in page
        )
    committed = (ROOT / "docs" / "results" / "fidelity.md").read_text()
    tables = committed[committed.index("Made from:") :].split("\n", 1)[1]
    assert tables in page  # the committed page's tables are the ones its JSON gives
    text = build_dashboard([checkpoint_dir()], tmp_path / "dash").read_text()
    section = text[text.index("<h3>Test set") :]
    for name in _proxy_cards():
        block = json.loads((checkpoint_dir() / f"{name}.json").read_text())["test_set"]
        assert f"<td>{name}</td>" in section and block["id"] in section


@pytest.mark.parametrize("name", ["gan", "vae"])
def test_unit_from_normals_is_the_sampler_with_its_normals_handed_in(name):
    """The quasi-Monte Carlo histograms of benchmarks/fidelity.py feed the samplers' own map:
    the same standard normals give the same events as `sample`."""
    from surrogates.zoo import load_surrogate

    model = load_surrogate(name, theory="proxy").eval()
    theta = test_theta(get_theory("proxy"))[:2].float()
    with torch.no_grad():
        drawn = model._sample_unit(theta, 1, 50, torch.Generator().manual_seed(5))
        gen = torch.Generator().manual_seed(5)
        if name == "gan":
            z = torch.randn(2, 50, model.noise_dim, generator=gen)
        else:  # the VAE draws its latent, then the decoder's Gaussian
            w = torch.randn(2, 50, model.noise_dim - 1, generator=gen)
            z = torch.cat([w, torch.randn(2, 50, 1, generator=gen)], -1)
        handed = model.unit_from_normals(theta, 1, z)
    assert torch.allclose(drawn, handed) and drawn.std() > 0


def test_budget_page_is_its_json_and_every_fit_had_the_same_steps():
    """docs/results/budget.md (issue 24's training-size curve) is rendered from its JSON; every
    point trained for the stated steps (to within one epoch) and its max is over all test θ."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("results", ROOT / "benchmarks" / "results.py")
    results = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(results)
    path = ROOT / "docs" / "results" / "budget.json"
    payload = json.loads(path.read_text())
    record = test_set_record(get_theory(payload["theory"]))
    assert payload["test_set"]["sha256"] == record["sha256"]
    assert {128} < {r["grid_size"] for r in payload["rows"]} and len(payload["rows"]) >= 5
    for r in payload["rows"]:
        shifts = np.abs(np.asarray(r["shifts"]))
        assert shifts.shape == (len(record["theta"]), len(record["param_names"]))
        assert r["max_all"] == pytest.approx(shifts.max())
        per_epoch = -(-(r["n_params"] - round(0.1 * r["n_params"])) // 256)
        assert abs(r["steps"] - payload["steps"]) <= per_epoch
    page = results.benchmark_page("budget", payload, path)
    committed = (ROOT / "docs" / "results" / "budget.md").read_text()
    tables = committed[committed.index("Made from:") :].split("\n", 1)[1]
    assert tables in page and "python benchmarks/budget.py" in page
    for r in payload["rows"]:  # each row says when and beside what its train seconds ran
        if "run_date" in r:
            assert f"| {r['run_date']}, {r['fits_at_a_time']} at a time" in page


def test_shift_summary_reads_per_parameter_and_per_point():
    """The headline statistics: per parameter over the points, and over all of each point's worst;
    signs do not matter and a malformed array is refused."""
    shifts = np.array([[0.1, -2.0], [-0.5, 0.2], [0.3, 0.4], [1.5, 0.0]])
    s = shift_summary(shifts)
    assert s["max"] == [1.5, 2.0] and s["max_all"] == 2.0
    assert s["median"] == pytest.approx([0.4, 0.3])
    assert s["median_all"] == pytest.approx(np.median([2.0, 0.5, 0.4, 1.5]))
    assert s["p95_all"] == pytest.approx(np.percentile([2.0, 0.5, 0.4, 1.5], 95))
    with pytest.raises(Exception, match="shape"):
        shift_summary(np.zeros(3))


def test_shift_map_validates_on_the_test_design_of_another_stream(tmp_path):
    """benchmarks/shift_map.py --design box measures at the test set's design (box filled, faces
    included) drawn on the stream of --seed, never the recorded set's own stream (seed 0 refused
    in one line); --design test is the recorded set, for reporting."""
    import subprocess
    import sys

    from surrogates.models import FlowSurrogate
    from surrogates.zoo import save_model

    torch.manual_seed(0)
    ckpt = str(save_model(FlowSurrogate(transforms=1, bins=4, hidden=(8, 8)).eval(), tmp_path / "f.ckpt"))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(ROOT / "benchmarks/shift_map.py"), ckpt, *args],
            capture_output=True, text=True, cwd=tmp_path,
        )  # fmt: skip

    out = tmp_path / "box.json"
    done = run("--design", "box", "--points", "4", "--face-points", "2", "--seed", "5", "--out", str(out))
    assert done.returncode == 0, done.stderr
    row = json.loads(out.read_text())["rows"][0]
    assert row["points"] == 6 and row["near_face"] == 2
    shifts = np.abs(np.asarray(row["shifts"]))
    assert shifts.shape == (6, 6) and np.isfinite(shifts).all()
    assert row["near_face_max"] == pytest.approx(shifts[4:].max(1).max())
    assert row["above_1"] == int((shifts.max(1) > 1).sum())
    # its θ are make_test_set's on stream 5: the largest shift sits at one of them, at no
    # point of the recorded test set
    box = np.asarray(make_test_set(get_theory("proxy"), 4, 2, key=5)["theta"])
    at = np.asarray(row["largest_at"]["theta"])
    assert np.abs(box - at).max(1).min() < 1e-9
    assert np.abs(np.asarray(test_set_record(get_theory("proxy"))["theta"]) - at).max(1).min() > 1e-3
    refused = run("--design", "box", "--seed", "0", "--out", str(tmp_path / "no.json"))
    assert refused.returncode == 2 and not (tmp_path / "no.json").exists()
    assert "recorded test set's own stream" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr


def test_fidelity_merge_replaces_one_row_and_keeps_the_others(tmp_path, monkeypatch):
    """benchmarks/fidelity.py --merge: the named checkpoint's row is measured again in its old
    place, the other rows and their cards stay as they were, each row says which run made it;
    a JSON of another test set, or none, is refused in one line."""
    import importlib.util
    import shutil
    import sys

    spec = importlib.util.spec_from_file_location("fidelity_cli", ROOT / "benchmarks/fidelity.py")
    fidelity = importlib.util.module_from_spec(spec)
    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    spec.loader.exec_module(fidelity)
    old = json.loads((ROOT / "docs/results/fidelity.json").read_text())
    out, cards = tmp_path / "fidelity.json", tmp_path / "cards"
    out.write_text(json.dumps(old))
    cards.mkdir()
    for r in old["rows"]:
        shutil.copy(checkpoint_dir() / f"{r['surrogate']}.json", cards)
    target = old["rows"][1]["surrogate"]

    def fake_measure(name, theory, theta, counts, args):  # noqa: ANN001, ANN202
        shifts = np.full((len(theta), theory.n_params), 0.25)
        return {**old["rows"][1], "surrogate": name, "shifts": shifts.tolist(),
                **fidelity.summary(shifts, list(theory.param_names), theta.numpy()),
                "cross_check": None}  # fmt: skip

    monkeypatch.setattr(fidelity, "measure", fake_measure)
    argv = ["fidelity.py", target, "--out", str(out), "--cards", str(cards), "--merge"]
    monkeypatch.setattr(sys, "argv", [*argv, "--check-points", "0"])
    fidelity.main()
    new = json.loads(out.read_text())
    assert [r["surrogate"] for r in new["rows"]] == [r["surrogate"] for r in old["rows"]]
    for before, after in zip(old["rows"], new["rows"]):
        if after["surrogate"] == target:
            assert after["max_all"] == pytest.approx(0.25) and "--merge" in after["command"]
        else:  # kept as measured, with the run that made it (the file's first run, unless merged)
            assert after["max_all"] == before["max_all"] and after["shifts"] == before["shifts"]
            first = (old["environment"]["git_commit"], "python " + " ".join(old["environment"]["argv"]))
            assert (after["commit"], after["command"]) == (before.get("commit", first[0]), before.get("command", first[1]))
    for r in old["rows"]:
        block = json.loads((cards / f"{r['surrogate']}.json").read_text())["test_set"]
        was = json.loads((checkpoint_dir() / f"{r['surrogate']}.json").read_text())["test_set"]
        assert (block == was) == (r["surrogate"] != target)
    page = fidelity.results.benchmark_page("fidelity", new, out)
    assert "| measured |" in page and f"{target}: `python benchmarks/fidelity.py" in page
    # refused before anything is written: no file to merge into, or another test set's
    for bad in ("missing.json", "other.json"):
        if bad == "other.json":
            (tmp_path / bad).write_text(json.dumps({**old, "test_set": {"sha256": "0" * 64}}))
        monkeypatch.setattr(sys, "argv", ["fidelity.py", target, "--merge", "--out", str(tmp_path / bad)])
        with pytest.raises(SystemExit) as err:
            fidelity.main()
        assert err.value.code == 2


def test_design_theta_gives_each_designs_points_and_refuses_the_test_stream():
    """design_theta, shared by shift_map.py and event_closure.py: sobol is the validation θ (inset
    5%), box the test set's design on another stream (seed 0 refused), test the recorded set."""
    theory = get_theory("proxy")
    theta, n_fill, set_id = design_theta(theory, "sobol", 8, seed=3)
    assert torch.equal(theta, validation_theta(theory, 8, 3)) and n_fill == 8 and set_id == "sobol-3"
    theta, n_fill, set_id = design_theta(theory, "box", 8, 4, seed=3)
    want = make_test_set(theory, 8, 4, key=3)["theta"]
    assert np.allclose(theta.numpy(), want) and (n_fill, set_id) == (8, "box-3")
    low, high = theory.prior_low.numpy(), theory.prior_high.numpy()
    near = np.minimum(theta.numpy() - low, high - theta.numpy()) / (high - low)
    assert (near[8:].min(1) < 0.02).all() and theta.shape == (12, 6)
    record = test_set_record(theory)
    theta, n_fill, set_id = design_theta(theory, "test", 8)
    assert np.allclose(theta.numpy(), record["theta"]) and set_id == record["id"]
    assert n_fill == record["n_fill"]
    assert design_theta(theory, "sobol", 0)[0].shape == (0, 6)
    with pytest.raises(InputError, match="recorded test set's own"):
        design_theta(theory, "box", 8, seed=0)
    with pytest.raises(InputError, match="choose sobol, box or test"):
        design_theta(theory, "grid", 8)
