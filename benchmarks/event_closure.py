"""Event-level closure: a surrogate learned from a generator's events alone, judged where only the
measurement may look.

Module-2 is ``proxy-smeared``: the proxy theory followed by a detector written as an
event-by-event simulation (efficiency ε(x) = 0.9 − 0.3 (x − 0.1) of the true x, Gaussian
smearing σ = 0.02, events leaving [0.1, 1) lost). The package sees it only as an event generator.
This script, and only it, also knows the detector's exact response, so it can fold the exact
density through it (`surrogates.likelihood.FoldedModel`) and judge the surrogate:

1. the θ shift at test θ: ``--shift-events`` events per channel from the surrogate at θ, fitted
   with the folded exact density (binned), in units of σ_CRB of case-B data (10^4 + 5·10^3
   observed events) at θ;
2. closure through the outer GAN: case-B data simulated by the generator at ``--truths`` truths
   drawn at random inside the box, each fitted by the outer GAN with the surrogate as its source,
   compared with the folded-likelihood MLE on the same data: |θ_GAN − θ_MLE| / σ_CRB and σ/σ_CRB.

    python benchmarks/event_closure.py --results docs/results      # the shipped flow-proxy-smeared
    python benchmarks/event_closure.py --checkpoint runs/smeared-flow/checkpoints/best.ckpt

Test θ and truths come from their own seeds (``--test-seed``, ``--truth-seed``), never used to choose
anything in training. Writes ``event_closure.json`` and ``event_closure.md`` into ``--results``.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from inverse.config import FitConfig, to_dict  # noqa: E402
from inverse.report import SurrogateYardstick, Yardstick, summarize  # noqa: E402
from inverse.sources import make_source  # noqa: E402
from inverse.training import build_model, make_trainer, train  # noqa: E402
from surrogates.data import CASES, ObservedData, simulate_observed  # noqa: E402
from surrogates.detector import SmearingDetector  # noqa: E402
from surrogates.likelihood import FoldedModel  # noqa: E402
from surrogates.likelihood.optimize import best_of_starts  # noqa: E402
from surrogates.metrics import design_theta, sample_in_chunks  # noqa: E402
from surrogates.runs import cli_errors, environment, write_json, write_text  # noqa: E402
from surrogates.theory import ProxyTheory, Theory, get_theory  # noqa: E402
from surrogates.zoo import load_surrogate  # noqa: E402

TEST_SEED = 20261201  # the test θ stream: reporting only
TRUTH_SEED = 20261202  # the closure truths: reporting only


def folded_model(bins: int) -> FoldedModel:
    theory = ProxyTheory()
    return FoldedModel(theory, SmearingDetector(theory), bins=bins)


def theta_shift(model, folded: FoldedModel, theta: torch.Tensor, n: int, seed: int) -> np.ndarray:  # noqa: ANN001
    """(θ_fit − θ)/σ_CRB(B) for surrogate events at θ fitted with the folded exact density."""
    events = [
        e.reshape(len(e), -1).astype(np.float64)
        for e in sample_in_chunks(model, theta.float(), n, seed=seed)
    ]
    with torch.no_grad():
        norms = model.norms(theta.float()).double()[0].numpy()
    fit = folded.fit_events(events, norms, start=theta[0].numpy())
    crb = folded.crb_std(theta[0], CASES["B"])
    return (fit.theta - theta[0].numpy()) / crb


def publish(results: str | Path, name: str, result: dict, render) -> str:  # noqa: ANN001
    """``name``.json and ``name``.md (``render(result)``) into ``results``; the page's text."""
    page = render(result)
    write_json(Path(results) / f"{name}.json", result)
    write_text(Path(results) / f"{name}.md", page)
    return page


def page_again(
    from_json: str | Path,
    results: str | Path,
    render,
    name: str | None = None,  # noqa: ANN001
) -> Path:
    """The page of a result JSON written again (``render``), as ``name`` (default: the JSON's)."""
    page = Path(results) / f"{name or Path(from_json).stem}.md"
    write_text(page, render(json.loads(Path(from_json).read_text())))
    return page


