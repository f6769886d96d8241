"""benchmarks/gan_vs_mle.py: the exact-source outer GAN against the MLE, data set by data set."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
NAMES = ("N_u", "a_u", "b_u", "N_d", "a_d", "b_d")


@pytest.fixture(scope="module")
def gan_vs_mle():  # noqa: ANN201
    sys.path.insert(0, str(ROOT / "benchmarks"))  # it imports event_closure beside it
    path = ROOT / "benchmarks" / "gan_vs_mle.py"
    spec = importlib.util.spec_from_file_location("gan_vs_mle", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_overrides_reach_nested_settings_and_unknown_ones_are_refused(gan_vs_mle) -> None:  # noqa: ANN001
    from inverse.training import load_config
    from surrogates.errors import InputError

    cfg = load_config(str(ROOT / "configs" / "inverse" / "smeared.yaml"))
    new = gan_vs_mle.with_overrides(
        cfg, ["gan.precondition_diagonal=false", "data_replicas=8", "gan.d_hidden=[64, 64]"]
    )
    assert (new.gan.precondition_diagonal, new.data_replicas, new.gan.d_hidden) == (
        False,
        8,
        [64, 64],
    )
    assert new.gan.lr_g == cfg.gan.lr_g and new.steps == cfg.steps  # the rest untouched
    for bad, words in (
        (["gan.nope=1"], "no such setting"),
        (["steps.x=1"], "not a section"),
        (["data_replicas"], "key=value"),
    ):
        with pytest.raises(InputError, match=words):
            gan_vs_mle.with_overrides(cfg, bad)


@pytest.mark.parametrize("detector", ["smear", "none"])
def test_each_data_set_is_fitted_by_the_exact_gan_and_by_the_mle_of_the_same_model(
    gan_vs_mle, monkeypatch, tmp_path, detector
):  # noqa: ANN001
    """The GAN: the proxy's exact source, the detector (from the folded yardstick) only with
    --detector smear; the MLE: the same yardstick's, on the same data; GAN − MLE in σ_CRB."""
    from inverse.training import load_config
    from surrogates.data import CASES

    seen = {}

    def build(theory, data, source, cfg, yardstick, members):  # noqa: ANN001, ANN202
        seen.update(theory=theory.name, source=source, cfg=cfg, yardstick=yardstick, data=data)
        return "gan"

    def summarize(gan, cfg, theory, yardstick, members, names, seconds):  # noqa: ANN001, ANN202
        seen["summarized_with"] = yardstick
        metrics = {"params_mean": truth + 0.01, "params_std": np.full(6, 0.1)}
        return metrics | {"scatter_std": np.full(6, 0.02), "steps": 10, "stop_reason": "x"}, None

    closure = sys.modules["event_closure"]  # whose run_gan it calls
    monkeypatch.setattr(closure, "build_model", build)
    monkeypatch.setattr(closure, "make_trainer", lambda *a: (None, None))
    monkeypatch.setattr(closure, "train", lambda *a: 1.0)
    monkeypatch.setattr(closure, "summarize", summarize)
    truth = np.asarray([1.5, 0.0, 2.5, 1.5, 0.0, 2.5])
    cfg = load_config(str(ROOT / "configs" / "inverse" / "smeared.yaml"))
    d = gan_vs_mle.fit_data_set(truth, 7, detector, cfg, tmp_path / "run")
    assert seen["theory"] == "proxy" and seen["source"].is_exact
    assert (seen["cfg"].theory, seen["cfg"].source) == ("proxy", "exact")
    assert seen["summarized_with"] is seen["yardstick"]
    folded = seen["yardstick"].folded
    if detector == "smear":
        assert folded is not None and seen["cfg"].detector["kind"] == "smear"
    else:
        assert folded is None and seen["cfg"].detector is None
    # the MLE and σ_CRB are the yardstick's, on the same data, at the truth
    data = seen["data"]
    assert [len(e) for e in data.events] == [int(c) for c in data.counts]
    mle = seen["yardstick"].fit(start=truth)
    crb = np.asarray(seen["yardstick"].crb_std(truth, data.expected_counts))
    np.testing.assert_allclose(d["gan_minus_mle_crb"], (truth + 0.01 - mle.theta) / crb, rtol=1e-6)
    np.testing.assert_allclose(d["data_replicas_spread_crb"], 0.02 / crb, rtol=1e-9)
    assert d["data_seed"] == 7 and sum(data.expected_counts) == pytest.approx(sum(CASES["B"]))


