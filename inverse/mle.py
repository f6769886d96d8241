"""`python -m inverse.mle`: the extended maximum-likelihood fit of observed events, and its CRB.

python -m inverse.mle --events obs.npz --out runs/mle --starts 8
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from inverse.config import MLEConfig, parse_cli, to_dict
from inverse.plots import plot_fit
from surrogates.data import ObservedData, read_events
from surrogates.errors import InputError
from surrogates.likelihood import crb_std, fit_mle
from surrogates.runs import cli_errors, write_run_files
from surrogates.theory import Theory, get_theory

__all__ = ["main", "run_mle"]


def run_mle(
    theory: Theory,
    data: ObservedData,
    out: str | Path,
    config: dict,
    n_starts: int = 4,
    seed: int = 0,
) -> dict:
    """Fit, then write ``metrics.json``, ``config.yaml``, ``environment.json`` and ``fit.png``.

    The Cramér–Rao bound is evaluated at the true θ when the data carry it (else at the MLE), for
    the expected counts when known (else the observed counts).
    """
    result = fit_mle(theory, data, n_starts=n_starts, seed=seed)
    counts = data.expected_counts if data.expected_counts is not None else data.counts
    at = data.theta_true if data.theta_true is not None else result.theta
    crb = crb_std(theory, at, counts)
    truth = data.theta_true
    metrics = {
        "method": "mle",
        "theory": theory.name,
        "param_names": list(theory.param_names),
        "params_mean": result.theta,
        "params_std": result.std,
        "params_true": truth,
        "crb_std": crb,
        "crb_at": "truth" if truth is not None else "mle",
        "pull": None if truth is None else (result.theta - truth) / crb,
        "covariance": result.cov,
        "counts": data.counts,
        "nll": result.nll,
        "converged": result.success,
        "at_boundary": result.at_boundary,
        "starts": result.n_starts,
        "seconds": result.seconds,
        "steps": None,
    }
    out = write_run_files(out, config, metrics)
    plot_fit(out / "fit.png", theory, data, result.theta, result.std, crb)
    return metrics


def format_table(metrics: dict, title: str = "") -> str:
    """Truth, fit ± σ, σ_CRB and pull per parameter, as aligned text."""
    lines = [title] if title else []
    lines.append(f"{'param':>6} {'truth':>10} {'fit':>10} {'± σ':>9} {'σ_CRB':>9} {'pull':>7}")
    truth = metrics["params_true"]
    for i, name in enumerate(metrics["param_names"]):
        t = f"{truth[i]:10.4f}" if truth is not None else f"{'?':>10}"
        p = f"{metrics['pull'][i]:7.2f}" if metrics["pull"] is not None else f"{'':>7}"
        lines.append(
            f"{name:>6} {t} {metrics['params_mean'][i]:10.4f} {metrics['params_std'][i]:9.4f} "
            f"{metrics['crb_std'][i]:9.4f} {p}"
        )
    return "\n".join(lines)


@cli_errors
def main(argv: Sequence[str] | None = None) -> int:
    cfg = parse_cli(MLEConfig, argv, "python -m inverse.mle", __doc__)
    if cfg.events is None:
        raise InputError("--events is required: the observed events (.npz or .csv) to fit")
    theory = get_theory(cfg.theory)
    data = read_events(cfg.events, theory)
    metrics = run_mle(theory, data, cfg.out, to_dict(cfg), cfg.starts, cfg.seed)
    print(format_table(metrics, f"MLE of {cfg.events} ({metrics['seconds']:.2f} s)"))
    print(f"wrote {Path(cfg.out) / 'metrics.json'} and fit.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
