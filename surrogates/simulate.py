"""`python -m surrogates.simulate {observed,training}`: simulate data sets from a theory.

``training`` builds the set in chunks under OUT.parts/ beside OUT, on --workers local processes,
a Ray cluster (--engine ray [--address auto|HOST:6379]) or a Dask cluster (--engine dask
[--address tcp://HOST:8786]); rerun the same command after a kill to resume from the finished
chunks (surrogates.datasets)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import yaml

from surrogates.data import (
    DEFAULT_GRID_TOL,
    check_grid_options,
    parse_counts,
    parse_theta,
    simulate_observed,
    training_file_meta,
    write_events,
)
from surrogates.datasets import DEFAULT_CHUNK, ENGINES, build_training_set, theta_design
from surrogates.detector import DISDetector
from surrogates.errors import InputError
from surrogates.runs import cli_errors
from surrogates.theory import THEORY_HELP, Theory, get_theory
from surrogates.validation import (
    MAX_EVENTS,
    ArgumentParser,
    check_float,
    check_int,
    check_output_file,
    check_seed,
)

__all__ = ["main"]


def parse_detector(text: str, theory: Theory) -> DISDetector | None:
    """``none``, ``dis`` (default settings) or a YAML file with a ``detector`` block."""
    from surrogates.detector import DETECTOR_DEFAULTS, make_detector

    if text == "none":
        return None
    if text == "dis":
        return make_detector(DETECTOR_DEFAULTS, theory)
    path = Path(text)
    if not path.is_file():
        raise InputError(f"--detector '{text}': choose none, dis, or a YAML config file")
    try:
        block = (yaml.safe_load(path.read_text()) or {}).get("detector")
    except (yaml.YAMLError, AttributeError):
        raise InputError(f"--detector '{text}' is not a YAML mapping") from None
    if block is None:
        raise InputError(f"--detector '{text}' has no 'detector' block")
    return make_detector(block, theory)


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="python -m surrogates.simulate", description=__doc__)
    sub = parser.add_subparsers(dest="kind", required=True)
    obs = sub.add_parser("observed", help="an observed data set: events, counts, measured norms")
    obs.add_argument("--theory", default="proxy", help=THEORY_HELP)
    obs.add_argument("--theta", default="truth", help="'truth' or comma-separated values")
    obs.add_argument("--case", default=None, help="A, B or C (expected counts, docs/design.md)")
    obs.add_argument("--events", default=None, help="expected counts per channel, N1,N2")
    obs.add_argument("--no-fluctuate", action="store_true", help="use the expected counts exactly")
    obs.add_argument("--sampler", default="auto", choices=["auto", "inverse-cdf", "mcmc"])
    obs.add_argument(
        "--detector",
        default="none",
        help="none, dis (default settings), or a YAML config whose 'detector' block to use",
    )
    obs.add_argument("--seed", type=int, default=1)
    obs.add_argument("--out", required=True, help="the event file to write (.npz added if missing)")
    tr = sub.add_parser("training", help="a training set for the surrogates")
    tr.add_argument("--theory", default="proxy", help=THEORY_HELP)
    tr.add_argument("--n-params", type=int, default=20000)
    tr.add_argument("--events-per-param", type=int, default=10)
    tr.add_argument(
        "--grid-size", type=int, default=128, help="nodes of each θ's density grid (default 128)"
    )
    tr.add_argument(
        "--grid",
        default="auto",
        choices=["auto", "adaptive", "chebyshev"],
        help="1-D theories: nodes placed per θ where linear interpolation errs most (adaptive, "
        "the auto default) or one grid clustered at both ends (chebyshev); 2-D: auto only",
    )
    tr.add_argument(
        "--grid-tol",
        default=DEFAULT_GRID_TOL,
        help="warn when a θ's L1 interpolation error ∫|p_lin − p| dx on its adaptive grid "
        f"exceeds this (default {DEFAULT_GRID_TOL:g}); the errors go into the file's meta",
    )
    tr.add_argument("--sampler", default="auto", choices=["auto", "inverse-cdf", "mcmc"])
    tr.add_argument(
        "--log-uniform",
        default="",
        help="comma-separated parameters (e.g. N_u,N_d) drawn log-uniformly in a share "
        "--log-fraction of the θ, between --log-floor × their upper bound and it: more θ where a "
        "parameter spanning decades (a normalization near 0) is small; default: θ uniform",
    )
    tr.add_argument("--log-fraction", type=float, default=0.25)
    tr.add_argument("--log-floor", type=float, default=1e-3)
    tr.add_argument("--seed", type=int, default=1)
    tr.add_argument(
        "--out", required=True, help="the training set to write (.npz added if missing)"
    )
    tr.add_argument(
        "--workers",
        type=int,
        default=1,
        help="local worker processes (1: this process), or a new local Ray/Dask cluster's size",
    )
    tr.add_argument(
        "--engine",
        default="local",
        choices=list(ENGINES),
        help="local processes ('process' is the same), Ray (pip install 'surrogate-zoo[ray]') or Dask "
        "(pip install 'surrogate-zoo[dask]')",
    )
    tr.add_argument(
        "--address",
        default=None,
        help="a running Ray cluster or Dask scheduler; default: a local cluster",
    )
    tr.add_argument(
        "--chunk",
        type=int,
        default=DEFAULT_CHUNK,
        help="θ per chunk file in OUT.parts/ (a kill loses at most the chunks in flight; a "
        "density theory's events depend on it)",
    )
    tr.add_argument(
        "--overwrite", action="store_true", help="replace OUT and any unfinished build of it"
    )
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _grid_line(meta: dict) -> str | None:
    """The one-line summary of a training set's adaptive grids (None when it has none)."""
    grid = meta.get("grid", {})
    if "error_max" not in grid:
        return None
    return (
        f"grid: {grid['kind']}, {grid['size']} nodes per θ; L1 interpolation error median "
        f"{grid['error_median']:.2g}, max {grid['error_max']:.2g} (grid_tol {grid['tol']:g}, "
        f"{grid['above_tol']} θ above)"
    )


