"""Noise-free θ shift of the density surrogates over many held-out θ, on one table.

    python benchmarks/shift_map.py [NAME_OR_CKPT ...] [--theory proxy] [--reference-counts N1,N2]
        [--points 32] [--seed 7] [--design sobol|box|test] [--face-points 16]
        [--out runs/benchmarks/shift_map.json]

For each surrogate with a density of ``--theory`` (its shipped flows by default, or the given
checkpoints, or ``a.ckpt,b.ckpt,...``: their ensemble, the equal-weight mixture; one of another
theory is refused), in σ_CRB of data of ``--reference-counts`` expected events per channel
(default: the theory's reference data size; the proxy's case A): the
exact theory fitted to its expected histogram (`surrogates.metrics.theta_shift_expected`, the
sampled `theta_shift` without its noise) at the fit CLI's 5 held-out θ and at other θ never
trained on, by ``--design``:

* ``sobol`` (default): ``--points`` Sobol' points of ``--seed`` inset 5% from the box's faces (the
  fit CLI's validation design, `validation_theta`);
* ``box``: the recorded test set's design on a stream of its own (`make_test_set` with key
  ``--seed``, which must not be 0, the test set's): ``--points`` Sobol' points filling the box,
  faces included, and ``--face-points`` with one or two coordinates within 2% of a face. This is
  the validation set to choose on when the test set's faces matter;
* ``test``: the theory's recorded test set itself, for reporting only (nothing may choose on it).

Per surrogate: the largest |shift| at the 5 points, and over the others the median, mean and 95th
percentile of each point's largest |shift|, how many exceed 1 and 3 σ_CRB, the largest, the
parameter and point where it is, and (box and test) the largest among the near-face points. A
few seconds per surrogate.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import results  # benchmarks/results.py (the docs/results pages); found before this folder leaves sys.path

# benchmarks/surrogates.py is named like the package: keep this folder off the import path
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from surrogates.ensemble import Ensemble  # noqa: E402
from surrogates.errors import InputError  # noqa: E402
from surrogates.metrics import (  # noqa: E402
    HELD_OUT_SEED_OFFSET,
    counts_label,
    design_theta,
    held_out_theta,
    reference_counts,
    theta_shift_expected,
)
from surrogates.runs import cli_errors, environment  # noqa: E402
from surrogates.theory import get_theory  # noqa: E402
from surrogates.zoo import CHECKPOINTS, list_checkpoints, load_surrogate  # noqa: E402

FIT_HELD_OUT_SEED = 1 + HELD_OUT_SEED_OFFSET  # surrogates.fit's held-out θ (seed_everything 1)


def load(name: str, theory: str):  # noqa: ANN201 - a surrogate or an Ensemble
    """A zoo name or .ckpt, or several joined by commas: their equal-weight mixture (`Ensemble`,
    as ``inverse.fit --source a.ckpt,b.ckpt`` uses it)."""
    if "," in name:
        return Ensemble.load([s for s in name.split(",") if s], theory=theory).double().eval()
    return load_surrogate(name, theory=theory).double().eval()


def shift_rows(model, theory, theta: torch.Tensor, counts: np.ndarray) -> np.ndarray:  # noqa: ANN001
    """(len(theta), P) shifts in σ_CRB at ``counts`` expected events per channel."""
    return np.stack(
        [
            theta_shift_expected(model, theory, theta[i : i + 1], counts=counts)
            for i in range(len(theta))
        ]
    )


def theta_of(theory, args) -> tuple[torch.Tensor, int, str]:  # noqa: ANN001
    """The θ of ``--design``, how many of them fill the box, and a line saying what they are."""
    theta, n_fill, set_id = design_theta(theory, args.design, args.points, args.face_points, args.seed)
    what = {
        "sobol": f"Sobol' seed {args.seed}, inset 5% from the faces",
        "box": f"the test set's design on stream {args.seed} (validation)",
        "test": f"the recorded test set {set_id} (reporting only)",
    }[args.design]
    if args.design == "sobol":
        return theta, n_fill, what
    return theta, n_fill, f"{what}: {n_fill} filling, {len(theta) - n_fill} near a face"


@cli_errors
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "surrogates",
        nargs="*",
        help="zoo names or .ckpt paths, or several joined by commas for their ensemble (default: "
        "the flows)",
    )
    parser.add_argument("--theory", default="proxy", help="the surrogates' theory (a name)")
    parser.add_argument(
        "--reference-counts",
        default=None,
        help="N1,N2,...: expected events per channel of the reference data, the unit σ_CRB "
        "(default: the theory's reference_counts; the proxy: case A)",
    )
    parser.add_argument("--points", type=int, default=32)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--design",
        choices=("sobol", "box", "test"),
        default="sobol",
        help="sobol: --points Sobol' θ inset 5%% from the faces; box: the test set's design "
        "(--points filling the box, --face-points near a face) on stream --seed, for validation; "
        "test: the recorded test set, for reporting only",
    )
    parser.add_argument(
        "--face-points", type=int, default=16, help="near-face θ of --design box (default 16)"
    )
    parser.add_argument("--out", default="runs/benchmarks/shift_map.json")
    parser.add_argument(
        "--results", default=None, help="also write its page into this folder (docs/results)"
    )
    args = parser.parse_args()
    if args.points < 1 or args.face_points < 0:
        raise InputError("--points must be at least 1 and --face-points at least 0")
    torch.set_num_threads(1)
    theory = get_theory(args.theory)
    other, n_fill, design = theta_of(theory, args)
    counts = reference_counts(theory, args.reference_counts)
    names = args.surrogates or [
        n
        for n in list_checkpoints(theory=theory.name)
        if json.loads((CHECKPOINTS / f"{n}.json").read_text())["family"] == "flow"
    ]
    models = {name: load(name, theory.name) for name in names}
    fit_theta = held_out_theta(theory, 5, FIT_HELD_OUT_SEED)
    rows = []
    print(f"noise-free θ shift in {counts_label(counts)} per channel at {len(other)} θ: {design}")
    print(
        f"{'surrogate':<40}{'5 held-out':>11}{'median':>8}{'p95':>7}{'> 1':>5}{'> 3':>5}"
        f"{'largest':>9}{'near face':>10}  where"
    )
    for name, model in models.items():
        t0 = time.perf_counter()
        five = shift_rows(model, theory, fit_theta, counts)
        many = shift_rows(model, theory, other, counts)
        worst = np.abs(many).max(1)
        i, p = np.unravel_index(np.abs(many).argmax(), many.shape)
        row = {
            "surrogate": name,
            "held_out_5_max": float(np.abs(five).max()),
            "held_out_5": five,
            "points": len(other),
            "seed": args.seed,
            "design": design,
            "near_face": len(other) - n_fill,
            "median_of_max": float(np.median(worst)),
            "mean_of_max": float(worst.mean()),
            "p95_of_max": float(np.quantile(worst, 0.95)),
            "above_1": int((worst > 1).sum()),
            "above_3": int((worst > 3).sum()),
            "near_face_max": float(worst[n_fill:].max()) if len(other) > n_fill else None,
            "largest": float(worst.max()),
            "largest_at": {"theta": other[i].numpy(), "parameter": theory.param_names[p]},
            "shifts": many,
            "seconds": time.perf_counter() - t0,
        }
        rows.append(row)
        face = row["near_face_max"]
        print(
            f"{name[-40:]:<40}{row['held_out_5_max']:11.2f}{row['median_of_max']:8.2f}"
            f"{row['p95_of_max']:7.2f}{row['above_1']:5d}{row['above_3']:5d}{row['largest']:9.2f}"
            f"{'–' if face is None else f'{face:.2f}':>10}  "
            f"{theory.param_names[p]} at {np.round(other[i].numpy(), 2).tolist()}"
        )
    payload = {
        "theory": theory.name,
        "reference_counts": counts,
        "design": design,
        "rows": rows,
        "environment": environment(),
    }
    results.publish("shift_map", payload, args.out, args.results)


if __name__ == "__main__":
    main()