def draw_truths(theory, seed: int, n: int) -> list[np.ndarray]:  # noqa: ANN001
    """n closure truths of ``seed``, uniform in the inner 80% of the box along every parameter."""
    rng = np.random.default_rng(seed)
    low, high = theory.prior_low.numpy(), theory.prior_high.numpy()
    return [low + (0.1 + 0.8 * rng.random(theory.n_params)) * (high - low) for _ in range(n)]


def smeared_case_b(theta: np.ndarray, seed: int, counts: list[float] | None = None) -> ObservedData:
    """Case-B data (or ``counts`` events) of the proxy-smeared generator at θ, unlabelled so that
    the folded proxy (or a surrogate of the generator) may fit it."""
    counts = CASES["B"] if counts is None else counts
    data = simulate_observed(get_theory("proxy-smeared"), theta, counts, seed=seed)
    return ObservedData(
        data.events,
        data.norms,
        data.norms_sigma,
        "",
        data.theta_true,
        data.expected_counts,
        data.meta,
    )


def run_gan(
    theory, data: ObservedData, source, cfg: FitConfig, yardstick, exact: bool, out: Path
) -> tuple[dict, float]:  # noqa: ANN001
    """The outer GAN exactly as `inverse.fit` builds and summarizes it: (metrics, seconds)."""
    gan = build_model(theory, data, source, cfg, yardstick, None)
    out.mkdir(parents=True, exist_ok=True)
    trainer, _ = make_trainer(gan, cfg, theory, exact, out)
    seconds = train(trainer, gan, cfg, out)
    metrics, _ = summarize(gan, cfg, theory, yardstick, None, None, seconds)
    return metrics, seconds


def _cut_by_box(metrics: dict, names: tuple[str, ...]) -> dict:
    at_face = metrics.get("at_face") or {}
    return {
        name: {k: at_face[name].get(k) for k in ("method", "trigger") if k in at_face[name]}
        for name in names
        if name in at_face
    }


def run_exact_gan(
    data: ObservedData,
    folded: FoldedModel | None,
    cfg: FitConfig,
    out: Path,
    theory: Theory | None = None,
) -> tuple[dict, float, Yardstick]:
    """The outer GAN of ``cfg`` on ``data`` with the exact source of ``theory`` (default the
    proxy), through ``folded``'s detector when there is one (`build_model` takes it from the
    yardstick), the run labelled as what it is: (metrics, seconds, the yardstick it was read
    with)."""
    if folded is not None:
        theory = folded.theory
    theory = ProxyTheory() if theory is None else theory
    yardstick = Yardstick(theory, data, folded)
    spec = None if folded is None else folded.detector.describe()
    cfg = replace(cfg, theory=theory.name, source="exact", detector=spec)
    metrics, seconds = run_gan(
        theory, data, make_source("exact", theory), cfg, yardstick, True, out
    )
    return metrics, seconds, yardstick


def exact_control(
    folded: FoldedModel,
    data: ObservedData,
    mle: np.ndarray,
    crb: np.ndarray,
    cfg: FitConfig,
    out: Path,
) -> dict:
    """The control: the same outer GAN on the same data with the exact source, the proxy's
    inverse CDF followed by the detector (what the folded density describes), read with the
    folded yardstick. Where it misses the MLE as the surrogate's GAN does, the miss is the
    outer GAN's, not the surrogate's."""
    metrics, seconds, _ = run_exact_gan(data, folded, cfg, out)
    mean, std = np.asarray(metrics["params_mean"]), np.asarray(metrics["params_std"])
    return {
        "gan_mean": mean.tolist(),
        "gan_minus_mle_crb": ((mean - mle) / crb).tolist(),
        "std_over_crb": (std / crb).tolist(),
        "cut_by_box": _cut_by_box(metrics, folded.theory.param_names),
        "steps": metrics.get("steps"),
        "stop_reason": metrics.get("stop_reason"),
        "seconds": seconds,
    }