@cli_errors
def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = check_output_file("--out", args.out, ".npz")
    seed = check_seed("--seed", args.seed)
    theory = get_theory(args.theory)
    if args.kind == "observed":
        theta = parse_theta(args.theta, theory)
        counts, case = parse_counts(args.case, args.events, theory)
        data = simulate_observed(
            theory,
            theta,
            counts,
            seed,
            method=args.sampler,
            fluctuate=not args.no_fluctuate,
            detector=parse_detector(args.detector, theory),
        )
        data.meta["case"] = case
        path = write_events(out, data, theory.channels)
        print(f"wrote {path}: counts {data.counts.tolist()} (expected {counts}), case {case}")
    else:
        n_params = check_int("--n-params", args.n_params, 1, MAX_EVENTS)
        k = check_int("--events-per-param", args.events_per_param, 1, MAX_EVENTS)
        grid_tol = check_float("--grid-tol", args.grid_tol, 0.0, open_low=True)
        check_grid_options(theory, args.grid, grid_tol, "--")
        names = [n.strip() for n in args.log_uniform.split(",") if n.strip()]
        design = theta_design(theory, names, args.log_fraction, args.log_floor)
        path = build_training_set(
            theory,
            n_params,
            k,
            seed,
            out,
            chunk=check_int("--chunk", args.chunk, 1, MAX_EVENTS),
            workers=check_int("--workers", args.workers, 1, 4096),
            engine=args.engine,
            address=args.address,
            grid_size=check_int("--grid-size", args.grid_size, 2, 1_000_000),
            method=args.sampler,
            grid=args.grid,
            grid_tol=grid_tol,
            progress=not args.no_progress,
            overwrite=args.overwrite,
            design=design,
        )
        print(f"wrote {path}: {n_params} θ × {k} events × {theory.n_channels} channels")
        line = _grid_line(training_file_meta(path))
        if line:
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
