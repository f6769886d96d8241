"""Pseudo-experiment studies (inverse.study): the same data sets anywhere, summaries with coverage
and SBC fields, resuming after a lost result, other settings refused, Dask parity."""

from __future__ import annotations

import json

import numpy as np
import pytest

from inverse.study import aggregate, draw_truth, pseudo_experiment, run_study
from inverse.training import load_config
from surrogates.data import CASES
from surrogates.errors import InputError
from surrogates.likelihood import crb_std
from surrogates.theory import get_theory


@pytest.fixture(scope="module")
def proxy():
    return get_theory("proxy")


def test_a_pseudo_experiment_depends_on_seed_and_index_only(proxy):
    truth, data = pseudo_experiment(proxy, "C", 4, 11, "prior")
    again_truth, again = pseudo_experiment(proxy, "C", 4, 11, "prior")
    other_truth, other = pseudo_experiment(proxy, "C", 5, 11, "prior")
    assert np.array_equal(truth, again_truth) and np.array_equal(data.events[0], again.events[0])
    assert not np.array_equal(truth, other_truth) and len(data.events[0]) != 0
    assert np.array_equal(data.theta_true, truth) and data.meta["pseudo_experiment"] == 4
    low, high = proxy.prior_low.numpy(), proxy.prior_high.numpy()
    assert ((truth > low) & (truth < high)).all()
    fixed, _ = pseudo_experiment(proxy, "C", 0, 1, "fixed")
    assert np.allclose(fixed, proxy.truth.numpy())


def test_near_face_truths_have_a_parameter_within_one_crb_sigma_of_a_face(proxy):
    low, high = proxy.prior_low.numpy(), proxy.prior_high.numpy()
    for i in range(8):
        truth = draw_truth(proxy, "B", i, 2, "near-face")
        sigma = crb_std(proxy, truth, CASES["B"])
        distance = np.minimum(truth - low, high - truth) / sigma
        assert ((truth >= low) & (truth <= high)).all()
        assert distance.min() <= 1.0 + 1e-6, (i, truth, distance)
    with pytest.raises(InputError, match="--truths"):
        draw_truth(proxy, "B", 0, 2, "edge")


def test_a_tiny_study_gives_coverage_and_resumes_only_what_is_missing(tmp_path, study, records):
    out = tmp_path / "s"
    summary = run_study(study(out), 6, workers=2, progress=False)
    assert summary["n"] == 6 and summary["run"]["computed"] == 6
    for name in ("mle", "posterior"):
        row = summary["fitters"][name]["params"]["b_d"]
        assert 0 <= row["coverage_1sigma"] <= 1 and row["coverage_1sigma_se"] >= 0
        assert len(row["coverage_curve"]["coverage"]) == len(row["coverage_curve"]["levels"])
        assert np.isfinite(row["pull_rms"]) and row["pull_rms"] > 0
    sbc = summary["fitters"]["posterior"]["params"]["N_u"]["sbc"]
    assert sum(sbc["counts"]) == 6 and sbc["ranked_among"] == 99
    assert summary["sbc_valid"] is True  # truths from the prior
    against = summary["fitters"]["mle"]["against_posterior"]["a_u"]
    assert 0.2 < against["sigma_over_post_mean"] < 5  # the MLE's Hessian σ beside the posterior's
    for png in ("coverage.png", "sbc.png", "pulls.png"):
        assert (out / png).stat().st_size > 1000
    assert json.loads((out / "summary.json").read_text())["n"] == 6
    before = records(out)

    (out / "experiments" / "00002.json").unlink()
    (out / "experiments" / ".00004.json.x.part").write_text("{cut")  # a write cut by a kill
    again = run_study(study(out), 6, workers=1, progress=False)
    assert (again["run"]["computed"], again["run"]["kept"]) == (1, 5)
    assert records(out) == before  # the same data and fits, whatever the worker count
    assert not list((out / "experiments").glob(".*.part"))


def test_a_rerun_with_other_settings_is_refused_in_one_line(tmp_path, study):
    out = tmp_path / "s"
    run_study(study(out, ("mle",)), 2, progress=False)
    for other in (study(out, ("mle",), seed=4), study(out, ("mle",), truths="near-face")):
        with pytest.raises(InputError, match="--overwrite") as err:
            run_study(other, 2, progress=False)
        assert "\n" not in str(err.value) and "other settings" in str(err.value)
    # a nested setting is named by its dotted key, a missing one shows as null
    from inverse.study import _differences

    assert _differences(
        {"gan": {"a": 1}, "seed": 2}, {"gan": {"a": 1, "face_cut": True}, "seed": 2}
    ) == ["gan.face_cut null ≠ true"]
    more = run_study(study(out, ("mle",)), 3, progress=False)  # a larger --n extends it
    assert (more["run"]["computed"], more["n"]) == (1, 3)
    assert aggregate(out, 2)["n"] == 2


