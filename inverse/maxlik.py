"""The maximum-likelihood yardstick as a run: fit observed data, bound it by Cramér–Rao, write the
run folder (`python -m inverse.mle` and `python -m inverse.closure` call it)."""

from __future__ import annotations

from pathlib import Path

from inverse.plots import plot_fit
from surrogates.data import ObservedData
from surrogates.errors import InputError
from surrogates.likelihood import crb_std, exact_posterior, fit_mle
from surrogates.runs import claim_run_dir, write_run_files
from surrogates.theory import Theory

__all__ = ["run_mle", "format_table", "require_density"]


def require_density(theory: Theory, command: str) -> None:
    """One line before anything is written when ``theory`` is an event generator (no density)."""
    if not getattr(theory, "has_density", False):
        raise InputError(
            f"'{theory.name}' gives events but no density, so {command} has no exact likelihood "
            "to fit; fit θ with python -m inverse.fit through a surrogate trained on its events "
            "(its metrics compare the outer GAN with the surrogate's own maximum likelihood)"
        )


def run_mle(
    theory: Theory,
    data: ObservedData,
    out: str | Path,
    config: dict,
    n_starts: int = 4,
    seed: int = 0,
    overwrite: bool = False,
    posterior: bool = False,
) -> dict:
    """Fit, then write ``metrics.json``, ``config.yaml``, ``environment.json`` and ``fit.png``.

    The Cramér–Rao bound is evaluated at the true θ when the data carry it (else at the MLE), for
    the expected counts when known (else the observed counts). With ``posterior`` the exact
    posterior is sampled from the MLE too (`exact_posterior`): ``posterior`` and
    ``std_over_post`` (σ_MLE/σ_post) in the metrics.
    """
    require_density(theory, "inverse.mle")
    with claim_run_dir(out, overwrite=overwrite):
        return _fit_and_write(theory, data, Path(out), config, n_starts, seed, posterior)


def _fit_and_write(
    theory: Theory,
    data: ObservedData,
    out: Path,
    config: dict,
    n_starts: int,
    seed: int,
    posterior: bool = False,
) -> dict:
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
    if posterior:
        post = exact_posterior(theory, data, start=result.theta, seed=seed)
        metrics["posterior"] = post.to_dict()
        metrics["std_over_post"] = result.std / post.std
    out = write_run_files(out, config, metrics)
    plot_fit(out / "fit.png", theory, data, result.theta, result.std, crb)
    return metrics


def format_table(metrics: dict, title: str = "") -> str:
    """Truth, fit ± σ, σ_CRB and pull per parameter (and the posterior's mean and σ_MLE/σ_post
    when sampled), as aligned text."""
    lines = [title] if title else []
    post = metrics.get("posterior")
    head = f"{'param':>6} {'truth':>10} {'fit':>10} {'± σ':>9} {'σ_CRB':>9} {'pull':>7}"
    lines.append(head + (f" {'post':>10} {'σ/σ_post':>9}" if post else ""))
    truth = metrics["params_true"]
    for i, name in enumerate(metrics["param_names"]):
        t = f"{truth[i]:10.4f}" if truth is not None else f"{'?':>10}"
        p = f"{metrics['pull'][i]:7.2f}" if metrics["pull"] is not None else f"{'':>7}"
        row = (
            f"{name:>6} {t} {metrics['params_mean'][i]:10.4f} {metrics['params_std'][i]:9.4f} "
            f"{metrics['crb_std'][i]:9.4f} {p}"
        )
        if post:
            row += f" {post['mean'][i]:10.4f} {metrics['std_over_post'][i]:9.2f}"
        lines.append(row)
    if post:
        state = "converged" if post["converged"] else "NOT converged"
        lines.append(
            f"exact posterior ({post['likelihood']}): {state}, max R̂ {max(post['rhat']):.3f}, "
            f"min ESS {min(post['ess']):.0f}, {post['seconds']:.1f} s"
        )
    return "\n".join(lines)
