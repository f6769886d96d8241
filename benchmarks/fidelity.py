"""The headline fidelity over the prior box: every shipped checkpoint at every TEST θ.

    python benchmarks/fidelity.py [NAME ...] [--theory proxy] [--qmc-events 1048576]
        [--noise-points 4] [--noise-repeats 3] [--check-points 5] [--check-events 10000000]
        [--out runs/benchmarks/fidelity.json] [--results docs/results] [--cards checkpoints]
        [--merge]

The test θ are the theory's recorded test set (`surrogates.metrics.test_theta`: scrambled Sobol'
points filling the box and points within 2% of a face, from a stream no choice reads). Per
checkpoint of ``--theory`` (all shipped ones by default), in σ_CRB of the theory's reference data
(the proxy's case A):

* the noise-free θ shift at every test θ: with a density (flows, VAIM) the exact theory fitted
  to the surrogate's expected histogram (`theta_shift_expected`); without one (GAN, VAE) the same
  fit of its histogram of ``--qmc-events`` events per channel drawn with scrambled Sobol' normals
  (quasi-Monte Carlo: the histogram's noise falls faster than 1/√n), whose remaining noise is
  MEASURED: the shift repeated with ``--noise-repeats`` other scrambles at ``--noise-points`` test
  θ, the standard deviation per parameter;
* per parameter the max, 95th percentile and median of |shift| over the test set;
* the cross-check: the sampled `theta_shift` (``--check-events`` ordinary random events per
  channel, noise ≈ √(N_ref / n)) at ``--check-points`` test θ spread through the set, against the
  noise-free shift at the same θ: the rms of their difference beside that noise.

With ``--merge`` the named checkpoints' rows replace theirs in an existing ``--out`` (the others
are kept as measured, each row with its own date, commit and command): one retrained checkpoint
is measured again without re-running the slow GAN and VAE rows.

Writes the JSON after each checkpoint, then (``--results``) ``docs/results/fidelity.md`` and
(``--cards``) a ``test_set`` block in each card ``NAME.json``: the numbers, the test set's id and
sha256, the method and the command.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import sys
import time
from pathlib import Path

import results  # benchmarks/results.py (the docs/results pages); found before this folder leaves sys.path

# benchmarks/surrogates.py is named like the package: keep this folder off the import path
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy import special, stats  # noqa: E402

from surrogates.errors import InputError  # noqa: E402
from surrogates.metrics import (  # noqa: E402
    counts_label,
    reference_counts,
    shift_summary,
    test_set_record,
    theta_shift,
    theta_shift_expected,
    theta_shift_of_events,
)
from surrogates.runs import cli_errors, environment, write_json  # noqa: E402
from surrogates.theory import get_theory  # noqa: E402
from surrogates.zoo import CHECKPOINTS, list_checkpoints, load_surrogate  # noqa: E402

QMC_SEED = 424_242  # the scrambles of the quasi-Monte Carlo histograms (not a θ stream)


def qmc_events(model, theta: torch.Tensor, n: int, seed: list[int]) -> list[np.ndarray]:  # noqa: ANN001
    """n events per channel at θ (1, P) of a surrogate with `unit_from_normals` (GAN, VAE): its
    standard normals from a scrambled Sobol' sequence (one scramble per channel), not random."""
    m = int(np.ceil(np.log2(n)))
    dtype = model.prior_low.dtype
    out = []
    with torch.no_grad():
        t = model.check_theta(theta).to(dtype)
        for c in range(model.n_channels):
            rng = np.random.default_rng(np.random.SeedSequence([QMC_SEED, *seed, c]))
            u = stats.qmc.Sobol(model.noise_dim, scramble=True, seed=rng).random_base2(m)[:n]
            z = torch.as_tensor(special.ndtri(np.clip(u, 1e-12, 1 - 1e-12)), dtype=dtype)
            parts = []
            for k in range(0, n, 1 << 17):
                y = model.unit_from_normals(t, c, z[None, k : k + (1 << 17)])
                x = model.from_unit(y)[0]
                parts.append((x[:, 0] if x.shape[-1] == 1 else x).float().numpy())
            out.append(np.concatenate(parts))
    return out


def qmc_shift(model, theory, theta: torch.Tensor, n: int, seed: list[int], counts) -> np.ndarray:  # noqa: ANN001
    """The exact theory's fit of the surrogate's quasi-Monte Carlo histogram at θ (1, P)."""
    events = qmc_events(model, theta, n, seed)
    with torch.no_grad():
        norms = model.norms(theta.to(model.prior_low.dtype)).double()[0].numpy()
    return theta_shift_of_events(theory, theta, events, norms, counts)


def summary(shifts: np.ndarray, names: list[str], theta: np.ndarray) -> dict:
    """`shift_summary` of the test-set shifts, with the worst point and parameter named."""
    i, p = np.unravel_index(np.argmax(np.abs(shifts)), shifts.shape)
    worst = {"point": int(i), "parameter": names[p], "theta": theta[i].tolist()}
    return {**shift_summary(shifts), "worst": worst, "param_names": names}


