"""The amortized peers (inverse/peers.py): summaries without sbi, a tiny NPE/FMPE with it."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from inverse.peers import matched_n_sims, quantile_edges, summaries, train_peer
from surrogates.data import ObservedData, simulate_observed
from surrogates.errors import InputError
from surrogates.theory import get_theory


@pytest.fixture(scope="module")
def proxy():  # noqa: ANN201
    return get_theory("proxy")


def test_summaries_shape_normalized_and_permutation_invariant(proxy) -> None:  # noqa: ANN001
    data = [simulate_observed(proxy, proxy.truth.numpy(), (400, 200), seed=s) for s in (1, 2)]
    pooled = [np.concatenate([d.events[c] for d in data]) for c in range(2)]
    edges = quantile_edges(pooled, 8, float(proxy.x_low[0]), float(proxy.x_high[0]))
    s = summaries(data, edges)
    assert s.shape == (2, 2 * 8 + 2 + 2)
    assert np.allclose(s[:, :8].sum(1), 1) and np.allclose(s[:, 8:16].sum(1), 1)
    assert np.allclose(s[:, 16:18], np.log([d.norms for d in data]))
    assert np.allclose(s[:, 18:20], np.log([d.counts for d in data]))
    # quantile bins: on the pooled events each bin holds ~1/8 of them
    assert np.abs(s[:, :16].mean(0) - 1 / 8).max() < 0.05
    rng = np.random.default_rng(0)
    shuffled = ObservedData(
        events=[e[rng.permutation(len(e))] for e in data[0].events],
        norms=data[0].norms,
        norms_sigma=data[0].norms_sigma,
    )
    assert np.array_equal(summaries([shuffled], edges)[0], s[0])
    # the shapes carry θ: a different a_u moves the u-channel histogram by far more than noise
    theta = proxy.truth.numpy().copy()
    theta[1] = 0.8
    other = summaries([simulate_observed(proxy, theta, (400, 200), seed=1)], edges)[0]
    assert np.abs(other[:8] - s[0, :8]).sum() > 3 * np.abs(s[1, :8] - s[0, :8]).sum()


def test_matched_budget_is_the_gan_event_count() -> None:
    n, events = matched_n_sims(3000, 16, 256, (1000, 500))
    assert events == 3000 * 16 * 256 * 2 and n == events // 1500


def test_peer_refuses_bad_input_and_names_the_extra(proxy, monkeypatch) -> None:  # noqa: ANN001
    with pytest.raises(InputError, match="unknown peer"):
        train_peer(proxy, (100, 50), "abc", n_sims=50)
    monkeypatch.setitem(sys.modules, "sbi", None)
    monkeypatch.setitem(sys.modules, "sbi.inference", None)
    with pytest.raises(InputError, match=r"pip install \.\[sbi\]"):
        train_peer(proxy, (100, 50), "npe", n_sims=50)


@pytest.mark.parametrize("method", ["npe", "fmpe"])
def test_tiny_peer_trains_and_samples_inside_the_box(proxy, method) -> None:  # noqa: ANN001
    pytest.importorskip("sbi")
    peer = train_peer(proxy, (200, 100), method, n_sims=200, seed=0, bins=4, max_epochs=3)
    assert peer.n_sims == 200 and peer.events_simulated > 200 * 250
    data = simulate_observed(proxy, proxy.truth.numpy(), (200, 100), seed=9)
    post = peer.sample(data, n_draws=300, seed=1)
    low, high = proxy.prior_low.numpy(), proxy.prior_high.numpy()
    assert post.draws.shape == (300, 6) and np.isfinite(post.draws).all()
    assert ((post.draws >= low) & (post.draws <= high)).all()
    assert np.allclose(post.mean, post.draws.mean(0)) and (post.std > 0).all()


@pytest.mark.slow  # results.py also rebuilds the zoo page: ~15 s on 2 busy cores
def test_committed_peers_page_is_the_one_its_json_gives(tmp_path) -> None:  # noqa: ANN001
    """docs/results/peers.md is generated from docs/results/peers.json, not typed."""
    import shutil
    import subprocess
    from pathlib import Path

    from surrogates.resources import checkpoint_dir

    root = Path(__file__).resolve().parent.parent
    bench = tmp_path / "bench"
    bench.mkdir()
    shutil.copy(root / "docs/results/peers.json", bench / "peers.json")
    done = subprocess.run(
        [sys.executable, str(root / "benchmarks/results.py"), "--checkpoints",
         str(checkpoint_dir()), "--benchmarks", str(bench), "--results", str(tmp_path / "out"),
         "--out", str(tmp_path / "r.json")],
        capture_output=True, text=True, cwd=root, timeout=120,
        env={**__import__("os").environ, "PYTHONPATH": str(root), "WANDB_MODE": "disabled"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    tables = [
        [line for line in p.read_text().splitlines() if line.startswith("|")]
        for p in (tmp_path / "out/peers.md", root / "docs/results/peers.md")
    ]
    assert tables[0] == tables[1] and len(tables[0]) == 2 * (2 + 3 * 6)
