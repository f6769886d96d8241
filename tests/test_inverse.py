"""The outer GAN: recovery against the MLE on the same data, output contract, resume, bad input."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
import yaml

from inverse.config import GanConfig, StopConfig
from inverse.fit import main
from inverse.gan import (
    BatchedMLP,
    OuterGAN,
    _NoGrad,
    check_score_source,
    interpolate,
    make_replicas,
    source_score,
)
from inverse.report import interval_factor, replica_estimate
from inverse.sources import make_source
from inverse.training import load_config, run_outer_gan
from surrogates.data import CASES, read_events, simulate_observed, write_events
from surrogates.errors import InputError
from surrogates.models import FlowSurrogate
from surrogates.sampling import InverseCDFSampler
from surrogates.zoo import save_model
from tests.conftest import InterruptAt


def _cfg(**over):  # noqa: ANN202 - an inverse.config.FitConfig
    # the exact posterior (tests/test_posterior.py) would add 5-15 s to each fit here
    return replace(load_config(None), **{"posterior": False, **over})


def test_batched_mlp_members_are_independent():
    net = BatchedMLP(3, 2, [5], torch.float64)
    x = torch.randn(3, 7, 2, dtype=torch.float64, requires_grad=True)
    out = net(x)
    assert out.shape == (3, 7)
    out[1].sum().backward()
    assert x.grad[0].abs().sum() == 0 and x.grad[2].abs().sum() == 0
    assert x.grad[1].abs().sum() > 0


def test_replicas_are_bootstrap_resamples(proxy):
    data = simulate_observed(proxy, proxy.truth.numpy(), CASES["C"], seed=3)
    idx, norms = make_replicas(data, 5, seed=0)
    assert torch.equal(idx[0][0], torch.arange(len(data.events[0])))
    assert np.allclose(norms[0].numpy(), data.norms)
    # a bootstrap resample repeats about 1 − 1/e ≈ 63% distinct events
    distinct = len(torch.unique(idx[0][1])) / idx[0].shape[1]
    assert 0.55 < distinct < 0.70
    assert not np.allclose(norms[1].numpy(), data.norms)


def test_data_replicas_fit_the_data_and_are_averaged(tmp_path, proxy):
    """data_replicas K: replicas 0…K−1 see the observed events and norms themselves, the rest are
    bootstrap resamples; θ is the mean of the K, σ the spread of the others; bad K → one line."""
    data = simulate_observed(proxy, proxy.truth.numpy(), CASES["C"], seed=3)
    idx, norms = make_replicas(data, 6, seed=0, data_replicas=3)
    for r in range(3):
        assert torch.equal(idx[1][r], torch.arange(len(data.events[1])))
        assert np.allclose(norms[r].numpy(), data.norms)
    assert len(torch.unique(idx[1][3])) < idx[1].shape[1]
    assert not np.allclose(norms[3].numpy(), data.norms)
    cfg = _cfg(steps=20, replicas=5, data_replicas=2, events_per_step=16, compare_mle=False)
    m = run_outer_gan(proxy, data, InverseCDFSampler(proxy), cfg, tmp_path, progress=False)
    final = np.load(tmp_path / "params.npz")["theta"]
    assert not np.allclose(final[0], final[1])  # independent generators on the same data
    assert np.allclose(m["replicas_mean"], final[:2].mean(0))
    # σ: the 3 bootstrap replicas' spread × the Student-t 68.3% quantile with 2 degrees of freedom
    assert m["interval_factor"] == pytest.approx(1.321, abs=1e-3)
    assert np.allclose(m["replicas_std"], final[2:].std(0, ddof=1) * m["interval_factor"])
    assert np.allclose(m["scatter_std"], final[:2].std(0, ddof=1))  # one generator's scatter
    # 20 steps from the box centre: no parameter at a face, so θ and σ are the replicas'
    assert m["at_face"] is None
    assert np.array_equal(m["params_mean"], m["replicas_mean"])
    assert np.array_equal(m["params_std"], m["replicas_std"])
    with pytest.raises(InputError, match="data_replicas"):
        _cfg(replicas=4, data_replicas=3)


def test_generator_stays_inside_the_prior_box(proxy):
    data = simulate_observed(proxy, proxy.truth.numpy(), CASES["C"], seed=3)
    gan = OuterGAN(InverseCDFSampler(proxy), data, proxy, replicas=4)
    with torch.no_grad():
        for p in gan.generator_net.parameters():
            p.mul_(1e3)  # drive the sigmoids into saturation
    theta = gan.theta()
    low, high = proxy.prior_low, proxy.prior_high
    assert ((theta > low) & (theta < high)).all()
    assert ((theta - low) / (high - low)).min() >= 1e-3 - 1e-12


def test_outer_gan_recovers_the_mle_on_case_b(tmp_path, proxy):
    """Case B at a non-seed θ: the GAN lands near the MLE on the same data; σ near σ_CRB."""
    theta = np.array([1.6, 0.2, 2.0, 1.9, -0.3, 3.0])
    data = simulate_observed(proxy, theta, CASES["B"], seed=21)
    cfg = _cfg(steps=1200, replicas=6, events_per_step=256, seed=1)
    m = run_outer_gan(proxy, data, InverseCDFSampler(proxy), cfg, tmp_path, progress=False)
    delta = np.abs(m["gan_minus_mle_crb"])
    # a short run: within 1 σ_CRB of the MLE (the full default run reaches ~0.2)
    assert delta.max() < 1.0, delta
    # −log L at θ_GAN above its minimum: ≥ 0, what the likelihood says there, and at least the
    # largest (offset / Hessian σ)²/2 (a Gaussian's Mahalanobis distance bounds every offset)
    from surrogates.likelihood import negative_log_likelihood

    both = torch.tensor([m["params_mean"], m["mle"]["params"]], dtype=torch.float64)
    with torch.no_grad():
        nll = negative_log_likelihood(proxy, both, data)
    dnll = m["gan_minus_mle_nll"]
    assert dnll > -1e-6 and dnll == pytest.approx(float(nll[0] - nll[1]), abs=1e-4)
    offset = (both[0] - both[1]).numpy() / np.asarray(m["mle"]["std"])
    assert 2 * dnll >= 0.8 * (offset**2).max(), (dnll, offset)
    # the start (box centre) is 1.5–5 σ_CRB away in several parameters: the GAN moved there
    centre = (proxy.prior_low + proxy.prior_high).numpy() / 2
    assert np.abs((centre - m["params_mean"]) / m["crb_std"]).max() > 1.5
    ratio = np.asarray(m["std_over_crb"])
    assert ((ratio > 0.25) & (ratio < 2.5)).all(), ratio  # 5 replicas: a loose band
    for name in (
        "metrics.json",
        "config.yaml",
        "environment.json",
        "params.npz",
        "traces.png",
        "curves.png",
        "events.png",
        "checkpoints/last.ckpt",
    ):
        assert (tmp_path / name).is_file(), name
    saved = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("params_mean", "params_std", "params_true", "crb_std", "pull", "seconds", "steps"):
        assert saved[key] is not None, key
    assert saved["at_face"] is None  # an interior truth: no parameter cut by the box
    assert saved["steps"] == 1200
    params = np.load(tmp_path / "params.npz")
    assert params["theta"].shape == (6, 6)
    assert params["trace"].shape[1:] == (6, 6)


def test_interrupted_run_resumes_from_its_checkpoint(tmp_path, proxy, monkeypatch):
    data = simulate_observed(proxy, proxy.truth.numpy(), CASES["C"], seed=5)
    cfg = _cfg(steps=60, replicas=3, events_per_step=32, compare_mle=False)
    cfg = replace(cfg, trainer=replace(cfg.trainer, checkpoint_every=20))
    cfg = replace(cfg, gan=replace(cfg.gan, trace_every=5))
    import inverse.training as fit

    original = fit.pl.Trainer

    def interrupted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        kwargs["callbacks"] = [*kwargs["callbacks"], InterruptAt(30)]
        return original(*args, **kwargs)

    monkeypatch.setattr(fit.pl, "Trainer", interrupted)
    with pytest.raises(SystemExit):  # Lightning turns Ctrl-C into exit status 1
        run_outer_gan(proxy, data, InverseCDFSampler(proxy), cfg, tmp_path, progress=False)
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert int(ckpt["state_dict"]["step_count"]) == 20  # the last periodic checkpoint
    # the checkpoint records the run's settings as plain values (torch's weights_only loads it)
    hparams = ckpt["hyper_parameters"]
    assert hparams["gan"]["trace_every"] == 5 and hparams["gan"]["d_hidden"] == [32, 32]
    assert (hparams["replicas"], hparams["steps"], hparams["theory"]) == (3, 60, "proxy")
    monkeypatch.setattr(fit.pl, "Trainer", original)
    m = run_outer_gan(
        proxy, data, InverseCDFSampler(proxy), cfg, tmp_path, resume=True, progress=False
    )
    assert m["steps"] == 60
    steps = np.load(tmp_path / "params.npz")["trace_steps"]
    assert list(steps) == sorted(set(steps)) and steps[0] == 0 and steps[-1] == 59


def test_config_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("gan:\n  lr_q: 1\n")
    with pytest.raises(InputError, match="unknown key 'gan.lr_q'"):
        load_config(bad)
    bad.write_text("steps: [1\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(InputError, match="not found"):
        load_config(tmp_path / "none.yaml")
    # the defaults are proxy.yaml's settings (the file spells out all), but for its float32
    # discriminators (the library default stays float64 for theories where it is not measured)
    shipped = yaml.safe_load(open("configs/inverse/proxy.yaml"))
    assert set(GanConfig.__dataclass_fields__) == set(shipped["gan"])
    assert load_config("configs/inverse/proxy.yaml").gan == GanConfig(d_dtype="float32")
    # ... and the stop block's, switched on there (the library default is the fixed schedule)
    assert set(StopConfig.__dataclass_fields__) == set(shipped["stop"])
    assert load_config("configs/inverse/proxy.yaml").stop == StopConfig(enabled=True)


def _run_main(capsys, *argv) -> str:
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    return err


def test_bad_input_is_refused_before_training(tmp_path, capsys, proxy, obs_file):
    out = str(tmp_path / "run")
    # an event file of another theory
    other = get_numpy_theory()
    data = simulate_observed(other, other.truth.numpy(), CASES["C"], seed=1)
    wrong = write_events(tmp_path / "other.npz", data, other.channels)
    assert "theory 'proxy-numpy'" in _run_main(capsys, "--events", str(wrong), "--out", out)
    # counts that do not match the events
    with np.load(obs_file) as f:
        arrays = {k: f[k] for k in f.files}
    arrays["counts"] = arrays["counts"] + 1
    np.savez(tmp_path / "counts.npz", **arrays)
    assert "do not match" in _run_main(capsys, "--events", str(tmp_path / "counts.npz"))
    # an empty channel
    arrays = {k: v for k, v in arrays.items() if k != "counts"}
    arrays["events_sigma2"] = np.zeros((0, 1))
    np.savez(tmp_path / "empty.npz", **arrays)
    assert "no events" in _run_main(capsys, "--events", str(tmp_path / "empty.npz"))
    # a black-box theory cannot drive the exact source
    assert "no gradients" in _run_main(
        capsys, "--events", str(wrong), "--theory", "proxy-numpy", "--source", "exact"
    )
    # an unknown surrogate
    assert "not found" in _run_main(capsys, "--events", str(obs_file), "--source", "nope")
    assert not (tmp_path / "run").exists()


def get_numpy_theory():
    from surrogates.theory import get_theory

    return get_theory("proxy-numpy")


def test_surrogate_of_a_narrower_box_is_refused(tmp_path, proxy):
    flow = FlowSurrogate(transforms=1, bins=4, hidden=(8, 8))
    path = save_model(flow, tmp_path / "narrow.ckpt")
    card = flow.zoo_metadata()
    card["theory"]["prior_high"][2] = 4.0  # b_u only up to 4
    path.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(InputError, match="b_u .* narrower than the prior"):
        make_source(str(path), proxy)
    # with the full box it is accepted, frozen, and an EventSource
    path.with_suffix(".json").unlink()
    source = make_source(str(path), proxy)
    assert not any(p.requires_grad for p in source.parameters())
    assert len(source.sample(proxy.truth, 5)) == 2


def test_cli_runs_end_to_end_with_a_surrogate(tmp_path, capsys, proxy, obs_file):
    flow = FlowSurrogate(transforms=1, bins=4, hidden=(8, 8))
    ckpt = save_model(flow, tmp_path / "tiny.ckpt")
    out = tmp_path / "run"
    code = main(
        [
            "--events",
            str(obs_file),
            "--source",
            str(ckpt),
            "--steps",
            "20",
            "--replicas",
            "3",
            "--events-per-step",
            "16",
            "--out",
            str(out),
            "--no-progress",
            "--posterior",  # the posterior through the CLI: tests/test_posterior.py
            "false",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    assert "(GAN−MLE)/σ_CRB" in text and "N_u" in text
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["source"] == str(ckpt) and metrics["steps"] == 20
    data = read_events(obs_file, proxy)
    assert metrics["counts"] == data.counts.tolist()


@pytest.mark.parametrize("name", ["proxy", "proxy-large"])
def test_shipped_proxy_configs_run_through_the_cli(tmp_path, capsys, obs_file, name):
    """Each shipped proxy config runs as written (its replicas, data replicas and discriminator
    steps), only shortened: the run records them and averages the data replicas."""
    path = f"configs/inverse/{name}.yaml"
    cfg = load_config(path)
    out = tmp_path / name
    args = ["--config", path, "--events", str(obs_file), "--steps", "3", "--out", str(out)]
    # (the exact posterior, ~15 s here, is covered by tests/test_posterior.py)
    assert main([*args, "--events-per-step", "16", "--no-progress", "--posterior", "false"]) == 0
    capsys.readouterr()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["replicas"] == cfg.replicas and metrics["steps"] == 3
    theta = np.load(out / "params.npz")["theta"]
    assert theta.shape == (cfg.replicas, 6)
    k = cfg.data_replicas
    assert np.allclose(metrics["params_mean"], theta[:k].mean(0))
    assert not np.allclose(metrics["params_mean"], theta[0]) or k == 1
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["gan"]["d_steps"] == cfg.gan.d_steps and resolved["data_replicas"] == k
    for key in ("precondition", "precondition_at", "precondition_scale", "precondition_diagonal"):
        assert resolved["gan"][key] == getattr(cfg.gan, key)
    assert resolved["gan"]["d_dtype"] == cfg.gan.d_dtype


def test_blackbox_closure_runs_end_to_end(tmp_path, capsys):
    """No gradients anywhere in the theory: training set → surrogate → outer GAN, one command."""
    from inverse.blackbox import main as blackbox_main

    inverse_cfg = tmp_path / "gan.yaml"
    inverse_cfg.write_text("steps: 30\nreplicas: 3\nevents_per_step: 32\nposterior: false\n")
    cfg = tmp_path / "bb.yaml"
    cfg.write_text(
        "theory: proxy-numpy\ncase: C\n"
        "training: {n_params: 64, events_per_param: 4, grid_size: 32}\n"
        "surrogate:\n  family: vaim\n  config: configs/surrogates/vaim.yaml\n"
        "  args: [--trainer.max_epochs, 1, --model.norm_steps, 20, --model.hidden, '[16]',"
        " --data.batch_size, 16, --eval.held_out, 1, --eval.events, 500, --eval.shift_events, 0]\n"
        f"inverse: {inverse_cfg}\n"
    )
    out = tmp_path / "bb"
    assert blackbox_main(["--config", str(cfg), "--out", str(out), "--no-progress"]) == 0
    metrics = json.loads((out / "inverse" / "metrics.json").read_text())
    assert metrics["theory"] == "proxy-numpy" and metrics["steps"] == 30
    assert metrics["source"].endswith("best.ckpt")
    ckpt = torch.load(metrics["source"], map_location="cpu", weights_only=False)
    assert ckpt["surrogate_zoo"]["theory"]["theory"] == "proxy-numpy"
    assert "black-box closure" in capsys.readouterr().out


def test_one_shared_discriminator_for_all_channels(tmp_path, proxy):
    data = simulate_observed(proxy, proxy.truth.numpy(), CASES["C"], seed=9)
    cfg = _cfg(steps=20, replicas=3, events_per_step=16, compare_mle=False)
    cfg = replace(cfg, gan=replace(cfg.gan, shared=True))
    m = run_outer_gan(proxy, data, InverseCDFSampler(proxy), cfg, tmp_path, progress=False)
    assert m["steps"] == 20 and np.isfinite(m["params_mean"]).all()
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    # R discriminators (not R × C), each reading 3 edge features + the channel one-hot
    assert state["discriminator.weights.0"].shape == (3, 3 + 2, 32)


def test_discriminators_get_gradients_from_their_own_step_only(tmp_path, proxy, monkeypatch):
    """The generator's backward needs the discriminators' input gradients only: their weights
    get a gradient once per discriminator update (their own loss), never from the generator's."""
    data = simulate_observed(proxy, proxy.truth.numpy(), CASES["C"], seed=9)
    cfg = _cfg(steps=5, replicas=3, events_per_step=16, compare_mle=False)
    cfg = replace(cfg, gan=replace(cfg.gan, d_steps=2))
    calls: list[int] = []
    start = OuterGAN.on_train_start

    def counting_start(self: OuterGAN) -> None:
        start(self)
        for p in self.discriminator.parameters():
            p.register_hook(lambda g: calls.append(1))

    monkeypatch.setattr(OuterGAN, "on_train_start", counting_start)
    m = run_outer_gan(proxy, data, InverseCDFSampler(proxy), cfg, tmp_path, progress=False)
    assert m["steps"] == 5
    n_tensors = 2 * (len(cfg.gan.d_hidden) + 1)  # weights and biases per layer
    assert len(calls) == 5 * 2 * n_tensors