def test_a_study_written_before_a_new_option_resumes_unless_the_option_is_on(tmp_path, study):
    """A manifest lacking fit settings added since (here gan.d_smooth and gan.bootstrap_restart)
    resumes when the rerun leaves them at their defaults; one turned on is another study, and a
    setting the old study had away from its default still counts."""
    from dataclasses import replace

    from inverse.study import MANIFEST, _check_manifest

    s = study(tmp_path / "s", ("gan",))
    new = s.manifest()
    old = json.loads(json.dumps(new))
    del old["gan"]["gan"]["d_smooth"], old["gan"]["gan"]["bootstrap_restart"]
    out = tmp_path / "s"
    out.mkdir()
    (out / MANIFEST).write_text(json.dumps(old))
    assert _check_manifest(out, new, overwrite=False) is True
    on = replace(s, config=replace(s.config, gan=replace(s.config.gan, d_smooth=4, d_quantiles=8)))
    with pytest.raises(InputError, match="gan.gan.d_smooth 0 ≠ 4"):
        _check_manifest(out, on.manifest(), overwrite=False)
    old["gan"]["stop"]["enabled"] = not new["gan"]["stop"]["enabled"]
    (out / MANIFEST).write_text(json.dumps(old))
    with pytest.raises(InputError, match="gan.stop.enabled"):
        _check_manifest(out, new, overwrite=False)
    # a setting whose default is not what the package did before it (face_cut) is not filled in
    old["gan"]["stop"]["enabled"] = new["gan"]["stop"]["enabled"]
    del old["gan"]["face_cut"]
    (out / MANIFEST).write_text(json.dumps(old))
    with pytest.raises(InputError, match="gan.face_cut null"):
        _check_manifest(out, new, overwrite=False)


def test_added_settings_are_filled_with_values_that_leave_the_fit_as_before():
    """Each setting `_with_defaults` fills is an option of FitConfig, and its value is the
    option's default, the one that changes nothing (d_smooth_from acts only with d_smooth)."""
    from inverse.config import FitConfig, to_dict
    from inverse.study import ADDED_SETTINGS

    defaults = to_dict(FitConfig())
    for key, value in ADDED_SETTINGS.items():
        assert defaults["gan"][key] == value, key
    assert defaults["gan"]["d_smooth"] == 0  # so d_smooth_from has no effect at its default


def test_the_dask_engine_gives_the_same_records(tmp_path, study, records):
    pytest.importorskip("dask.distributed")
    run_study(study(tmp_path / "local", ("mle",)), 3, progress=False)
    run_study(study(tmp_path / "dask", ("mle",)), 3, engine="dask", workers=2, progress=False)
    assert records(tmp_path / "dask") == records(tmp_path / "local")


@pytest.mark.slow
def test_the_gan_fitter_records_its_replica_ranks_and_distance_to_the_posterior(
    tmp_path, monkeypatch, study
):
    import os
    from dataclasses import replace

    monkeypatch.setenv("WANDB_MODE", "offline")  # a user's setting: the study's fits start no run

    cfg = replace(load_config("configs/inverse/proxy.yaml"), steps=40, replicas=4)
    s = study(tmp_path, ("gan", "mle", "posterior"), seed=1, truths="near-face", config=cfg)
    summary = run_study(s, 2, progress=False)
    gan = summary["fitters"]["gan"]
    assert gan["params"]["N_u"]["sbc"]["ranked_among"] == cfg.replicas - cfg.data_replicas
    assert np.isfinite(gan["against_posterior"]["b_d"]["sigma_over_post_mean"])
    assert (tmp_path / "fits" / "00001" / "params.npz").is_file()
    from pathlib import Path

    from inverse.faces import reported_ranks
    from inverse.study import read_records

    for record in read_records(tmp_path).values():  # every replica's θ, for benchmarks/faces.py
        fit = record["fits"]["gan"]
        with np.load(fit["run"] + "/params.npz") as f:
            assert np.allclose(fit["replicas"], f["theta"])
        assert isinstance(fit["at_face"], list)
        # SBC ranks: among the bootstrap replicas, and in what the fit's metrics.json reports
        boot, truth = np.asarray(fit["replicas"])[cfg.data_replicas :], np.asarray(record["truth"])
        assert fit["rank_replicas"] == (boot < truth).sum(0).tolist()
        m = json.loads((Path(fit["run"]) / "metrics.json").read_text())
        names = m["param_names"]
        cut = {names.index(n): found for n, found in (m.get("at_face") or {}).items()}
        arrays = [np.asarray(m[k], float) for k in ("replicas_mean", "replicas_std", "params_mean",
                                                     "params_std")]  # fmt: skip
        low, high = (
            np.asarray(get_theory("proxy").prior_low),
            np.asarray(get_theory("proxy").prior_high),
        )
        _, rank = reported_ranks(boot, truth, *arrays, cut, low, high)
        assert fit["rank"] == rank
    assert not list((tmp_path / "fits").glob("*/wandb")) and os.environ["WANDB_MODE"] == "offline"