def measure(name: str, theory, theta: torch.Tensor, counts, args) -> dict:  # noqa: ANN001
    """One checkpoint's row: the noise-free shift at every test θ, its summary and noise."""
    model = load_surrogate(name, theory=theory.name).eval()
    t0 = time.perf_counter()
    n_pts = len(theta)
    if model.has_density:
        model = model.double()
        method = "expected histogram (theta_shift_expected): no sampling noise"
    elif hasattr(model, "unit_from_normals"):
        method = f"quasi-Monte Carlo histogram, {args.qmc_events} events per channel"
    else:
        raise InputError(f"'{name}' has neither a density nor unit_from_normals")

    def shift(b: int, rep: int = 0) -> np.ndarray:
        """The noise-free shift at test θ b (``rep``: another scramble of the QMC normals)."""
        if model.has_density:
            return theta_shift_expected(model, theory, theta[b : b + 1], counts=counts)
        return qmc_shift(model, theory, theta[b : b + 1], args.qmc_events, [b, rep], counts)

    shifts = np.stack([shift(b) for b in range(n_pts)])
    print(f"  {name}: {n_pts} test θ in {time.perf_counter() - t0:.0f} s", flush=True)
    noise = None
    if not model.has_density and args.noise_repeats > 0:
        pts = list(range(min(args.noise_points, n_pts)))
        reps = np.stack(
            [
                np.stack([shifts[b]] + [shift(b, r) for r in range(1, args.noise_repeats + 1)])
                for b in pts
            ]
        )  # (points, repeats + 1, P)
        sd = reps.std(axis=1, ddof=1)  # per point and parameter
        noise = {
            "points": pts,
            "scrambles": args.noise_repeats + 1,
            "sd_per_param": np.sqrt((sd**2).mean(0)).tolist(),
            "sd": float(np.sqrt((sd**2).mean())),
            "sd_max": float(sd.max()),
            "shifts": reps.tolist(),
        }
        print(f"  {name}: noise sd {noise['sd']:.3f} (max {noise['sd_max']:.3f})", flush=True)
    card = json.loads((CHECKPOINTS / f"{name}.json").read_text())
    return {
        "surrogate": name,
        "family": card.get("family"),
        "backend": card.get("backend"),
        "method": method,
        "shifts": shifts.tolist(),
        **summary(shifts, list(theory.param_names), theta.numpy()),
        "noise": noise,
        "cross_check": None,
        "seconds": time.perf_counter() - t0,
    }


def cross_check(row: dict, theory, theta: torch.Tensor, counts, args) -> dict:  # noqa: ANN001
    """The sampled `theta_shift` (ordinary random events, float32 sampling) at ``--check-points``
    test θ spread through the set, against the row's noise-free shift at the same θ."""
    model = load_surrogate(row["surrogate"], theory=theory.name).eval()
    t0 = time.perf_counter()
    n_pts = len(theta)
    idx = np.unique(np.linspace(0, n_pts - 1, args.check_points).round().astype(int))
    sampled = np.stack(
        [
            theta_shift(
                model, theory, theta[b : b + 1], args.check_events, seed=int(b), counts=counts
            )
            for b in idx
        ]
    )
    free = np.asarray(row["shifts"])[idx]
    diff = sampled - free
    expected = float(np.sqrt(counts.max() / args.check_events))
    check = {
        "points": idx.tolist(),
        "events": args.check_events,
        "sampled": sampled.tolist(),
        "noise_free": free.tolist(),
        "rms_difference": float(np.sqrt((diff**2).mean())),
        "max_difference": float(np.abs(diff).max()),
        "expected_noise": expected,
        "seconds": time.perf_counter() - t0,
    }
    print(
        f"  {row['surrogate']}: {args.check_events:.0e}-event check rms diff "
        f"{check['rms_difference']:.3f}, max {check['max_difference']:.3f} (expected noise "
        f"≈ {expected:.3f}) in {check['seconds']:.0f} s",
        flush=True,
    )
    return check


def card_block(row: dict, record: dict, unit: str, command: str, commit: str | None) -> dict:
    """The ``test_set`` block a card gets: numbers per parameter, the set's id, the command."""
    return {
        "set": "test",
        "id": record["id"],
        "sha256": record["sha256"],
        "points": len(record["theta"]),
        "unit": unit,
        "method": row["method"],
        **{k: row[k] for k in ("max", "p95", "median", "max_all", "p95_all", "median_all")},
        "param_names": row["param_names"],
        "worst": row["worst"],
        "noise_sd": (row["noise"] or {}).get("sd"),
        "cross_check_rms": (row["cross_check"] or {}).get("rms_difference"),
        "command": command,
        "measured": datetime.date.today().isoformat(),
        "commit": commit,
    }


