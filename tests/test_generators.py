"""Event generators as module-2: declaration, checks, the detector generator and its folding."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from scipy import stats

from surrogates.data import load_training, simulate_observed, simulate_training
from surrogates.detector import SmearingDetector
from surrogates.errors import InputError
from surrogates.generators import CallableGenerator, ExternalGenerator, TheoryGenerator, seed_for
from surrogates.likelihood import FoldedModel
from surrogates.theory import ProxyTheory, get_theory


def power(theta: np.ndarray, n: int, seed: int) -> tuple[list[np.ndarray], list[float]]:
    """x = u^a in [0, 1]: density ∝ x^(1/a − 1); rate a."""
    rng = np.random.default_rng(seed)
    return [rng.random((n, 1)) ** theta[0]], [float(theta[0])]


def make(fn=power, **kw) -> CallableGenerator:  # noqa: ANN001
    return CallableGenerator(fn, "power", ["a"], ["c"], [0.5], [2.0], [0.0], [1.0], **kw)


def test_callable_generator_is_seeded_and_checked() -> None:
    gen = make()
    a = gen.generate([1.5], 100, seed=3)
    b = gen.generate([1.5], 100, seed=3)
    assert np.array_equal(a.events[0], b.events[0]) and a.rates.tolist() == [1.5]
    assert not np.array_equal(a.events[0], gen.generate([1.5], 100, seed=4).events[0])
    assert gen.has_density is False and gen.describe()["has_density"] is False
    with pytest.raises(InputError, match="outside the prior box"):
        gen.generate([3.0], 10, seed=0)
    with pytest.raises(InputError, match="n ≥ 1"):
        gen.generate([1.0], 0, seed=0)


@pytest.mark.parametrize(
    ("fn", "match"),
    [
        (lambda t, n, s: ([np.zeros((n - 1, 1))], [1.0]), "expected"),
        (lambda t, n, s: ([np.full((n, 1), np.nan)], [1.0]), "NaN"),
        (lambda t, n, s: ([np.full((n, 1), 2.0)], [1.0]), "outside"),
        (lambda t, n, s: ([np.zeros((n, 1))], [-1.0]), "rates"),
        (lambda t, n, s: [np.zeros((n, 1))], "no rates"),
        (lambda t, n, s: ([np.zeros((n, 1)), np.zeros((n, 1))], [1.0, 1.0]), "2 channels"),
    ],
)
def test_a_broken_generator_is_named(fn, match: str) -> None:  # noqa: ANN001
    with pytest.raises(InputError, match=match):
        make(fn).generate([1.0], 5, seed=0)


def test_rates_function_supplies_the_rates() -> None:
    gen = make(lambda t, n, s: [np.full((n, 1), 0.5)], rates=lambda t: [2 * t[0]])
    assert gen.generate([1.0], 3, seed=0).rates.tolist() == [2.0]


def test_row_seeds_are_distinct_and_stable() -> None:
    seeds = {seed_for(7, i) for i in range(1000)}
    assert len(seeds) == 1000 and seed_for(7, 5) == seed_for(7, 5) != seed_for(8, 5)


def test_training_set_of_a_generator_has_no_density_and_round_trips(tmp_path) -> None:  # noqa: ANN001
    gen = make()
    ts = simulate_training(gen, 12, 8, seed=2)
    assert ts.events.shape == (12, 1, 8, 1) and ts.grid is None and ts.densities is None
    assert np.allclose(ts.norms[:, 0], ts.theta[:, 0])  # the rates are the generator's
    # each row is its own stream: row i equals a direct call with seed_for(seed, i)
    row = gen.generate(ts.theta[5], 8, seed_for(2, 5)).events[0]
    assert np.allclose(ts.events[5, 0], row.astype(np.float32))
    back = load_training(ts.save(tmp_path / "t.npz"))
    assert back.densities is None and np.array_equal(back.events, ts.events)
    assert back.meta["has_density"] is False and back.meta["theory"] == "power"


def test_proxy_smeared_matches_the_folded_exact_density() -> None:
    """The generator's events and rates agree with the exact density folded through the
    detector's response: the yardstick the event-level measurements rely on."""
    gen = get_theory("proxy-smeared")
    theory = ProxyTheory()
    folded = FoldedModel(theory, SmearingDetector(theory), bins=30)
    theta = theory.truth
    out = gen.generate(theta.numpy(), 40_000, seed=11)
    with torch.no_grad():
        expected = folded.folded(theta.unsqueeze(0))[0]  # (C, K) reconstructed σ per bin
        accepted = folded.accepted_norms(theta.unsqueeze(0))[0].numpy()
    counts = folded.histogram(out.events)
    for c in range(2):
        p = (expected[c] / expected[c].sum()).numpy()
        chi2 = stats.chisquare(counts[c].numpy(), p * counts[c].sum().item())
        assert chi2.pvalue > 1e-3, (c, chi2)
    # rates: a Monte Carlo estimate of the accepted norm (≥ 4096 tries per channel)
    assert np.allclose(out.rates, accepted, rtol=0.05)


