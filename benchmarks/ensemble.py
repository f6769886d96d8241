"""An ensemble against its members: held-out fidelity (θ shift) and the members' spread.

    python benchmarks/ensemble.py [--members flow-zuko flow-normflows flow-nflows]
        [--held-out 5] [--events 2000000] [--out runs/benchmarks/ensemble.json]

At the held-out θ of the zoo's cards (a Sobol' set inside the prior box, never trained on), every
member and the ensemble (the equal-weight mixture) is scored the same way as in
`surrogates.metrics`: the exact theory's maximum-likelihood fit to ``--events`` surrogate events
per channel, shift (θ_fit − θ)/σ_CRB(case A), max |shift| per parameter over the points. Beside
it, `Ensemble.spread`: the members' disagreement on each channel's mean x (epistemic) against the
sampling error of that mean (aleatoric), and on the norms. The statistical noise of the shift is
about √(150000 / events) σ_CRB: 0.27 at 2·10^6 events.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import results  # benchmarks/results.py (the docs/results pages); found before this folder leaves sys.path

sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import torch  # noqa: E402

from surrogates.ensemble import Ensemble  # noqa: E402
from surrogates.metrics import held_out_theta, theta_shift  # noqa: E402
from surrogates.runs import environment, write_json  # noqa: E402
from surrogates.theory import get_theory  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--members", nargs="+", default=["flow-zuko", "flow-normflows", "flow-nflows"]
    )
    parser.add_argument("--held-out", type=int, default=5)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--seed", type=int, default=1_000_004, help="the cards' held-out seed")
    parser.add_argument("--out", default="runs/benchmarks/ensemble.json")
    parser.add_argument(
        "--results", default=None, help="also write its page into this folder (docs/results)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    theory = get_theory("proxy")
    ens = Ensemble.load(args.members, theory="proxy")
    theta = held_out_theta(theory, args.held_out, args.seed)
    sources = {name: m for name, m in zip(ens.names, ens.members, strict=True)}
    sources[f"ensemble ({len(ens.names)})"] = ens
    rows = {}
    for name, src in sources.items():
        t0 = time.perf_counter()
        shifts = np.stack(
            [
                theta_shift(src, theory, theta[b : b + 1], args.events, seed=args.seed + b)
                for b in range(args.held_out)
            ]
        )
        rows[name] = {
            "theta_shift_crb": np.abs(shifts).max(0),
            "theta_shift_crb_all": shifts,
            "seconds": time.perf_counter() - t0,
        }
        print(
            f"  {name}: max |shift| {np.abs(shifts).max():.2f} σ_CRB ({rows[name]['seconds']:.0f} s)",
            flush=True,
        )
    spread = ens.spread(theta, n=200_000)
    names = theory.param_names
    print(
        f"\nθ shift |θ_fit − θ|/σ_CRB(A), max over {args.held_out} held-out θ, {args.events:.0e} events per channel"
    )
    print(f"{'source':>22} " + " ".join(f"{n:>6}" for n in names) + f" {'max':>6}")
    for name, r in rows.items():
        v = r["theta_shift_crb"]
        print(f"{name:>22} " + " ".join(f"{x:6.2f}" for x in v) + f" {v.max():6.2f}")
    print("\nmembers' spread at the held-out θ (max over points), per channel:")
    print(f"  mean x epistemic {np.round(spread['mean_x_epistemic'].max(0), 5).tolist()}, "
          f"aleatoric {np.round(spread['mean_x_aleatoric'].max(0), 5).tolist()}, "
          f"norm epistemic (relative) {np.round(spread['norm_epistemic'].max(0), 4).tolist()}")  # fmt: skip
    payload = {
        "members": ens.names,
        "held_out_theta": theta,
        "events": args.events,
        "rows": rows,
        "spread": spread,
        "environment": environment(),
    }
    write_json(args.out, payload)
    print(f"wrote {args.out}")
    if args.results:
        results.write_benchmark_page("ensemble", payload, args.results, args.out)


if __name__ == "__main__":
    main()