def test_a_failed_fit_is_recorded_and_counted_not_fatal(tmp_path, monkeypatch, study):
    import inverse.study as module

    fit = module._fit_posterior

    def fails_once(theory, data, truth, *args):
        if data.meta["pseudo_experiment"] == 1:
            raise ValueError("walkers stuck")
        return fit(theory, data, truth, *args)

    monkeypatch.setattr(module, "_fit_posterior", fails_once)
    summary = run_study(study(tmp_path), 3, workers=1, progress=False)
    post = summary["fitters"]["posterior"]
    assert (post["n"], post["failed"]) == (2, [1]) and summary["fitters"]["mle"]["n"] == 3
    record = json.loads((tmp_path / "experiments" / "00001.json").read_text())
    assert record["fits"]["posterior"] == {"error": "ValueError: walkers stuck"}


def test_the_command_on_two_workers_writes_its_summary_with_a_clean_stderr(tmp_path):
    """`python -m inverse.study` on local worker processes: the workers import the job by module
    name and run the main module again; nothing of that may reach the user as a warning."""
    import os
    import subprocess
    import sys

    out = tmp_path / "study"
    cmd = [sys.executable, "-m", "inverse.study", "--case", "C", "--n", "2", "--fitters", "mle"]
    cmd += ["--workers", "2", "--seed", "5", "--out", str(out), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "default"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "2 computed, 0 kept" in done.stdout
    assert json.loads((out / "summary.json").read_text())["n"] == 2
    assert "Warning" not in done.stderr, done.stderr


def test_an_mle_parameter_on_a_face_is_left_out_of_the_pulls_not_of_the_coverage():
    """A parameter on a face of the box has no Hessian σ: its (huge) pull must not swamp the pull
    statistics of a study; it still counts in the coverage."""
    from inverse.study import _fitter_summary

    names = ["a", "b"]
    rng = np.random.default_rng(0)
    records = []
    for i in range(40):
        truth = rng.uniform(-1, 1, 2)
        mean = truth + 0.1 * rng.standard_normal(2)
        fit = {"mean": mean.tolist(), "std": [0.1, 0.1], "seconds": 1.0, "at_boundary": []}
        if i < 5:  # 'a' on a face: a σ from a one-sided curvature, far too small
            fit["mean"][0], fit["std"][0], fit["at_boundary"] = truth[0] - 2.0, 1e-9, ["a"]
        records.append({"i": i, "truth": truth.tolist(), "fits": {"mle": fit}})
    out = _fitter_summary(records, "mle", names)
    a, b = out["params"]["a"], out["params"]["b"]
    assert out["at_boundary"] == 5 and (a["at_boundary"], b["at_boundary"]) == (5, 0)
    assert (a["pulls"], b["pulls"]) == (35, 40)
    assert 0.6 < a["pull_rms"] < 1.5 and abs(a["pull_mean"]) < 0.6  # without the five: ~N(0, 1)
    assert a["coverage_1sigma"] <= 35 / 40 + 1e-12  # the five count, as not covered


def test_sbc_of_truths_not_from_the_prior_is_labelled_no_check(tmp_path, study):
    """Near-face truths: the summary says its SBC is no calibration check, and so does the
    table on the terminal."""
    from inverse.study import format_summary

    summary = run_study(study(tmp_path / "f", fitters=("mle",), truths="near-face"), 2,
                        workers=1, progress=False)  # fmt: skip
    assert summary["sbc_valid"] is False
    assert "not drawn from the prior" in format_summary(summary)


def test_gan_ranks_recorded_before_the_face_rule_ranks_are_flagged_in_the_summary():
    """A GAN record with a face cut but no ``rank_replicas`` (a study recorded before the truth
    was ranked in the face rule's distribution) is listed in the summary and on the terminal;
    records with both ranks, or without a cut, are not."""
    from inverse.study import _fitter_summary, format_summary

    def record(i, at_face, new):
        fit = {"mean": [1.0, 2.0], "std": [0.5, 0.5], "seconds": 1.0, "rank": [3, 4],
               "rank_of": 8, "at_face": at_face}  # fmt: skip
        if new:
            fit["rank_replicas"] = [0, 4]
        return {"i": i, "truth": [1.2, 1.8], "fits": {"gan": fit}}

    records = [record(0, ["a"], False), record(1, ["a"], True), record(2, [], False)]
    gan = _fitter_summary(records, "gan", ["a", "b"])
    assert gan["replica_ranks_at_face"] == [0]
    summary = {"n": 3, "manifest": {"case": "B", "truths": "prior"}, "fitters": {"gan": gan}}
    assert "1 experiment(s) with a face cut" in format_summary(summary)
    gan = _fitter_summary(records[1:], "gan", ["a", "b"])
    assert "replica_ranks_at_face" not in gan
    summary["fitters"]["gan"] = gan
    assert "face cut" not in format_summary(summary)


@pytest.mark.parametrize("rule", ["reweighted", "gaussian"])
def test_the_gan_record_ranks_the_truth_in_the_face_rules_distribution_where_it_cut(
    tmp_path, monkeypatch, study, proxy, rule
):
    """`inverse.study._fit_gan` with a stand-in outer GAN whose bootstrap replicas pile at the
    upper face of one parameter (the face rule applied as `inverse.fit` applies it): that
    parameter's recorded rank is the truth's place in what the rule reports, not among the
    replicas (all above the truth): the likelihood's reweighted posterior (its recorded
    quantiles; every parameter takes its numbers) or, with a yardstick that cannot evaluate the
    likelihood, the cut Gaussian (a parameter it left alone keeps the replicas' rank)."""
    from types import SimpleNamespace

    import inverse.study as module
    import inverse.training
    from inverse.faces import QUANTILES, cdf_rank, cut_gaussian_draws
    from inverse.report import Yardstick, face_cut
    from surrogates.data import simulate_observed

    low, high = proxy.prior_low.numpy().astype(float), proxy.prior_high.numpy().astype(float)
    j = 4
    truth = proxy.truth.numpy().astype(float)
    truth[j] = high[j] - 0.02 * (high[j] - low[j])
    data = simulate_observed(proxy, truth, CASES["A"], seed=3)  # σ small: one face reached
    s = study(tmp_path, ("gan",))
    k = s.config.data_replicas
    sigma = crb_std(proxy, truth, data.counts)

    def fake_gan(theory, data, source, cfg, out, progress=False):
        rng = np.random.default_rng(0)
        final = truth + 1.5 * sigma * rng.standard_normal((cfg.replicas, len(truth)))
        final[:, j] = high[j] - 1e-6 * (high[j] - low[j])  # every replica at the face
        final = np.clip(final, low, high)
        mean, boot = final[:k].mean(0), final[k:]
        std = boot.std(0, ddof=1)
        yardstick = Yardstick(theory, data)
        if rule == "gaussian":  # no loglik: the cut Gaussian's numbers
            yardstick = SimpleNamespace(covariance=yardstick.covariance, score=yardstick.score)
        rule_mean, rule_std, cut = face_cut(theory, yardstick, boot, mean, std)
        out.mkdir(parents=True, exist_ok=True)
        np.savez(out / "params.npz", theta=final)
        names = theory.param_names
        return {"params_mean": rule_mean, "params_std": rule_std, "replicas_mean": mean,
                "replicas_std": std, "at_face": {names[i]: f for i, f in cut.items()},
                "seconds": 0.0, "steps": 0}  # fmt: skip

    monkeypatch.setattr(inverse.training, "run_outer_gan", fake_gan)
    fit = module._fit_gan(s, proxy, data, truth, 0)
    assert fit["at_face"] == [proxy.param_names[j]]
    boot = np.asarray(fit["replicas"])[k:]
    assert fit["rank_replicas"][j] == 0 and fit["rank_of"] == len(boot)
    m = fake_gan(proxy, data, None, s.config, tmp_path / "again")
    found = m["at_face"][proxy.param_names[j]]
    assert found["method"] == ("reweighted" if rule == "reweighted" else "box")
    if rule == "reweighted":
        q = np.asarray(found["quantiles"])
        cdf = [float(np.interp(truth[i], q[i], QUANTILES, left=0, right=1)) for i in range(6)]
        assert fit["rank"] == [cdf_rank(c, len(boot)) for c in cdf] and fit["rank"][j] > 0
        return
    draws = cut_gaussian_draws(found["gaussian_loc"], found["gaussian_cov"], low, high)
    assert fit["rank"][j] == cdf_rank(float(np.mean(draws[:, j] < truth[j])), len(boot)) > 0
    kept = [i for i in range(len(truth)) if m["params_std"][i] == m["replicas_std"][i]]
    assert kept and all(fit["rank"][i] == fit["rank_replicas"][i] for i in kept)