def test_observed_data_of_a_generator(tmp_path) -> None:  # noqa: ANN001
    gen = get_theory("proxy-smeared")
    data = simulate_observed(gen, gen.truth.numpy(), [2000, 1000], seed=1)
    assert data.theory == "proxy-smeared" and data.expected_counts.tolist() == [2000, 1000]
    assert abs(data.counts[0] - 2000) < 5 * np.sqrt(2000)
    assert np.allclose(data.norms / data.norms_sigma**2, data.counts / data.norms)


def test_theory_generator_without_detector_is_the_exact_sampler() -> None:
    theory = ProxyTheory()
    gen = TheoryGenerator(theory)
    out = gen.generate(theory.truth.numpy(), 5000, seed=0)
    assert np.allclose(out.rates, theory.norms(theory.truth)[0].numpy())
    from surrogates.sampling import InverseCDFSampler, eval_cdf

    grid, q, cdf = InverseCDFSampler(theory).cdf_table(theory.truth.unsqueeze(0))
    x = torch.as_tensor(out.events[0][:, 0]).unsqueeze(0)
    u = eval_cdf(grid, q[:, 0], cdf[:, 0], x)[0].numpy()
    assert stats.kstest(u, "uniform").pvalue > 1e-3


SCRIPT = """
import sys
import numpy as np
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
theta = [float(v) for v in args["--theta"].split(",")]
n, seed = int(args["--n"]), int(args["--seed"])
rng = np.random.default_rng(seed)
np.savez(args["--out"], events_c=rng.random((n, 1)) ** theta[0], rates=np.array([theta[0]]))
"""


def test_external_program_gives_what_the_function_gives(tmp_path) -> None:  # noqa: ANN001
    script = tmp_path / "gen.py"
    script.write_text(SCRIPT)
    cmd = [
        sys.executable,
        str(script),
        "--theta",
        "{theta}",
        "--n",
        "{n}",
        "--seed",
        "{seed}",
        "--out",
        "{out}",
    ]
    ext = ExternalGenerator(cmd, "power", ["a"], ["c"], [0.5], [2.0], [0.0], [1.0])
    a, b = ext.generate([1.25], 50, seed=9), make().generate([1.25], 50, seed=9)
    assert np.array_equal(a.events[0], b.events[0]) and a.rates.tolist() == [1.25]


def test_external_program_failures_are_one_line(tmp_path) -> None:  # noqa: ANN001
    decl = ("power", ["a"], ["c"], [0.5], [2.0], [0.0], [1.0])
    with pytest.raises(InputError, match="placeholder"):
        ExternalGenerator(["prog", "{theta}"], *decl)
    with pytest.raises(InputError, match="not found"):
        ExternalGenerator(["/no/such/prog", "{out}"], *decl).generate([1.0], 3, seed=0)
    with pytest.raises(InputError, match="exited with status 3"):
        ExternalGenerator(
            [sys.executable, "-c", "import sys; sys.exit(3)", "{out}"], *decl
        ).generate([1.0], 3, seed=0)
    with pytest.raises(InputError, match="wrote no file"):
        ExternalGenerator([sys.executable, "-c", "pass", "{out}"], *decl).generate([1.0], 3, seed=0)