def test_float32_discriminators_pass_the_float64_gradients(proxy):
    """gan.d_dtype float32: the same discriminators (weights copied) in single precision give θ's
    generator the gradient of the float64 ones to single precision; the losses stay float64."""
    data = simulate_observed(proxy, proxy.truth.numpy(), CASES["C"], seed=4)

    def outer_gan(d_dtype: str) -> OuterGAN:
        gan = GanConfig(d_dtype=d_dtype)
        return OuterGAN(InverseCDFSampler(proxy), data, proxy, gan, replicas=3)

    grads = []
    m64, m32 = outer_gan("float64"), outer_gan("float32")
    m32.load_state_dict(m64.state_dict())
    assert m32.discriminator.weights[0].dtype == torch.float32
    for m in (m64, m32):
        torch.manual_seed(0)
        fake = m.source.sample(m.theta(), 128)
        logits = m.logits([m.features(f.to(torch.float64), c) for c, f in enumerate(fake)])
        assert all(g.dtype == torch.float64 and g.shape == (3, 128) for g in logits)
        loss = sum(torch.nn.functional.softplus(-g).mean() for g in logits)
        params = list(m.generator_net.parameters())
        grads.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, params)]))
    assert grads[0].norm() > 0
    assert (grads[1] - grads[0]).norm() < 1e-4 * grads[0].norm()
    with pytest.raises(InputError, match="gan.d_dtype 'half'; choose one of float64, float32"):
        outer_gan("half")


