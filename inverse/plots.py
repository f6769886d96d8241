"""PNG plots of fits: observed event histograms against fitted densities, and parameter pulls."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from surrogates.data import ObservedData  # noqa: E402
from surrogates.theory import Theory  # noqa: E402

__all__ = ["plot_fit"]


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