def test_any_theory_of_the_config_is_fitted_at_its_reference_counts(
    gan_vs_mle, monkeypatch, tmp_path
):  # noqa: ANN001
    """With another theory's config (the peak card) the GAN runs that theory's exact source on data
    of its reference counts, and the page names the theory and the counts; --detector smear is
    refused for it in one line."""
    from inverse.config import to_dict
    from inverse.training import load_config
    from surrogates.errors import InputError
    from surrogates.theory import get_theory

    seen = {}

    def build(theory, data, source, cfg, yardstick, members):  # noqa: ANN001, ANN202
        seen.update(theory=theory.name, cfg=cfg, data=data)
        return "gan"

    def summarize(gan, cfg, theory, yardstick, members, names, seconds):  # noqa: ANN001, ANN202
        metrics = {"params_mean": truth, "params_std": np.full(5, 0.1), "steps": 1}
        return metrics, None

    closure = sys.modules["event_closure"]
    monkeypatch.setattr(closure, "build_model", build)
    monkeypatch.setattr(closure, "make_trainer", lambda *a: (None, None))
    monkeypatch.setattr(closure, "train", lambda *a: 1.0)
    monkeypatch.setattr(closure, "summarize", summarize)
    peak = get_theory("peak")
    truth = gan_vs_mle.draw_truths(peak, 3, 1)[0]
    cfg = load_config(str(ROOT / "configs" / "inverse" / "peak.yaml"))
    d = gan_vs_mle.fit_data_set(truth, 5, "none", cfg, tmp_path / "run")
    assert seen["theory"] == "peak" and seen["cfg"].source == "exact"
    assert seen["data"].expected_counts.sum() == pytest.approx(sum(peak.reference_counts))
    assert len(d["gan_minus_mle_crb"]) == 5 and np.isfinite(d["gan_minus_mle_crb"]).all()
    with pytest.raises(InputError, match="--detector smear is the proxy's smearing detector"):
        gan_vs_mle.fit_data_set(truth, 5, "smear", cfg, tmp_path / "other")
    dis = load_config(str(ROOT / "configs" / "inverse" / "dis.yaml"))  # its detector: refused
    with pytest.raises(InputError, match="detector block for 'dis', which this benchmark does not"):
        gan_vs_mle.true_level_theory(dis, "none")
    r = {
        "command": "python benchmarks/gan_vs_mle.py --config configs/inverse/peak.yaml",
        "theory": "peak",
        "counts": list(peak.reference_counts),
        "truth_seed": 3,
        "truth_index": 0,
        "truth": truth.tolist(),
        "detector": "none",
        "config": "configs/inverse/peak.yaml",
        "overrides": [],
        "fit_config": to_dict(cfg),
        "data_sets": [{"data_seed": 5, "steps": 1, "stop_reason": "x", "cut_by_box": []} | d],
    }
    page = gan_vs_mle.table(r, peak.param_names)
    counts = " + ".join(str(int(c)) for c in peak.reference_counts)
    assert f"Data ({counts} events) of theory 'peak', no detector" in page
    assert "| data set | " + " | ".join(peak.param_names) + " |" in page


def test_the_page_gives_each_data_set_and_the_spread_over_them(gan_vs_mle, tmp_path) -> None:  # noqa: ANN001
    from inverse.config import to_dict
    from inverse.training import load_config

    cfg = load_config(str(ROOT / "configs" / "inverse" / "smeared.yaml"))
    runs = [
        {
            "data_seed": s,
            "gan_minus_mle_crb": [v, 0, 0, 0, 0, -v],
            "data_replicas_spread_crb": [0.3] * 6,
            "cut_by_box": ["N_u"] if s == 2 else [],
            "steps": 100,
            "stop_reason": "settled",
        }
        for s, v in ((1, 1.0), (2, -1.0), (3, 3.0))
    ]
    r = {
        "command": "python benchmarks/gan_vs_mle.py --truth-seed 5",
        "truth_seed": 5,
        "truth_index": 2,
        "truth": [1.0] * 6,
        "detector": "smear",
        "config": "configs/inverse/smeared.yaml",
        "overrides": ["data_replicas=8"],
        "fit_config": to_dict(cfg),
        "data_sets": runs,
    }
    page = gan_vs_mle.table(r, NAMES)
    assert "| 3 | +3.00 | +0.00 |" in page
    assert "| mean | +1.00 |" in page and "| sd | 2.00 |" in page
    assert "| max \\|·\\| | 3.00 |" in page and page.count("-3.00") == 1
    assert "proxy-smeared (the proxy, then the smearing detector)" in page
    assert "configs/inverse/smeared.yaml, data_replicas=8" in page
    assert "rms over the data sets, σ_CRB): N_u 0.30" in page
    assert "2: N_u" in page and "100 (settled)" in page
    # --from-json writes the page again under the JSON's stem, with the note of its environment
    import json

    r["environment"] = {"git_commit": "0123456789", "date": "2026-12-06", "note": "why"}
    (tmp_path / "old.json").write_text(json.dumps(r))
    assert (
        gan_vs_mle.main(["--from-json", str(tmp_path / "old.json"), "--results", str(tmp_path)])
        == 0
    )
    again = (tmp_path / "old.md").read_text()
    assert "at commit 0123456 on 2026-12-06 (why)." in again and "| mean | +1.00 |" in again