@pytest.mark.parametrize(
    ("box_map", "scale", "diagonal"),
    [("sigmoid", "geometric", False), ("reflect", "softest", False), ("sigmoid", "softest", True)],
)
def test_preconditioning_keeps_theta_and_whitens(proxy, box_map, scale, diagonal):
    from inverse.gan import ParameterGenerator
    from surrogates.likelihood import fisher_information

    gen = ParameterGenerator(proxy.prior_low, proxy.prior_high, replicas=3, box_map=box_map)
    with torch.no_grad():
        gen.net.biases[-1].normal_(std=3.0)  # replicas anywhere, some past a reflecting wall
        before = gen()
        # dθ/ds of replica 0 by central differences in s0: independent of the map's formula
        eps, jac = 1e-6, torch.empty(6, dtype=torch.float64)
        for i in range(6):
            gen.s0[0, i] += eps
            up = gen()[0, i]
            gen.s0[0, i] -= 2 * eps
            jac[i] = (up - gen()[0, i]) / (2 * eps)
            gen.s0[0, i] += eps
    cov = torch.linalg.inv(fisher_information(proxy, before[0], [10_000, 5_000]))
    for _ in range(2):  # a second call re-whitens from the first one's coordinates
        gen.precondition(cov, at=0, scale=scale, diagonal=diagonal)
        with torch.no_grad():
            after = gen()
        assert torch.allclose(before, after, rtol=0, atol=1e-6 * 5)
        # L Lᵀ is the covariance in the generator's coordinates s up to one overall factor
        # (diagonal: its diagonal only, each parameter scaled by its own σ, no coupling) ...
        cov_s = cov / torch.outer(jac, jac)
        if diagonal:
            assert torch.equal(gen.L, torch.diag(gen.L.diagonal()))
            cov_s = torch.diag(cov_s.diagonal())
            sd = cov.diagonal().sqrt()
            assert (cov / torch.outer(sd, sd) - torch.eye(6)).abs().max() > 0.5  # correlated
        ratio = (gen.L @ gen.L.T).diagonal() / cov_s.diagonal()
        assert torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-5)
        assert torch.allclose(gen.L @ gen.L.T, ratio[0] * cov_s, rtol=1e-5, atol=1e-12)
        # ... that gives the σ in s (the diagonal) geometric mean 1, or the largest one 1
        sd = (gen.L @ gen.L.T).diagonal().sqrt()
        pace = sd.log().mean().exp() if scale == "geometric" else sd.max()
        assert float(pace) == pytest.approx(1.0, rel=1e-9)
        assert scale == "geometric" or float(sd.min()) < 0.5  # stiff ones slowed
    with pytest.raises(InputError, match="precondition_scale"):
        gen.precondition(cov, scale="fastest")


