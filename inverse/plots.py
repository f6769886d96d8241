"""PNG plots of fits: observed event histograms against fitted densities, and parameter pulls."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from surrogates.data import ObservedData  # noqa: E402
from surrogates.theory import Theory  # noqa: E402

__all__ = ["plot_fit", "plot_traces", "plot_curves", "plot_events"]


def plot_fit(
    path: str | Path,
    theory: Theory,
    data: ObservedData,
    theta_fit: np.ndarray,
    std: np.ndarray,
    crb: np.ndarray,
    label: str = "MLE",
) -> Path:
    """Observed histograms with the fitted (and true) normalized densities, and θ − θ_true in σ_CRB."""
    n_ch = theory.n_channels
    fig, axes = plt.subplots(1, n_ch + 1, figsize=(4.5 * (n_ch + 1), 3.8))
    lo, hi = float(theory.x_low[0]), float(theory.x_high[0])
    grid = torch.linspace(lo, hi, 400, dtype=theory.dtype).view(1, -1, 1)
    curves = {label: theta_fit}
    if data.theta_true is not None:
        curves["truth"] = data.theta_true
    with torch.no_grad():
        dens = {
            k: (theory.density(grid, v) / theory.norms(v).unsqueeze(-1))[0]
            for k, v in curves.items()
        }
    for c, ax in enumerate(axes[:n_ch]):
        ax.hist(
            data.events[c][:, 0],
            bins=60,
            range=(lo, hi),
            density=True,
            histtype="step",
            color="k",
            label=f"observed ({len(data.events[c])})",
        )
        for (k, d), style in zip(dens.items(), ("-", "--"), strict=False):
            ax.plot(grid[0, :, 0], d[c], style, label=k)
        ax.set_yscale("log")
        ax.set_ylim(bottom=0.5 * 60 / (max(len(data.events[c]), 1) * (hi - lo)))
        ax.set_xlabel("x")
        ax.set_title(theory.channels[c])
        ax.legend(fontsize=8)
    ax = axes[-1]
    names = list(theory.param_names)
    if data.theta_true is not None:
        pull = (theta_fit - data.theta_true) / crb
        ax.errorbar(pull, np.arange(len(names)), xerr=std / crb, fmt="o", label=f"{label} ± σ")
        ax.axvspan(-1, 1, color="0.9", label="±σ_CRB")
        ax.axvline(0, color="k", lw=0.8)
        ax.set_xlabel("(θ − θ_true) / σ_CRB")
    else:
        ax.errorbar(np.zeros(len(names)), np.arange(len(names)), xerr=std / crb, fmt="o")
        ax.set_xlabel("σ / σ_CRB around the fit")
    ax.set_yticks(np.arange(len(names)), names)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _save(fig: plt.Figure, path: str | Path, dpi: int = 80) -> Path:
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


def plot_traces(
    path: str | Path,
    names: list[str],
    steps: np.ndarray,
    trace: np.ndarray,
    truth: np.ndarray | None,
    crb: np.ndarray,
    reference: np.ndarray | None = None,
    reference_label: str = "MLE",
) -> Path:
    """θ per training step: replica 0 (the data), the replicas' 16–84% band, truth ± σ_CRB."""
    p = len(names)
    cols = min(p, 3)
    rows = -(-p // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 2.8 * rows), squeeze=False)
    for j, ax in enumerate(axes.flat):
        if j >= p:
            ax.axis("off")
            continue
        centre = truth[j] if truth is not None else trace[-1, 0, j]
        if trace.shape[1] > 2:
            lo, hi = np.percentile(trace[:, 1:, j], [16, 84], axis=1)
            ax.fill_between(steps, lo, hi, color="C0", alpha=0.25, lw=0, label="replicas 16–84%")
        ax.plot(steps, trace[:, 0, j], color="C0", lw=1, label="θ (data)")
        bounded = bool(np.isfinite(crb[j]))  # a surrogate with no information on θ_j: inf
        if truth is not None:
            if bounded:
                ax.axhspan(
                    truth[j] - crb[j], truth[j] + crb[j], color="0.85", label="truth ± σ_CRB"
                )
            ax.axhline(truth[j], color="k", lw=0.8)
        if reference is not None:
            ax.axhline(reference[j], color="C3", ls="--", lw=0.8, label=reference_label)
        if bounded:
            ax.set_ylim(centre - 8 * crb[j], centre + 8 * crb[j])
        ax.set_title(names[j], fontsize=10)
        ax.set_xlabel("step")
    axes.flat[0].legend(fontsize=7)
    return _save(fig, path)


def plot_curves(
    path: str | Path, theory: Theory, samples: np.ndarray, truth: np.ndarray | None
) -> Path:
    """The theory's curves (u, d, σ1, σ2 for the proxy): 16–84% band of the θ samples vs truth."""
    lo, hi = float(theory.x_low[0]), float(theory.x_high[0])
    x = torch.linspace(lo, hi - 1e-3 * (hi - lo), 200, dtype=theory.dtype).view(1, -1, 1)
    with torch.no_grad():
        fits = theory.curves(x.expand(len(samples), -1, -1), samples)
        true = theory.curves(x, truth) if truth is not None else None
    fig, axes = plt.subplots(1, len(fits), figsize=(3.8 * len(fits), 3.2))
    xs = x[0, :, 0].numpy()
    for ax, (name, val) in zip(np.atleast_1d(axes), fits.items(), strict=True):
        v = (xs * val.numpy()) if name in ("u", "d") else val.numpy()
        q16, q50, q84 = np.percentile(v, [16, 50, 84], axis=0)
        ax.fill_between(xs, q16, q84, color="C0", alpha=0.35, lw=0, label="fit 16–84%")
        ax.plot(xs, q50, color="C0", lw=1)
        if true is not None:
            t = true[name][0].numpy()
            ax.plot(xs, xs * t if name in ("u", "d") else t, "k--", lw=1, label="truth")
        ax.set_title(f"x·{name}(x)" if name in ("u", "d") else name, fontsize=10)
        if name not in ("u", "d"):
            ax.set_yscale("log")
        ax.set_xlabel("x")
    np.atleast_1d(axes)[0].legend(fontsize=7)
    return _save(fig, path)


def plot_events(
    path: str | Path,
    theory: Theory,
    data: ObservedData,
    generated: list[np.ndarray],
    weights: list[np.ndarray] | None = None,
) -> Path:
    """Observed against generated event histograms per channel, one row per event coordinate.

    ``weights``: per generated event (the detector's efficiency), else equal. 2-D events are
    histogrammed in the logarithm of each coordinate.
    """
    n_ch, dims = len(data.events), theory.event_dim
    fig, axes = plt.subplots(dims, n_ch, figsize=(4.5 * n_ch, 3.4 * dims), squeeze=False)
    labels = ["x"] if dims == 1 else ["x", "Q² [GeV²]"] + [f"x{k}" for k in range(2, dims)]
    for d in range(dims):
        lo, hi = float(theory.x_low[d]), float(theory.x_high[d])
        if dims == 1:
            bins = np.linspace(lo, hi, 61)
        else:
            allv = np.concatenate([e[:, d] for e in data.events])
            bins = np.geomspace(max(lo, allv.min()), min(hi, allv.max()), 41)
        for c in range(n_ch):
            ax = axes[d, c]
            ax.hist(
                generated[c][:, d],
                bins=bins,
                weights=None if weights is None else weights[c],
                density=True,
                histtype="stepfilled",
                alpha=0.35,
                color="C0",
                label=f"generated ({len(generated[c])})",
            )
            obs, _ = np.histogram(data.events[c][:, d], bins=bins)
            norm = max(obs.sum(), 1) * np.diff(bins)
            centres = (bins[1:] + bins[:-1]) / 2
            ax.errorbar(
                centres,
                obs / norm,
                yerr=np.sqrt(obs) / norm,
                fmt="k.",
                ms=3,
                label=f"observed ({len(data.events[c])})",
            )
            ax.set_yscale("log")
            if dims > 1:
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            ax.set_title(theory.channels[c])
            ax.set_xlabel(labels[d])
            ax.legend(fontsize=7)
    return _save(fig, path)