def closure(
    model,
    folded: FoldedModel,
    theta: np.ndarray,
    seed: int,
    cfg: FitConfig,
    out: Path,
    control: bool = False,
) -> dict:  # noqa: ANN001
    """Case-B data of the generator at θ: the outer GAN through ``model`` vs the folded MLE
    (and, with ``control``, the same GAN with the exact source: `exact_control`)."""
    generator = get_theory("proxy-smeared")
    data = smeared_case_b(theta, seed)
    yardstick = Yardstick(folded.theory, data, folded)  # the measurement's, never the fit's
    # the outer GAN exactly as inverse.fit runs it for a generator (build_model: seeded, the
    # config's stop rule, steps scaled from the surrogate's own Fisher information) and θ, σ as
    # it reports them, with the fit's own knowledge only: the face rule reads the surrogate's
    # likelihood, never the folded density
    own = SurrogateYardstick(model, generator, data)
    metrics, seconds = run_gan(generator, data, model, cfg, own, False, out)
    mle = folded.fit(data, start=theta)
    counts = data.expected_counts if data.expected_counts is not None else data.counts
    crb = np.asarray(yardstick.crb_std(theta, counts))
    mean, std = np.asarray(metrics["params_mean"]), np.asarray(metrics["params_std"])
    cut = _cut_by_box(metrics, generator.param_names)
    # the surrogate's own binned MLE on the same data splits a miss, approximately (its bins are
    # not the folded model's), into the surrogate's part (its MLE − the folded MLE) and the
    # GAN's (GAN − its MLE)
    # from two starts, the GAN's θ and the folded MLE, the lower −log L kept
    fit, errors = best_of_starts(own.fit, (mean, mle.theta))
    if fit is not None:
        own_mle, own_ok = np.asarray(fit.theta, dtype=float), bool(fit.success)
    else:
        print(f"truth at {np.round(theta, 3).tolist()}: no surrogate MLE ({errors[0]})", flush=True)
        own_mle, own_ok = np.full_like(mean, np.nan), False
    # the same information at the MLE: where the likelihood bends between the truth and the MLE
    # (or the box cuts it), the two differ and σ/σ_CRB at the truth alone misleads
    crb_mle = np.asarray(yardstick.crb_std(mle.theta, counts))
    result = {
        "truth": theta.tolist(),
        "gan_mean": mean.tolist(),
        "gan_std": std.tolist(),
        "mle": mle.theta.tolist(),
        "crb": crb.tolist(),
        "gan_minus_mle_crb": ((mean - mle.theta) / crb).tolist(),
        "surrogate_mle": own_mle.tolist(),
        "surrogate_mle_converged": own_ok,
        "surrogate_mle_minus_mle_crb": ((own_mle - mle.theta) / crb).tolist(),
        "std_over_crb": (std / crb).tolist(),
        "crb_at_mle": crb_mle.tolist(),
        "std_over_crb_at_mle": (std / crb_mle).tolist(),
        "cut_by_box": cut,
        "steps": metrics.get("steps"),
        "stop_reason": metrics.get("stop_reason"),
        "seconds": seconds,
    }
    if control:
        # a run folder of its own beside the surrogate's, never inside it
        where = out.with_name(f"{out.name}-exact")
        result["exact_control"] = exact_control(folded, data, mle.theta, crb, cfg, where)
    return result