def test_preconditioning_repeats_at_the_data_replicas_mean(tmp_path, proxy, monkeypatch):
    """precondition_at [0.1, 0.5]: the generator is whitened twice, each time with the
    Cramér–Rao covariance at the mean θ of the data replicas (not one replica's θ)."""
    from inverse.gan import ParameterGenerator
    from surrogates.likelihood import fisher_information

    data = simulate_observed(proxy, proxy.truth.numpy(), CASES["C"], seed=3)
    calls = []
    whiten = ParameterGenerator.precondition

    def spy(gen, cov_theta, at=0, scale="geometric", diagonal=False, restart_after=0,
            restart_from=None):  # noqa: ANN001, ANN202  # fmt: skip
        with torch.no_grad():
            theta = gen()
        calls.append((theta[:2].mean(0), cov_theta, at, scale, diagonal))
        assert restart_after == 0 and restart_from is None  # bootstrap/data_restart off here
        return whiten(gen, cov_theta, at, scale, diagonal, restart_after, restart_from)

    monkeypatch.setattr(ParameterGenerator, "precondition", spy)
    cfg = _cfg(steps=20, replicas=5, data_replicas=2, events_per_step=16, compare_mle=False)
    gan = replace(cfg.gan, precondition=True, precondition_at=[0.1, 0.5], precondition_start=False)
    gan = replace(gan, precondition_scale="softest", precondition_diagonal=True)
    cfg = replace(cfg, gan=gan)
    run_outer_gan(proxy, data, InverseCDFSampler(proxy), cfg, tmp_path, progress=False)
    assert len(calls) == 2
    for mean, cov, at, scale, diagonal in calls:
        expected = torch.linalg.pinv(fisher_information(proxy, mean, data.counts))
        assert torch.allclose(cov.cpu(), expected, rtol=1e-6) and at in (0, 1)
        assert scale == "softest" and diagonal
    assert not torch.allclose(calls[0][0], calls[1][0])  # the replicas moved in between
    for bad in ([0.1, 1.5], "0.1", [0.1, "half"]):
        with pytest.raises(InputError, match="precondition_at must be fractions"):
            replace(gan, precondition_at=bad)
    with pytest.raises(InputError, match="precondition_scale 'fastest'; choose one of geometric"):
        replace(gan, precondition_at=0.1, precondition_scale="fastest")


def test_reflecting_box_map_never_flattens(proxy):
    """box_map reflect: θ stays inside the (inset) box for any s, is continuous, and |dθ/ds| is
    the sigmoid's slope at the centre everywhere, so no replica can get stuck at an edge."""
    from inverse.gan import BOX_MAPS as BOX
    from inverse.gan import ParameterGenerator

    gen = ParameterGenerator(proxy.prior_low, proxy.prior_high, replicas=1, box_map="reflect")
    s = torch.linspace(-30, 30, 60001, dtype=torch.float64).unsqueeze(-1).expand(-1, 6)
    s = s.clone().requires_grad_(True)
    u = gen._box(s)[0]
    (slope,) = torch.autograd.grad(u.sum(), s)
    assert float(u.min()) == pytest.approx(0, abs=1e-3) and float(u.max()) == pytest.approx(
        1, abs=1e-3
    )
    assert float(u.diff(dim=0).abs().max()) <= 0.25 * 1e-3 * (1 + 1e-9)  # continuous
    assert torch.allclose(slope.abs(), torch.full_like(slope, 0.25))
    with torch.no_grad():
        gen.s0.fill_(37.0)  # far past the upper edge: folded back inside
        theta = gen()
    inside = (theta > proxy.prior_low) & (theta < proxy.prior_high)
    assert inside.all()
    # a fresh generator starts at the box centre with either map (same slope there)
    fresh = []
    for m in BOX:
        torch.manual_seed(0)
        fresh.append(ParameterGenerator(proxy.prior_low, proxy.prior_high, 4, box_map=m)())
    assert torch.allclose(fresh[0], fresh[1], atol=1e-4)
    with pytest.raises(InputError, match="box_map"):
        ParameterGenerator(proxy.prior_low, proxy.prior_high, 1, box_map="tanh")