def merged_rows(args, record: dict) -> list[dict]:  # noqa: ANN001
    """The rows of the existing ``--out`` in their order, each stamped with the run it came from
    (a named checkpoint's row stays until its new one replaces it); refused unless that file
    measured the same theory and test set."""
    path = Path(args.out)
    if not path.is_file():
        raise InputError(f"--merge: {path} does not exist; run without --merge first")
    try:
        old = json.loads(path.read_text())
        rows, set_sha = old["rows"], old["test_set"]["sha256"]
    except (ValueError, KeyError, TypeError):
        raise InputError(f"--merge: {path} is not a fidelity.py result; give its JSON") from None
    if set_sha != record["sha256"] or old.get("theory") != record["theory"]:
        raise InputError(f"--merge: {path} measured another theory or test set; run without --merge")
    env = old.get("environment") or {}
    first = {
        "commit": env.get("git_commit"),
        "command": "python " + shlex.join(env.get("argv") or ["benchmarks/fidelity.py"]),
    }

    def measured(name: str) -> str | None:  # the date its card's block records
        card = Path(args.cards or CHECKPOINTS) / f"{name}.json"
        block = json.loads(card.read_text()).get("test_set") if card.is_file() else None
        return (block or {}).get("measured")

    return [{"measured": measured(r["surrogate"]), **first, **r} for r in rows]


@cli_errors
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("surrogates", nargs="*", help="zoo names (default: all of --theory)")
    parser.add_argument("--theory", default="proxy")
    parser.add_argument("--qmc-events", type=int, default=1 << 20)
    parser.add_argument("--noise-points", type=int, default=4)
    parser.add_argument("--noise-repeats", type=int, default=3)
    parser.add_argument("--check-points", type=int, default=5)
    parser.add_argument("--check-events", type=int, default=10_000_000)
    parser.add_argument("--out", default="runs/benchmarks/fidelity.json")
    parser.add_argument("--results", default=None, help="write the page into this folder")
    parser.add_argument("--cards", default=None, help="write each card's test_set block here")
    parser.add_argument(
        "--merge",
        action="store_true",
        help="replace the named checkpoints' rows in the existing --out JSON, keep the others",
    )
    args = parser.parse_args()
    for key in ("qmc_events", "noise_points", "noise_repeats", "check_points", "check_events"):
        if getattr(args, key) < 0 or (key == "qmc_events" and args.qmc_events < 1):
            raise InputError(f"--{key.replace('_', '-')} must be a positive integer")
    torch.set_num_threads(1)
    theory = get_theory(args.theory)
    record = test_set_record(theory)  # before anything is written: a theory with a test set
    theta = torch.as_tensor(record["theta"], dtype=torch.float64)
    counts = reference_counts(theory)
    names = args.surrogates or list_checkpoints(theory=theory.name)
    env = environment()
    command = "python " + shlex.join(["benchmarks/fidelity.py", *sys.argv[1:]])
    rows = merged_rows(args, record) if args.merge else []
    payload = {
        "theory": theory.name,
        "test_set": {k: record[k] for k in ("id", "sha256", "n_fill", "n_near_face", "stream")},
        "points": len(theta),
        "reference_counts": counts,
        "unit": counts_label(counts),
        "qmc_events": args.qmc_events,
        "rows": [],
        "environment": env,
    }
    print(f"{len(theta)} test θ ({record['id']}); θ shift in {counts_label(counts)}")

    def write_cards() -> None:
        if args.cards:
            for r in payload["rows"]:
                if r["surrogate"] not in names:  # a merged run leaves the kept rows' cards
                    continue
                path = Path(args.cards) / f"{r['surrogate']}.json"
                card = json.loads(path.read_text())
                card["test_set"] = card_block(r, record, payload["unit"], command, env.get("git_commit"))  # fmt: skip
                write_json(path, card)

    # first the headline for every checkpoint, then the (slower) sampled cross-checks
    payload["rows"] = rows
    stamp = {"measured": datetime.date.today().isoformat(), "commit": env.get("git_commit")}
    for name in names:
        r = {**measure(name, theory, theta, counts, args), **stamp, "command": command}
        order = [old["surrogate"] for old in rows]
        if name in order:  # a merged row takes its old one's place
            rows[order.index(name)] = r
        else:
            rows.append(r)
        write_json(args.out, payload)  # after each checkpoint: a cut-short run keeps its rows
        write_cards()
        print(
            f"{name:<16} max {r['max_all']:.2f}  p95 {r['p95_all']:.2f}  median {r['median_all']:.2f}"
        )
    if args.check_points > 0 and args.check_events > 0:
        for r in payload["rows"]:
            if r["surrogate"] in names:  # a merged run's kept rows keep their own check
                r["cross_check"] = cross_check(r, theory, theta, counts, args)
            write_json(args.out, payload)
            write_cards()
    results.publish("fidelity", payload, args.out, args.results)


if __name__ == "__main__":
    main()
