"""Interpolation error of the training grids: Chebyshev (one grid for all θ) against adaptive (per θ).

    python benchmarks/grids.py [--out runs/benchmarks/grids.json] [--theta 256] [--results DIR]

A narrow Gaussian peak (σ = 1% of the x range, position, fraction and background slope drawn per θ)
on a falling exponential background, and the proxy (its x → 1 edge): for G = 128, 256, 512 nodes,
the L1 distance ∫|p_lin − p| dx between each θ's normalized density and its piecewise-linear
interpolant (the pdf target of the flows, the table the GAN/VAE resample from), measured on
200 001 points, and the relative error of the interpolant at the peak's centre. Prints a table and
writes JSON (and with ``--results DIR`` the page ``DIR/grids.md``).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import results  # benchmarks/results.py (the docs/results pages); found before this folder leaves sys.path
import torch

from surrogates.runs import environment, write_json
from surrogates.sampling import adaptive_grid, interp_grid
from surrogates.theory import get_theory
from surrogates.theory.base import chebyshev_grid

WIDTH = 0.02  # the peak's σ on x ∈ [1, 3]: 1% of the range
LOW, HIGH = 1.0, 3.0


def peak_density(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """x (B, n, 1), θ = (mass, peak fraction, background slope) (B, 3) → σ (B, 1, n)."""
    m, f, s = (theta[:, j : j + 1] for j in range(3))
    x = x[..., 0]
    background = s * torch.exp(-s * (x - LOW)) / (1 - torch.exp(-s * (HIGH - LOW)))
    peak = torch.exp(-0.5 * ((x - m) / WIDTH) ** 2) / (WIDTH * math.sqrt(2 * math.pi))
    return ((1 - f) * background + f * peak).unsqueeze(1)


def errors(density, theta, nodes, values, low, high, peak_at=None) -> dict:  # noqa: ANN001
    """Measured L1 interpolation error per θ (worst channel) and, given the peak positions (B,),
    the relative error of the interpolant there; in chunks of 16 θ (200 001 points each)."""
    l1, rel = [], []
    for i in range(0, theta.shape[0], 16):
        th, nd, vl = theta[i : i + 16], nodes[i : i + 16], values[i : i + 16]
        xf = torch.linspace(low, high, 200_001, dtype=torch.float64).expand(th.shape[0], -1)
        exact = density(xf.unsqueeze(-1), th)
        lin = interp_grid(nd, vl, xf)
        x1 = xf.unsqueeze(1)
        l1.append((torch.trapezoid((lin - exact).abs(), x1) / torch.trapezoid(exact, x1)).amax(1))
        if peak_at is not None:
            at = peak_at[i : i + 16, None]
            rel.append((interp_grid(nd, vl, at) / density(at.unsqueeze(-1), th) - 1)[:, 0, 0].abs())
    l1 = torch.cat(l1)
    out = {"l1_median": float(l1.median()), "l1_max": float(l1.max())}
    if rel:
        rel = torch.cat(rel)
        out.update(peak_median=float(rel.median()), peak_max=float(rel.max()))
    return out


def measure(name: str, density, theta, low, high, sizes, peak_at=None) -> list[dict]:  # noqa: ANN001
    rows = []
    for g in sizes:
        cheb = torch.as_tensor(chebyshev_grid(low, high, g)).expand(theta.shape[0], -1)
        t0 = time.perf_counter()
        table = adaptive_grid(density, theta, low, high, g)
        seconds = time.perf_counter() - t0
        for kind, nodes, values in (
            ("chebyshev", cheb, density(cheb.unsqueeze(-1), theta)),
            ("adaptive", table.nodes, table.values),
        ):
            row = {"density": name, "grid": kind, "nodes": g}
            row.update(errors(density, theta, nodes, values, low, high, peak_at))
            if kind == "adaptive":
                row.update(
                    estimate_max=float(table.error.max()),
                    seconds_per_1000_theta=1000 * seconds / theta.shape[0],
                )
            rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default="runs/benchmarks/grids.json")
    parser.add_argument("--theta", type=int, default=256, help="θ per density (default 256)")
    parser.add_argument("--sizes", default="128,256,512", help="node counts (default 128,256,512)")
    parser.add_argument(
        "--results", default=None, help="also write its page into this folder (docs/results)"
    )
    args = parser.parse_args()
    sizes = [int(v) for v in args.sizes.split(",")]
    gen = torch.Generator().manual_seed(0)
    low, high = torch.tensor([1.4, 0.1, 1.0]), torch.tensor([2.6, 0.4, 3.0])
    theta = (low + (high - low) * torch.rand(args.theta, 3, generator=gen)).double()
    rows = measure("peak (σ = 1% of range)", peak_density, theta, LOW, HIGH, sizes, theta[:, 0])
    proxy = get_theory("proxy")
    rows += measure("proxy", proxy._density, proxy.sample_prior(args.theta, gen), 0.1, 1.0, sizes)
    print(f"{'density':<24}{'grid':<11}{'G':>5}{'L1 median':>11}{'L1 max':>10}{'peak max':>10}")
    for r in rows:
        peak = f"{r['peak_max']:10.2%}" if "peak_max" in r else f"{'—':>10}"
        print(
            f"{r['density']:<24}{r['grid']:<11}{r['nodes']:>5}{r['l1_median']:11.2e}"
            f"{r['l1_max']:10.2e}{peak}"
        )
    payload = {
        "rows": rows,
        "theta": args.theta,
        "width": WIDTH,
        "torch_threads": torch.get_num_threads(),
        "environment": environment(),
    }
    out = write_json(Path(args.out), payload)
    print(f"wrote {out}")
    if args.results:
        results.write_benchmark_page("grids", payload, args.results, out)


if __name__ == "__main__":
    main()
