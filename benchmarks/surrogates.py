"""The zoo on one table: fidelity from each shipped checkpoint's card, speed measured here.

    python benchmarks/surrogates.py [--theory proxy] [--out runs/benchmarks/surrogates.json]
        [--theta 64] [--events 1000]

For every checkpoint of ``--theory`` in checkpoints/: family, backend, max |θ shift| (in σ_CRB at
the card's reference counts, stated per row), C2ST AUC and W1 per channel, norm error, training
seconds (from the card), and sampling speed with gradients for a batch of θ, as events per second
and as a ratio to the exact differentiable sampler and, for the proxy, to the NumPy black-box
theory (which has no gradients: its speed is for events alone).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import results  # benchmarks/results.py (the docs/results pages); found before this folder leaves sys.path

# this file is named like the package: keep its own folder off the import path
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import torch  # noqa: E402

from surrogates.metrics import sampling_rate  # noqa: E402
from surrogates.runs import cli_errors, environment  # noqa: E402
from surrogates.sampling import InverseCDFSampler  # noqa: E402
from surrogates.theory import get_theory  # noqa: E402
from surrogates.zoo import CHECKPOINTS, list_checkpoints, load_surrogate  # noqa: E402


def events_per_second(source, theta: torch.Tensor, n: int, grad: bool, repeats: int = 3) -> float:  # noqa: ANN001
    """Median over repeats (after a warm-up) of `surrogates.metrics.sampling_rate`."""
    sampling_rate(source, theta, n, grad)
    return statistics.median(sampling_rate(source, theta, n, grad) for _ in range(repeats))


@cli_errors
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--theory", default="proxy", help="the checkpoints' theory (a name)")
    parser.add_argument("--out", default="runs/benchmarks/surrogates.json")
    parser.add_argument("--theta", type=int, default=64, help="θ per batch")
    parser.add_argument("--events", type=int, default=1000, help="events per θ per channel")
    parser.add_argument(
        "--results", default=None, help="also write its page into this folder (docs/results)"
    )
    args = parser.parse_args()
    theory = get_theory(args.theory)
    theta = theory.sample_prior(args.theta, torch.Generator().manual_seed(0))
    exact = events_per_second(InverseCDFSampler(theory), theta, args.events, grad=True)
    blackbox = (
        events_per_second(
            InverseCDFSampler(get_theory("proxy-numpy")), theta, args.events, grad=False
        )
        if theory.name == "proxy"
        else float("nan")
    )
    rows = []
    for name in list_checkpoints(theory=theory.name):
        card = json.loads((CHECKPOINTS / f"{name}.json").read_text())
        m = card.get("metrics", {})
        model = load_surrogate(name, theory=theory.name)
        rate = events_per_second(model, theta.float(), args.events, grad=True)
        rows.append(
            {
                "name": name,
                "family": card["family"],
                "backend": card.get("backend"),
                "theta_shift_crb_max": max(m["theta_shift_crb"])
                if m.get("theta_shift_crb")
                else None,
                "reference_counts": m.get("reference_counts"),  # None: the proxy's case A
                "c2st_auc": m.get("c2st_auc"),
                "w1": m.get("w1"),
                "norm_error": m.get("norm_error"),
                "train_seconds": m.get("train_seconds"),
                "events_per_second_grad": rate,
                "vs_exact": rate / exact,
                "vs_numpy_blackbox": rate / blackbox,
            }
        )
    print(
        f"exact inverse CDF (grad): {exact:.3g} events/s; NumPy black box (no grad): {blackbox:.3g} events/s"
    )
    head = f"{'checkpoint':<18}{'family':<7}{'backend':<10}{'|Δθ|/σA':>8}{'C2ST σ1':>9}{'C2ST σ2':>9}{'W1 σ1':>8}{'W1 σ2':>8}{'norm err':>9}{'train s':>8}{'ev/s':>9}{'×exact':>7}{'×numpy':>7}"
    print(head)
    for r in rows:
        c2 = r["c2st_auc"] or [float("nan")] * 2
        w1 = r["w1"] or [float("nan")] * 2
        shift = r["theta_shift_crb_max"]
        print(
            f"{r['name']:<18}{r['family']:<7}{r['backend'] or '':<10}{shift if shift is not None else float('nan'):8.2f}"
            f"{c2[0]:9.3f}{c2[1]:9.3f}{w1[0]:8.4f}{w1[1]:8.4f}{r['norm_error'] or float('nan'):9.4f}"
            f"{r['train_seconds'] or float('nan'):8.0f}{r['events_per_second_grad']:9.3g}{r['vs_exact']:7.2f}{r['vs_numpy_blackbox']:7.2f}"
        )
    payload = {
        "theory": theory.name,
        "exact_events_per_second_grad": exact,
        "numpy_blackbox_events_per_second": blackbox,
        "theta": args.theta,
        "events_per_theta": args.events,
        "rows": rows,
        "environment": environment(),
    }
    results.publish("surrogates", payload, args.out, args.results)


if __name__ == "__main__":
    main()