def _replica_sigma_bench(monkeypatch):
    import importlib.util
    from pathlib import Path

    bench = Path(__file__).resolve().parents[1] / "benchmarks"
    monkeypatch.syspath_prepend(str(bench))
    spec = importlib.util.spec_from_file_location("replica_sigma_bench", bench / "replica_sigma.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_replica_sigma_benchmark_reads_runs_and_writes_its_page(tmp_path, monkeypatch, capsys):
    """benchmarks/replica_sigma.py on a made-up run folder: σ and the scatter over the posterior's
    σ are the replicas' spreads, the page is written, a run without a posterior or a bad
    --simulate is one line."""
    mod = _replica_sigma_bench(monkeypatch)
    rng = np.random.default_rng(1)
    k = 8
    final = np.vstack([0.5 * rng.standard_normal((k, 2)), rng.standard_normal((15, 2))])
    run = tmp_path / "run"
    run.mkdir()
    np.savez(run / "params.npz", theta=final)
    post_std = [0.5, 2.0]
    metrics = {"param_names": ["a", "b"], "crb_std": [0.5, 2.0], "posterior": {"std": post_std}}
    (run / "metrics.json").write_text(json.dumps(metrics))
    (run / "config.yaml").write_text(yaml.safe_dump({"data_replicas": k, "gan": {"d_steps": 3}}))
    out = tmp_path / "rs.json"
    argv = [f"fresh={run}", "--simulate", "14:2:0.2", "--out", str(out)]
    assert mod.main(argv + ["--results", str(tmp_path / "res")]) == 0
    got = json.loads(out.read_text())
    (row,) = got["rows"]
    mean, std, scatter = replica_estimate(final, k)
    assert np.allclose(mean, final[:k].mean(0))
    assert np.allclose(std, final[k:].std(0, ddof=1) * interval_factor(15))
    assert np.allclose(scatter, final[:k].std(0, ddof=1))
    assert row["set"] == "fresh" and row["data_replicas"] == k and row["bootstrap"] == 15
    assert np.allclose(row["sigma_over_post"], std / post_std)
    assert np.allclose(row["spread_over_post"], final[k:].std(0, ddof=1) / post_std)
    assert np.allclose(row["scatter_over_post"], scatter / post_std)
    assert [(c["bootstrap"], c["data_replicas"]) for c in got["simulation"]][-1] == (14, 2)
    assert "| fresh | 1 |" in (tmp_path / "res" / "replica-sigma.md").read_text()
    for bad in (["--simulate", "14:2"], ["--simulate", "1:2:0.1"]):
        with pytest.raises(SystemExit) as stop:
            mod.main([str(run), "--out", str(out)] + bad)
        assert stop.value.code == 2
        assert "--simulate" in capsys.readouterr().err
    one = tmp_path / "one"  # one data replica: no scatter, a dash on the page, no NaN in the JSON
    one.mkdir()
    for name in ("params.npz", "metrics.json"):
        (one / name).write_bytes((run / name).read_bytes())
    (one / "config.yaml").write_text(yaml.safe_dump({"data_replicas": 1}))
    assert mod.main([str(one), "--out", str(out), "--results", str(tmp_path / "res")]) == 0
    assert json.loads(out.read_text())["rows"][0]["scatter_over_post"] is None
    assert "NaN" not in out.read_text()
    (one / "config.yaml").write_text(yaml.safe_dump({"data_replicas": len(final) - 1}))
    bad = {"need ≥ 2 bootstrap": one, "exact posterior": run}
    metrics.pop("posterior")
    (run / "metrics.json").write_text(json.dumps(metrics))
    for said, folder in bad.items():
        with pytest.raises(SystemExit) as stop:
            mod.main([str(folder), "--out", str(out)])
        assert stop.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and said in err


def test_a_sigma_from_few_replicas_is_the_student_t_interval_and_keeps_the_scatter(monkeypatch):
    """The benchmark's simulation: with σ known the coverage is 68.3% and the rms pull 1; from B
    bootstrap replicas the bare spread covers less (pulls have a Student-t's tails), σ as reported
    (× interval_factor(B)) covers 68.3% again; one generator's scatter left in (case A's B 15,
    K 16, s ≈ 0.37σ) keeps the rms pull lower than taking it out does."""
    mod = _replica_sigma_bench(monkeypatch)
    known = mod.calibration(100_000, 1, 0.0, n=200_000)["as reported"]
    assert known["coverage"] == pytest.approx(0.683, abs=0.004)
    assert known["pull_rms"] == pytest.approx(1.0, abs=0.01)
    for b, k in ((15, 16), (14, 2)):
        got = mod.calibration(b, k, 0.0, n=200_000)
        assert got["spread"]["coverage"] < 0.672  # 66.6%
        assert got["as reported"]["coverage"] == pytest.approx(0.683, abs=0.004)
        assert got["spread"]["pull_rms"] == pytest.approx(np.sqrt((b - 1) / (b - 3)), abs=0.02)
    case_a = mod.calibration(15, 16, 0.37, n=200_000)
    kept, taken = case_a["as reported"], case_a["scatter taken out"]
    assert kept["pull_rms"] < taken["pull_rms"] and taken["sigma_mean"] < kept["sigma_mean"]
    assert interval_factor(1) == 1.0 and interval_factor(14) == pytest.approx(1.0400, abs=1e-4)
    lo, hi = mod.chance_range(15)
    assert 0.75 < lo < 0.85 and 1.1 < hi < 1.2


def test_quantile_features_are_the_observed_cdf(proxy):
    """gan.d_quantiles: each channel's events also enter the discriminators through their observed
    CDF (piecewise linear through K + 1 quantiles). At independent events of the same θ it is the
    true CDF within the DKW band of both samples plus one knot interval, it grows with x, and it
    passes x's gradient on (the generator's pathwise gradient) where the events are."""
    data = simulate_observed(proxy, proxy.truth.numpy(), CASES["B"], seed=4)
    k = 64
    m = OuterGAN(InverseCDFSampler(proxy), data, proxy, GanConfig(d_quantiles=k), replicas=3)
    plain = OuterGAN(InverseCDFSampler(proxy), data, proxy, GanConfig(), replicas=3)
    assert m.discriminator.weights[0].shape[-2] == 4  # log s, log(1 − s), logit s, CDF
    assert plain.discriminator.weights[0].shape[-2] == 3
    fresh = simulate_observed(proxy, proxy.truth.numpy(), (100_000, 50_000), seed=5)
    for c, events in enumerate(fresh.events):
        x = torch.as_tensor(np.sort(events[:, 0]), dtype=torch.float64)
        u = m._raw_features(x.unsqueeze(-1), c)[:, -1]
        exact = (torch.arange(len(x), dtype=torch.float64) + 0.5) / len(x)  # the large sample's
        n = len(data.events[c])
        band = np.sqrt(np.log(2 / 1e-4) / 2) * (1 / np.sqrt(n) + 1 / np.sqrt(len(x))) + 1 / k
        assert (u - exact).abs().max() < band
        assert (u.diff() >= 0).all() and u[0] < 0.01 and u[-1] > 0.99
        probe = x[len(x) // 4 :: len(x) // 4][:3].clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(m._raw_features(probe.unsqueeze(-1), c)[:, -1].sum(), probe)
        assert (grad > 0).all()
    with pytest.raises(InputError, match="gan.d_quantiles must be an integer ≥ 0"):
        GanConfig(d_quantiles=-1)


def test_smooth_components_are_orthonormal_under_the_data_and_see_a_shape(proxy):
    """gan.d_smooth: cos(π j F) of the observed CDF F, j = 1…J, are Neyman's smooth components.
    Under events of the data's own θ F is uniform, so they average 0 with variance 1/2 and are
    uncorrelated (within sampling noise); at a θ whose shape differs they do not average 0. Without
    d_quantiles the option is refused."""
    data = simulate_observed(proxy, proxy.truth.numpy(), CASES["B"], seed=4)
    k, j = 128, 4
    cfg = GanConfig(d_quantiles=k, d_smooth=j)
    m = OuterGAN(InverseCDFSampler(proxy), data, proxy, cfg, replicas=3)
    assert m.discriminator.weights[0].shape[-2] == 4 + j
    other = proxy.truth.numpy() + np.array([0.0, 1.0, 0.0, 0.0, 1.0, 0.0])  # flatter at small x
    for theta, same in ((proxy.truth.numpy(), True), (other, False)):
        fresh = simulate_observed(proxy, theta, (100_000, 50_000), seed=5)
        for c, events in enumerate(fresh.events):
            x = torch.as_tensor(events, dtype=torch.float64)
            smooth = m._raw_features(x, c)[:, -j:].numpy()
            n = len(data.events[c])
            noise = 5 * np.sqrt(0.5) * (1 / np.sqrt(n) + 1 / np.sqrt(len(x))) + np.pi / k
            if same:
                assert np.abs(smooth.mean(0)).max() < noise
                cov = np.cov(smooth.T)
                assert np.abs(cov - 0.5 * np.eye(j)).max() < 0.05
            else:
                assert np.abs(smooth.mean(0)).max() > noise  # 5 standard deviations
    with pytest.raises(InputError, match="gan.d_smooth 4 needs gan.d_quantiles > 0"):
        GanConfig(d_smooth=4)
    with pytest.raises(InputError, match=r"gan.d_smooth_from must be in \[0, 1\)"):
        GanConfig(d_quantiles=k, d_smooth=j, d_smooth_from=1.0)


def test_smooth_components_reach_the_discriminators_only_after_d_smooth_from(proxy):
    """Before gan.d_smooth_from of the steps the discriminators see the smooth components'
    columns at 0 (their mean: the features are standardized), the coarse ones unchanged; from
    then on the full features."""
    data = simulate_observed(proxy, proxy.truth.numpy(), CASES["C"], seed=4)
    for shared in (False, True):
        cfg = GanConfig(d_quantiles=32, d_smooth=3, d_smooth_from=0.5, shared=shared)
        m = OuterGAN(InverseCDFSampler(proxy), data, proxy, cfg, replicas=2, steps=10)
        # per event: log s, log(1 − s), logit s, F, cos(πF), cos(2πF), cos(3πF) [, one-hot]
        names = ["lo", "hi", "logit", "F", "cos1", "cos2", "cos3"] + ["ch"] * (2 * shared)
        assert m.smooth_off.tolist() == [0.0 if n.startswith("cos") else 1.0 for n in names]
        feats = [m.observed_batch(c) for c in range(2)]
        assert feats[0].shape[-1] == len(names)
        coarse = [f.clone() for f in feats]
        for f in coarse:
            f[..., 4:7] = 0.0
        assert m.smooth_start == 5
        early = m.logits(feats)
        assert all(torch.equal(a, b) for a, b in zip(early, m.logits(coarse), strict=True))
        m.step_count.fill_(5)
        late = m.logits(feats)
        assert all(not torch.allclose(a, b) for a, b in zip(early, late, strict=True))
    # a stopping rule judges the trace only once the components have joined
    stop = StopConfig(enabled=True, min_steps=2)
    m = OuterGAN(InverseCDFSampler(proxy), data, proxy, cfg, replicas=2, steps=10, stop=stop)
    assert m.check_from == 6


def test_score_features_are_the_sources_score_and_join_at_d_smooth_from(proxy, tmp_path):
    """gan.d_score: the source's score ∂ log p_c/∂θ per event, tabulated on the observed events'
    quantiles. At the data's own θ it averages 0 over the observed events (a score's mean under
    its density; at another θ it does not); at the nodes it is the source's autograd score; its
    columns are 0 before the step d_smooth_from · steps and the standardized score after; a short
    fit fills it, and its checkpoint loads into a new OuterGAN of the same config."""
    data = simulate_observed(proxy, proxy.truth.numpy(), CASES["B"], seed=4)
    source = InverseCDFSampler(proxy)
    cfg = GanConfig(d_score=True, d_smooth_from=0.5)
    m = OuterGAN(source, data, proxy, cfg, replicas=2, steps=10)
    p = proxy.n_params
    assert m.score_start == 5 and m.discriminator.weights[0].shape[-2] == 3 + p
    assert all((m.observed_batch(c)[..., 3:] == 0).all() for c in range(2))
    other = proxy.truth + torch.tensor([0.0, 1.0, 0.0, 0.0, 1.0, 0.0], dtype=torch.float64)
    for theta, same in ((proxy.truth, True), (other, False)):
        m.set_score(theta)
        for c, events in enumerate(data.events):
            auto = source_score(source, m.score_nodes[c], theta, c, None)
            assert torch.allclose(m.score_values[c], auto)
            s = interpolate(torch.as_tensor(events[:, 0]), m.score_nodes[c], m.score_values[c])
            z = s.mean(0) / (s.std(0) / len(events) ** 0.5)  # its mean in standard errors
            assert (z.abs() < 5).all() if same else (z.abs() > 5).any(), z
            feats = m.observed_batch(c)[..., 3:]
            assert feats.abs().sum() > 0
    full = m.features(torch.as_tensor(data.events[0]), 0)[:, 3:]
    assert torch.allclose(full.mean(0), torch.zeros(p, dtype=full.dtype), atol=1e-9)
    assert torch.allclose(full.std(0), torch.ones(p, dtype=full.dtype), atol=1e-9)
    # a short fit fills the score at its step, and the checkpoint carries it
    fit = replace(_cfg(steps=6, replicas=3, events_per_step=32, compare_mle=False))
    fit = replace(fit, gan=replace(fit.gan, d_score=True, d_smooth_from=0.5))
    out = tmp_path / "a"
    metrics = run_outer_gan(proxy, data, source, fit, out, progress=False)
    assert np.isfinite(metrics["params_mean"]).all()
    state = torch.load(out / "checkpoints/last.ckpt", weights_only=True)["state_dict"]
    assert torch.isfinite(state["score_theta"]).all() and state["score_values"].abs().sum() > 0
    fresh = OuterGAN(source, data, proxy, fit.gan, replicas=3, steps=6)
    fresh.load_state_dict(state, strict=True)
    fresh._refresh_observed()
    assert fresh.observed_batch(0)[..., 3:].abs().sum() > 0


def test_a_flows_score_by_autograd_equals_its_central_differences(proxy):
    """gan.d_score with a surrogate source: the frozen flow's score in θ by autograd (one pass
    for all nodes) equals central differences of its log_prob, in every channel."""
    flow = FlowSurrogate(transforms=1, bins=4, hidden=(8, 8)).requires_grad_(False).eval()
    x = torch.linspace(0.15, 0.9, 7, dtype=torch.float64)
    step = 1e-3 * (proxy.prior_high - proxy.prior_low)
    for c in range(2):
        auto = source_score(flow, x, proxy.truth, c, None)
        assert auto.shape == (7, proxy.n_params) and auto.abs().max() > 0.01
        diff = source_score(_NoGrad(flow), x, proxy.truth, c, step)
        assert (auto - diff).abs().max() < 1e-3 + 1e-2 * auto.abs().max()


def test_a_resumed_run_sees_the_score_it_was_checkpointed_with(tmp_path, proxy, monkeypatch):
    """gan.d_score and --resume: a run interrupted after its score joined resumes with the
    checkpoint's score in the observed events' features (not the zeros of a fresh model), and the
    stop rule's first check waits for the score as it waits for the smooth components."""
    data = simulate_observed(proxy, proxy.truth.numpy(), CASES["C"], seed=5)
    cfg = _cfg(steps=40, replicas=3, events_per_step=32, compare_mle=False)
    cfg = replace(cfg, trainer=replace(cfg.trainer, checkpoint_every=20))
    cfg = replace(cfg, gan=replace(cfg.gan, d_score=True, d_smooth_from=0.25, trace_every=5))
    import inverse.training as fit

    original = fit.pl.Trainer

    def interrupted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        kwargs["callbacks"] = [*kwargs["callbacks"], InterruptAt(30)]
        return original(*args, **kwargs)

    monkeypatch.setattr(fit.pl, "Trainer", interrupted)
    with pytest.raises(SystemExit):
        run_outer_gan(proxy, data, InverseCDFSampler(proxy), cfg, tmp_path, progress=False)
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert int(state["step_count"]) == 20 and torch.isfinite(state["score_theta"]).all()
    monkeypatch.setattr(fit.pl, "Trainer", original)
    seen = {}
    start = OuterGAN.on_train_start

    def spy(self: OuterGAN) -> None:
        start(self)
        seen["score"] = self.observed_batch(0)[..., 3:].clone()
        seen["theta"] = self.score_theta.clone()

    monkeypatch.setattr(OuterGAN, "on_train_start", spy)
    m = run_outer_gan(
        proxy, data, InverseCDFSampler(proxy), cfg, tmp_path, resume=True, progress=False
    )
    assert m["steps"] == 40
    assert torch.equal(seen["theta"], state["score_theta"]) and seen["score"].abs().sum() > 0
    stop = StopConfig(enabled=True, min_steps=2)
    gan = OuterGAN(InverseCDFSampler(proxy), data, proxy, cfg.gan, replicas=2, steps=40, stop=stop)
    assert gan.score_start == 10 and gan.check_from == 11


def test_a_numpy_theorys_score_comes_from_differences_inside_the_box(proxy):
    """A density without gradients in θ (a NumPy theory): the score by central differences,
    one-sided at a face of the box, close to the torch theory's autograd score."""
    from surrogates.theory import NumpyTheory
    from surrogates.theory.proxy import proxy_numpy

    low, high = proxy.prior_low, proxy.prior_high

    def strict(x, t):  # noqa: ANN001, ANN202 - NaN outside the box, as a real code might be
        inside = np.all((t >= low.numpy()) & (t <= high.numpy()))
        return proxy_numpy(x, t) if inside else np.full((2, len(x)), np.nan)

    numpy_proxy = NumpyTheory(strict, "proxy-strict", proxy.param_names, proxy.channels,
                              low.numpy(), high.numpy(), [0.1], [1.0])  # fmt: skip
    x = torch.linspace(0.15, 0.9, 7, dtype=torch.float64)
    step = 1e-5 * (high - low)
    at_face = proxy.truth.clone()
    at_face[2] = high[2]  # b_u on its upper face: θ + step would leave the box
    for theta in (proxy.truth, at_face):
        auto = source_score(InverseCDFSampler(proxy), x, theta, 0, None)
        diff = source_score(InverseCDFSampler(numpy_proxy), x, theta, 0, step, (low, high))
        assert torch.allclose(auto, diff, rtol=1e-3, atol=1e-4)
    with pytest.raises(InputError, match="gan.d_score needs gan.d_smooth_from > 0"):
        GanConfig(d_score=True, d_smooth_from=0.0)


def test_score_features_are_refused_without_a_density_1d_events_or_with_a_detector(proxy, tmp_path):
    """gan.d_score with a source that has no density, or with a detector: one InputError line
    naming the way out, before the run folder is made."""

    class NoDensity:
        has_density, is_exact, n_members = False, False, 1

    data = simulate_observed(proxy, proxy.truth.numpy(), CASES["C"], seed=4)
    cfg = GanConfig(d_score=True)
    with pytest.raises(InputError, match="gan.d_score needs a source with a density"):
        OuterGAN(NoDensity(), data, proxy, cfg, replicas=2)
    with pytest.raises(InputError, match="set gan.d_score false with a detector"):
        OuterGAN(InverseCDFSampler(proxy), data, proxy, cfg, replicas=2, detector=object())
    with pytest.raises(InputError, match="1-D event variable; these events are 2-D"):
        check_score_source(InverseCDFSampler(proxy), 2, None)
    fit = _cfg(steps=4, replicas=3)
    fit = replace(fit, gan=replace(fit.gan, d_score=True))
    with pytest.raises(InputError, match="gan.d_score needs a source with a density"):
        run_outer_gan(proxy, data, NoDensity(), fit, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_data_replicas_that_settled_apart_are_flagged(tmp_path, proxy):
    """Generators on the same data further apart than σ: metrics.json names the parameters and the
    printed table warns that θ is the mean of more than one answer; a fit whose data replicas
    agree records None."""
    from inverse.report import disagreement, format_table

    data = simulate_observed(proxy, proxy.truth.numpy(), CASES["C"], seed=6)
    cfg = _cfg(steps=300, replicas=6, data_replicas=2, compare_mle=False)
    m = run_outer_gan(proxy, data, InverseCDFSampler(proxy), cfg, tmp_path, progress=False)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert "data_replicas_disagree" in saved
    spread = np.asarray(m["scatter_std"]) / np.asarray(m["replicas_std"])
    flagged = saved["data_replicas_disagree"]
    assert (flagged is None) == bool((spread <= 1).all())
    names = list(proxy.param_names)
    split = disagreement(np.array([0.1, 0.2, 2.5, 0.1, 0.3, 0.2]), np.ones(6), names)
    assert split == {"params": ["b_u"], "spread_over_sigma": [2.5]}
    text = format_table({**m, "data_replicas_disagree": split})
    assert "warning: the generators on the data disagree on b_u by 2.5 σ" in text
    assert "warning" not in format_table({**m, "data_replicas_disagree": None})
    # gan.data_restart's choice is printed with the spread of the distances it chose among
    restart = {"step": 900, "from": 2, "distances": [0.03, 0.2, 0.011, 0.02]}
    text = format_table({**m, "data_restarts": [restart]})
    assert (
        "step 900: every data replica restarted from replica 2, the closest to the data (KS "
        "distance 0.011; the other 3: 0.020–0.200;" in text
    )
    assert "restarted" not in format_table({**m, "data_restarts": None})


def _three_data_replicas(proxy, cfg, shifts):  # noqa: ANN001, ANN202
    """An OuterGAN on case-B data of the truth, 6 replicas of which 3 on the data, data replica r
    placed at the truth + shifts[r] × 20% of the box in a_u and a_d (the sigmoid box map
    inverted); returns it and the list of the θ its covariance was asked at."""
    data = simulate_observed(proxy, proxy.truth.numpy(), CASES["B"], seed=4)
    width = proxy.prior_high - proxy.prior_low
    cov = torch.diag((0.05 * width) ** 2)
    asked = []

    def covariance(t):  # noqa: ANN001, ANN202
        asked.append(np.asarray(t))
        return cov.numpy()

    m = OuterGAN(InverseCDFSampler(proxy), data, proxy, cfg, replicas=6, steps=10,
                 data_replicas=3, covariance=covariance)  # fmt: skip
    gen = m.generator_net
    far = torch.zeros(proxy.n_params, dtype=torch.float64)
    far[1] = far[4] = 0.2
    with torch.no_grad():
        net = gen.net(gen.z)[:, 0] @ gen.L.T
        for r, shift in enumerate(shifts):
            theta = proxy.truth + shift * far * width
            u = ((theta - gen.low) / (gen.high - gen.low) - gen.inset) / (1 - 2 * gen.inset)
            gen.s0[r] = torch.logit(u) - net[r]
    return m, asked


def test_data_restart_takes_every_data_replica_to_the_one_closest_to_the_data(proxy):
    """gan.data_restart: at the last precondition step the data replicas all restart from the one
    whose events are closest to the observed ones (KS), here the one at the data's θ while the
    other two sit 20% of the box away, and the bootstrap replicas (bootstrap_restart) follow;
    at an earlier step nothing moves. metrics.json's data_restarts records the choice."""
    cfg = GanConfig(data_restart=True, bootstrap_restart=True, precondition_at=[0.2, 0.5])
    m, asked = _three_data_replicas(proxy, cfg, [1.0, 0.0, -1.0])
    before = m.theta().detach().clone()
    assert torch.allclose(before[1], proxy.truth, atol=1e-9)
    m.step_count.fill_(2)
    m._reprecondition()
    assert m.restarts == [] and torch.allclose(m.theta().detach(), before, atol=1e-9)
    m.step_count.fill_(5)
    m._reprecondition()
    (restart,) = m.restarts
    assert restart["step"] == 5 and restart["from"] == 1
    d = restart["distances"]
    assert d[1] < 0.5 * min(d[0], d[2]), d
    after = m.theta().detach()
    assert torch.allclose(after, proxy.truth.expand(6, -1), atol=1e-6)
    np.testing.assert_allclose(asked[-1], proxy.truth.numpy(), atol=1e-9)
    # a checkpoint keeps the record (--resume past the restart still reports it)
    saved: dict = {}
    m.on_save_checkpoint(saved)
    fresh = _three_data_replicas(proxy, cfg, [0.0, 0.0, 0.0])[0]
    fresh.on_load_checkpoint(saved)
    assert fresh.restarts == m.restarts
    with pytest.raises(InputError, match="gan.data_restart acts at the last precondition_at"):
        GanConfig(data_restart=True, precondition=False)


@pytest.mark.parametrize("box_map", ["sigmoid", "reflect"])
def test_spread_start_puts_the_data_replicas_on_a_latin_hypercube(proxy, box_map):
    """gan.spread_start: data replica 0 at the box centre, replicas 1…K−1 one per stratum of the
    box's middle 80% in every parameter (K − 1 distinct values each), the bootstrap replicas at
    the centre; another seed another order; without it every replica at the centre."""
    from inverse.gan import SPREAD_MIDDLE

    data = simulate_observed(proxy, proxy.truth.numpy(), CASES["C"], seed=5)
    cfg = GanConfig(data_restart=True, spread_start=True, box_map=box_map)
    m = OuterGAN(InverseCDFSampler(proxy), data, proxy, cfg, replicas=12, data_replicas=8)
    gen = m.generator_net
    with torch.no_grad():
        u = ((m.theta() - gen.low) / (gen.high - gen.low) - gen.inset) / (1 - 2 * gen.inset)
    centre = torch.full((proxy.n_params,), 0.5, dtype=torch.float64)
    assert torch.allclose(u[0], centre, atol=5e-3) and torch.allclose(u[8:], centre, atol=5e-3)
    strata = 0.5 + SPREAD_MIDDLE * ((torch.arange(7) + 0.5) / 7 - 0.5)
    for p in range(proxy.n_params):  # each parameter: every stratum's centre exactly once
        got = u[1:8, p].sort().values
        assert torch.allclose(got, strata.to(got), atol=5e-3), (p, got)
    other = OuterGAN(InverseCDFSampler(proxy), data, proxy, cfg, replicas=12, data_replicas=8,
                     seed=1)  # fmt: skip
    assert not torch.allclose(other.generator_net.s0, gen.s0)
    plain = OuterGAN(InverseCDFSampler(proxy), data, proxy, GanConfig(), replicas=12,
                     data_replicas=8)  # fmt: skip
    assert torch.equal(plain.generator_net.s0, torch.zeros_like(gen.s0))
    with pytest.raises(InputError, match="gan.spread_start .* set gan.data_restart true"):
        GanConfig(spread_start=True)
    both = {"data_restart": True, "spread_start": True, "d_score": True, "d_quantiles": 64}
    with pytest.raises(InputError, match="raise gan.d_smooth_from to at least 0.3"):
        GanConfig(**both, precondition_at=[0.1, 0.3], d_smooth_from=0.2)
    assert GanConfig(**both, precondition_at=[0.1, 0.3], d_smooth_from=0.3).d_score


def test_spread_start_takes_each_covariance_at_the_replica_closest_to_the_data(proxy):
    """With gan.spread_start, an earlier precondition step takes the covariance at the data
    replica closest to the data (not at the mean of replicas that are apart) and moves none;
    the last one restarts every data replica there (data_restart)."""
    cfg = GanConfig(data_restart=True, spread_start=True, precondition_at=[0.2, 0.5])
    m, asked = _three_data_replicas(proxy, cfg, [1.0, 0.5, 0.0])
    before = m.theta().detach().clone()
    m.step_count.fill_(2)
    m._reprecondition()
    assert m.restarts == [] and torch.allclose(m.theta().detach(), before, atol=1e-9)
    np.testing.assert_allclose(asked[-1], proxy.truth.numpy(), atol=1e-9)  # replica 2's θ
    assert not np.allclose(before[:3].mean(0).numpy(), proxy.truth.numpy(), atol=1e-3)
    m.step_count.fill_(5)
    m._reprecondition()
    assert m.restarts[0]["from"] == 2
    assert torch.allclose(m.theta().detach()[:3], proxy.truth.expand(3, -1), atol=1e-6)


def test_bootstrap_restart_moves_the_bootstrap_replicas_to_the_datas_theta(proxy):
    """gan.bootstrap_restart: at the last precondition step the bootstrap replicas take the data
    replicas' mean θ (the data replicas keep theirs); at an earlier step, or without the option,
    every replica keeps its own θ."""
    data = simulate_observed(proxy, proxy.truth.numpy(), CASES["C"], seed=4)
    cov = torch.as_tensor(np.diag((0.05 * (proxy.prior_high - proxy.prior_low).numpy()) ** 2))
    for restart in (False, True):
        cfg = GanConfig(bootstrap_restart=restart, precondition_at=[0.2, 0.5])
        m = OuterGAN(InverseCDFSampler(proxy), data, proxy, cfg, replicas=5, steps=10,
                     data_replicas=2, covariance=lambda t: cov.numpy())  # fmt: skip
        with torch.no_grad():  # spread the replicas as training would
            m.generator_net.s0.add_(torch.randn(5, proxy.n_params, dtype=torch.float64))
        for step, last in ((2, False), (5, True)):
            before = m.theta().detach().clone()
            m.step_count.fill_(step)
            m._reprecondition()
            after = m.theta().detach()
            assert torch.allclose(after[:2], before[:2], atol=1e-9)
            if restart and last:
                gen = m.generator_net  # the data replicas' mean position, through the box map
                u = gen.inset + (1 - 2 * gen.inset) * gen._box(gen.logit()[:2].mean(0))[0]
                target = gen.low + (gen.high - gen.low) * u
                assert torch.allclose(after[2:], target.expand(3, -1), atol=1e-9)
                assert not torch.allclose(after[2:], before[2:], atol=1e-3)
            else:
                assert torch.allclose(after, before, atol=1e-9)


def test_outer_gan_trains_and_resumes_with_quantile_features(tmp_path, proxy):
    """A short fit with gan.d_quantiles, two smooth components and one shared discriminator:
    finite θ, and its checkpoint holds the knots and loads strictly into a new OuterGAN of the same
    config (what --resume does)."""
    data = simulate_observed(proxy, proxy.truth.numpy(), CASES["C"], seed=6)
    cfg = _cfg(steps=6, replicas=3, events_per_step=32, compare_mle=False)
    cfg = replace(cfg, gan=replace(cfg.gan, d_quantiles=16, d_smooth=2, shared=True, d_steps=2))
    m = run_outer_gan(proxy, data, InverseCDFSampler(proxy), cfg, tmp_path / "a", progress=False)
    assert m["steps"] == 6 and np.isfinite(m["params_mean"]).all()
    state = torch.load(tmp_path / "a/checkpoints/last.ckpt", weights_only=True)["state_dict"]
    assert state["quantile_knots"].shape == (2, 17, 1)
    assert (state["feat_std"] > 0).all() and state["feat_std"].shape == (2, 6)  # 3 + F + 2 cos
    fresh = OuterGAN(InverseCDFSampler(proxy), data, proxy, cfg.gan, replicas=3)
    fresh.load_state_dict(state, strict=True)
    assert torch.equal(fresh.quantile_knots, state["quantile_knots"])