@cli_errors
def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--checkpoint",
        default="flow-proxy-smeared",
        help="surrogate of proxy-smeared: a .ckpt or a zoo name (default: the shipped "
        "flow-proxy-smeared)",
    )
    p.add_argument("--from-json", help="only write the page again from this result JSON")
    p.add_argument(
        "--test-points", type=int, default=16, help="Sobol' test θ inset 5%% from the faces"
    )
    p.add_argument(
        "--test-set",
        choices=("sobol", "box", "recorded"),
        default="sobol",
        help="box: --test-points Sobol' θ filling the box, faces included, and --face-points "
        "within 2%% of a face, the recorded test set's design on a stream of --test-seed (for "
        "validation); recorded: the proxy's recorded test set (the same prior box; 64 θ filling "
        "it and 16 near a face), for reporting only",
    )
    p.add_argument("--face-points", type=int, default=16, help="near-face θ of --test-set box")
    p.add_argument("--shift-events", type=int, default=1_000_000)
    p.add_argument("--truths", type=int, default=3)
    p.add_argument(
        "--control",
        action="store_true",
        help="at each truth also run the outer GAN with the exact source (the proxy's inverse "
        "CDF followed by the detector) on the same data: a miss it shares is the outer GAN's, "
        "not the surrogate's",
    )
    p.add_argument("--config", default="configs/inverse/smeared.yaml")
    p.add_argument("--steps", type=int, default=None, help="override the config's steps")
    p.add_argument("--bins", type=int, default=90)
    p.add_argument("--out", default="runs/event-closure")
    p.add_argument("--results", default="docs/results")
    p.add_argument(
        "--name", help="file stem of the JSON and table (event_closure; --from-json: its stem)"
    )
    p.add_argument("--test-seed", type=int, default=TEST_SEED, help="seed of the test θ")
    p.add_argument("--truth-seed", type=int, default=TRUTH_SEED, help="seed of the truths")
    args = p.parse_args(argv)
    if args.name is None:
        args.name = Path(args.from_json).stem if args.from_json else "event_closure"
    if args.from_json:
        names = ProxyTheory().param_names
        page = page_again(args.from_json, args.results, lambda r: table(r, names), args.name)
        print(f"wrote {page}")
        return 0
    if args.test_set == "box" and args.test_seed == 0:
        p.error("--test-set box --test-seed 0 is the recorded test set's own stream; give another")
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    model = load_surrogate(args.checkpoint, theory="proxy-smeared").eval()
    folded = folded_model(args.bins)
    theory = folded.theory
    t0 = time.perf_counter()
    # recorded: proxy-smeared's θ are the proxy's, the same box and test set
    design = {"recorded": "test"}.get(args.test_set, args.test_set)
    test, n_fill, test_id = design_theta(
        theory, design, args.test_points, args.face_points, args.test_seed
    )
    shifts = []
    for i, th in enumerate(test):
        s = theta_shift(model, folded, th.unsqueeze(0), args.shift_events, seed=args.test_seed + i)
        shifts.append(s)
        print(f"test θ {i:2d}: shift/σ_CRB(B) = {np.round(s, 2).tolist()}", flush=True)
    shifts = np.array(shifts)
    from inverse.training import load_config

    cfg = load_config(args.config)
    if args.steps:
        cfg = replace(cfg, steps=args.steps)
    cfg = replace(cfg, progress=False)
    runs = []
    for k, theta in enumerate(draw_truths(theory, args.truth_seed, args.truths)):
        r = closure(
            model,
            folded,
            theta,
            args.truth_seed + k,
            cfg,
            Path(args.out) / f"truth-{k}",
            control=args.control,
        )
        runs.append(r)
        print(
            f"truth {k}: GAN − MLE = {np.round(r['gan_minus_mle_crb'], 2).tolist()} σ_CRB(B), "
            f"σ/σ_CRB = {np.round(r['std_over_crb'], 2).tolist()}",
            flush=True,
        )
    result = {
        "command": "python benchmarks/event_closure.py "
        + shlex.join(sys.argv[1:] if argv is None else argv),
        "checkpoint": str(args.checkpoint),
        "family": model.family,
        "module2": "proxy-smeared",
        "reference": "case B (10000 + 5000 observed events)",
        "test_seed": args.test_seed,
        "test_set": test_id,
        "test_fill": n_fill,  # the first n_fill test θ fill the box, the others are near a face
        "truth_seed": args.truth_seed,
        "test_theta": [t.tolist() for t in test],
        "theta_shift_crb_B": shifts.tolist(),
        "theta_shift_crb_B_max": np.abs(shifts).max(0).tolist() if len(shifts) else [],
        "shift_events": args.shift_events,
        "closures": runs,
        "config": args.config,
        "fit_config": to_dict(cfg),  # as resolved: the page names its GAN's settings from it
        "steps": cfg.steps,
        "seconds": time.perf_counter() - t0,
        "environment": environment(),
    }
    print(publish(args.results, args.name, result, lambda r: table(r, theory.param_names)))
    return 0


def table(r: dict, names: tuple[str, ...]) -> str:
    command = r.get("command") or (
        f"python benchmarks/event_closure.py --checkpoint {r['checkpoint']} "
        f"--test-seed {r['test_seed']} --truth-seed {r['truth_seed']}"
    )
    # n sampled events per channel against case B's N_c: the sample's θ noise is ≈ √(N_c/n) σ_CRB
    noise = (max(CASES["B"]) / r["shift_events"]) ** 0.5
    test_set = r.get("test_set", f"sobol-{r['test_seed']}")
    if test_set.startswith("sobol"):
        where = f"scrambled Sobol' points of seed {r['test_seed']}, inset 5% from the faces"
    elif test_set.startswith("box"):
        where = (
            f"the test set's design on stream {r['test_seed']}, for validation: the box "
            "filled, faces included, then points within 2% of a face"
        )
    else:
        where = f"the proxy's recorded test set {test_set}: the box filled, faces included"
    env = r.get("environment") or {}
    made = ""
    if env.get("git_commit"):
        made = f" at commit {env['git_commit'][:7]}"
        made += " with uncommitted changes" if env.get("git_dirty") else ""
        made += f" on {env['date']}" if env.get("date") else ""
        made += f" ({env['note']})" if env.get("note") else ""
    head = "| | " + " | ".join(names) + " |\n|---|" + "---|" * len(names) + "\n"
    lines = [
        f"# Event-level closure: a {r['family']} learned from proxy-smeared events alone\n",
        f"Generated by `{command}`{made}.",
    ]
    if r["theta_shift_crb_B"]:
        lines[-1] += (
            f" θ shift: {r['shift_events']} surrogate events per channel at each of "
            f"{len(r['test_theta'])} test θ ({where}) fitted with the exact density folded "
            "through the detector, in σ_CRB of case-B data (10^4 + 5·10^3 observed events); the "
            f"surrogate sample's own noise is at most about {noise:.2f} per parameter.\n"
        )
        lines.append(
            head
            + "| max \\|shift\\| / σ_CRB(B) | "
            + " | ".join(f"{v:.2f}" for v in r["theta_shift_crb_B_max"])
            + " |"
        )
        shifts = np.abs(np.asarray(r["theta_shift_crb_B"]))
        med = np.median(shifts, 0)
        lines[-1] += "\n| median | " + " | ".join(f"{v:.2f}" for v in med) + " |"
        fill = int(r.get("test_fill", len(shifts)))
        if fill < len(shifts):
            for label, part in (
                (f"max over the {fill} filling θ", shifts[:fill]),
                (f"max over the {len(shifts) - fill} near a face", shifts[fill:]),
            ):
                lines[-1] += f"\n| {label} | " + " | ".join(f"{v:.2f}" for v in part.max(0)) + " |"
        worst = shifts.max(1)
        lines.append(
            f"\nEach test θ's largest |shift|: median {np.median(worst):.2f}, 95th percentile "
            f"{np.percentile(worst, 95):.2f}, max {worst.max():.2f}; above 1 at "
            f"{int((worst > 1).sum())} of {len(worst)} test θ."
        )
    if not r["closures"]:
        return "\n".join(lines) + "\n"
    fit = r.get("fit_config") or {}
    settings = f"{r['config']}, {r['steps']} steps"
    if fit:
        gan = fit["gan"]
        scaling = (
            "no step scaling"
            if not gan.get("precondition")
            else "steps scaled per parameter"
            if gan.get("precondition_diagonal", True)
            else "steps whitened with the correlations"
        )
        settings += (
            f", {fit['data_replicas']} data replicas of {fit['replicas']}, {scaling}, "
            f"{fit['events_per_step']} events per step"
        )
    lines.append(
        f"\nOuter GAN through the {r['family']} ({settings}) on case-B data of the "
        "generator at random truths, against the folded-likelihood MLE on the same data (σ_CRB at the "
        "truth, and the same at the MLE)"
        + (
            ", steps per truth "
            + ", ".join(
                f"{c['steps']} ({c['stop_reason']})" if c.get("stop_reason") else str(c["steps"])
                for c in r["closures"]
            )
            if all(c.get("steps") for c in r["closures"])
            else ""
        )
        + ":\n"
    )
    if any("surrogate_mle_minus_mle_crb" in c for c in r["closures"]):
        lines[-1] = lines[-1][:-2] + (
            ". The surrogate's MLE is its binned likelihood's maximum on the same data (the "
            "better of Fisher-scoring fits started at the GAN's θ and at the folded MLE)"
            + (", not read by the GAN" if fit else "")
            + ":\n"
        )
    if any("exact_control" in c for c in r["closures"]):
        control = [c["exact_control"] for c in r["closures"] if "exact_control" in c]
        lines[-1] = lines[-1][:-2] + (
            ". Exact source: the control, the same GAN on the same data with the proxy's "
            "inverse CDF followed by the detector, its steps scaled and its face rule read with "
            "the folded density; steps per truth "
            + ", ".join(f"{c['steps']} ({c['stop_reason']})" for c in control)
            + ":\n"
        )
    rows = []
    for k, c in enumerate(r["closures"]):
        rows.append(
            f"| truth {k}: (GAN − MLE)/σ_CRB | "
            + " | ".join(f"{v:+.2f}" for v in c["gan_minus_mle_crb"])
            + " |"
        )
        if "surrogate_mle_minus_mle_crb" in c:
            rows.append(
                f"| truth {k}: (surrogate's MLE − MLE)/σ_CRB | "
                + " | ".join(f"{v:+.2f}" for v in c["surrogate_mle_minus_mle_crb"])
                + " |"
            )
        rows.append(
            f"| truth {k}: σ/σ_CRB | " + " | ".join(f"{v:.2f}" for v in c["std_over_crb"]) + " |"
        )
        if "std_over_crb_at_mle" in c:
            rows.append(
                f"| truth {k}: σ/σ_CRB at the MLE | "
                + " | ".join(f"{v:.2f}" for v in c["std_over_crb_at_mle"])
                + " |"
            )
        if "exact_control" in c:
            e = c["exact_control"]
            rows.append(
                f"| truth {k}: exact source: (GAN − MLE)/σ_CRB | "
                + " | ".join(f"{v:+.2f}" for v in e["gan_minus_mle_crb"])
                + " |"
            )
            rows.append(
                f"| truth {k}: exact source: σ/σ_CRB | "
                + " | ".join(f"{v:.2f}" for v in e["std_over_crb"])
                + " |"
            )
    lines.append(head + "\n".join(rows))
    cut = []
    for k, c in enumerate(r["closures"]):
        runs = [(f"truth {k}", c)]
        if "exact_control" in c:
            runs.append(
                (
                    f"truth {k} (exact source, its face rule read with the folded density)",
                    c["exact_control"],
                )
            )
        for label, run in runs:
            found = run.get("cut_by_box") or {}
            if isinstance(found, list):  # the first pages stored the names alone
                found = {name: {} for name in found}
            if found:
                cut.append(
                    f"{label}: "
                    + ", ".join(
                        name + (f" ({v['method']})" if v.get("method") else "")
                        for name, v in found.items()
                    )
                )
    if cut:
        lines.append(
            "\nCut by the prior box: θ and σ of these parameters come from the face rule of "
            "inverse.faces, read with the fit's own yardstick (the surrogate's Fisher information "
            "and score; `box`: its Gaussian cut by the box, `reweighted`: reweighted by a "
            "likelihood): " + "; ".join(cut) + "."
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
