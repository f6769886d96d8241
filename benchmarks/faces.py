"""The outer GAN at the faces of the prior box: its replicas' θ and σ against the face rule.

    python benchmarks/faces.py STUDY [--chosen-below K] [--name NAME] [--out FILE.json]
        [--results docs/results]

Reads a pseudo-experiment study (`python -m inverse.study` with the gan and posterior fitters)
and, for every experiment, the GAN's replicas (from the record, or from the fit's params.npz),
rebuilds its data (`inverse.study.pseudo_experiment`: the same seeds) and applies
`inverse.report.face_cut` exactly as `inverse.fit` does. Per parameter it compares two views of the
same fit with the truth and with the exact posterior: the replicas' own mean and spread, and the
face rule's (which differs only for parameters cut by the box). Experiments below
``--chosen-below`` are those the rule's constants were chosen on and are reported apart from the
others (held out). Writes the JSON (and the page with ``--results``) and prints the table.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import results  # benchmarks/results.py (the docs/results pages); found before this folder leaves sys.path

# benchmarks/surrogates.py is named like the package: keep this folder off the import path
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import numpy as np  # noqa: E402

from inverse.faces import reported_ranks  # noqa: E402
from inverse.report import Yardstick, face_cut, replica_estimate  # noqa: E402
from inverse.study import MANIFEST, _binomial, _sbc, pseudo_experiment, read_records  # noqa: E402
from surrogates.errors import InputError  # noqa: E402
from surrogates.runs import cli_errors, environment  # noqa: E402
from surrogates.theory import get_theory  # noqa: E402
from surrogates.theory.base import Module2  # noqa: E402


def _replicas(record: dict) -> np.ndarray | None:
    """The GAN's final θ per replica: from the record, else from its run's params.npz."""
    gan = record["fits"]["gan"]
    if gan.get("replicas") is not None:
        return np.asarray(gan["replicas"], dtype=float)
    path = Path(gan.get("run") or "") / "params.npz"
    if not path.is_file():
        return None
    with np.load(path) as f:
        return np.asarray(f["theta"], dtype=float)


def experiment_rows(
    study: Path, manifest: dict, theory: Module2, record: dict
) -> list[dict] | None:
    """One row per parameter of one experiment, or None when its replicas are not kept."""
    final = _replicas(record)
    if final is None:
        return None
    k = int(manifest["gan"]["data_replicas"])
    truths = manifest["truths"]
    truth, data = pseudo_experiment(
        theory, manifest["case"], record["i"], manifest["seed"],
        np.asarray(truths) if isinstance(truths, list) else truths,
    )  # fmt: skip
    if not np.allclose(truth, record["truth"]) or list(data.counts) != list(record["counts"]):
        raise InputError(f"{study}: experiment {record['i']}'s data is not rebuilt from its seeds")
    mean, std, _ = replica_estimate(final, k)
    boot = final[k:]
    yardstick = Yardstick(theory, data)
    rule_mean, rule_std, cut = face_cut(theory, yardstick, boot, mean, std)
    low, high = np.asarray(theory.prior_low), np.asarray(theory.prior_high)
    ranks = reported_ranks(boot, truth, mean, std, rule_mean, rule_std, cut, low, high)
    post = record["fits"]["posterior"]
    first = next(iter(cut.values()), {})  # every cut entry shares the method and its record
    rows = []
    for j, name in enumerate(theory.param_names):
        found = cut.get(j)
        rows.append({
            "i": record["i"], "param": name, "truth": float(truth[j]),
            "post_mean": post["mean"][j], "post_std": post["std"][j],
            "replicas_mean": float(mean[j]), "replicas_std": float(std[j]),
            "rule_mean": float(rule_mean[j]), "rule_std": float(rule_std[j]),
            "cut": found is not None, "experiment_cut": bool(cut),
            "face": found["face"] if found else None,
            # "piled" (the replicas at the face) or "reach" (θ within FACE_REACH σ of it)
            "trigger": found.get("trigger") if found else None,
            "fisher_sigma": found["fisher_sigma"] if found else None,
            "centre": found.get("centre") if found else None,
            # SBC ranks among L = len(boot): the replicas' and the rule's (reported_ranks)
            "rank_of": len(boot), "rank_replicas": ranks[0][j], "rank_rule": ranks[1][j],
            "rank_post": post.get("rank", [None] * len(truth))[j],
            "post_rank_of": post.get("rank_of"),
            "step": found.get("step") if found else None,
            # how the rule got its numbers (inverse.faces.cut_by_box): reweighted, box or face
            "method": first["method"] if cut else None,
            "reweighted": first.get("reweighted") if cut else None,
        })  # fmt: skip
    return rows


def sbc(rows: list[dict]) -> list[dict]:
    """Per parameter and view, the SBC χ² p-value of the truth's ranks over every experiment
    (`inverse.study._sbc`; the experiments of the most common rank count): the replicas', the
    face rule's and the exact posterior's. Meaningful only for truths drawn from the prior."""
    out = []
    for name in dict.fromkeys(r["param"] for r in rows):
        sel = [r for r in rows if r["param"] == name]
        row = {"param": name, "n": len(sel)}
        for view, of in (("replicas", "rank_of"), ("rule", "rank_of"), ("post", "post_rank_of")):
            pairs = [(r.get(of), r.get(f"rank_{view}")) for r in sel]
            pairs = [(o, k) for o, k in pairs if o is not None and k is not None]
            if not pairs:
                row[view] = None
                continue
            ofs = [o for o, _ in pairs]
            common = max(set(ofs), key=ofs.count)
            ranks = [k for o, k in pairs if o == common]
            row[view] = _sbc(np.array(ranks), common)["p_value"]
        out.append(row)
    return out


def view_stats(rows: list[dict], view: str) -> dict:
    """Coverage, pulls and the distance and width against the posterior of one view."""
    if not rows:
        return {"n": 0}
    t = np.array([r["truth"] for r in rows])
    m = np.array([r[f"{view}_mean"] for r in rows])
    s = np.array([r[f"{view}_std"] for r in rows])
    pm = np.array([r["post_mean"] for r in rows])
    ps = np.array([r["post_std"] for r in rows])
    coverage, coverage_err = _binomial(np.abs(m - t) <= s)
    pull = (m - t) / s
    ratio = s / ps
    return {
        "n": len(rows),
        "coverage": coverage,
        "coverage_err": coverage_err,
        "pull_rms": float(np.sqrt(np.mean(pull**2))),
        "pull_max": float(np.abs(pull).max()),
        "within_half_post": float(np.mean(np.abs(m - pm) <= 0.5 * ps)),
        "std_over_post_median": float(np.median(ratio)),
        "std_over_post_in_band": float(np.mean((ratio >= 0.8) & (ratio <= 1.25))),
    }


def summarize(rows: list[dict], chosen_below: int) -> list[dict]:
    """Per group (chosen on / held out) and subset (all parameters / those cut): each view."""
    out = []
    for group, keep in (
        (f"chosen on (experiments < {chosen_below})", lambda r: r["i"] < chosen_below),
        (f"held out (experiments ≥ {chosen_below})", lambda r: r["i"] >= chosen_below),
    ):
        part = [r for r in rows if keep(r)]
        subsets = (
            ("all parameters", part),
            ("in experiments with a cut", [r for r in part if r["experiment_cut"]]),
            ("parameters cut", [r for r in part if r["cut"]]),
        )
        for subset, sel in subsets:
            for view in ("replicas", "rule", "post"):
                out.append({"group": group, "subset": subset, "view": view,
                            "experiments": len({r["i"] for r in part}),
                            **view_stats(sel, view)})  # fmt: skip
    return out


def per_parameter(rows: list[dict]) -> list[dict]:
    """Over every experiment, per parameter: the face rule's and the exact posterior's coverage,
    rms pull and mean σ/σ_post (issue 25's targets are per parameter)."""
    out = []
    for name in dict.fromkeys(r["param"] for r in rows):
        sel = [r for r in rows if r["param"] == name]
        row = {"param": name, "n": len(sel)}
        for view in ("rule", "post"):
            s = np.array([r[f"{view}_std"] for r in sel])
            ratio = s / np.array([r["post_std"] for r in sel])
            row[view] = {**view_stats(sel, view), "std_over_post_mean": float(ratio.mean())}
        out.append(row)
    return out


@cli_errors
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("study", type=Path, help="a study folder (manifest.json, experiments/)")
    parser.add_argument("--chosen-below", type=int, default=0,
                        help="experiments below this index are those the rule was chosen on")  # fmt: skip
    parser.add_argument("--name", default="faces")
    parser.add_argument("--out", type=Path, default=Path("runs/benchmarks/faces.json"))
    parser.add_argument("--results", default=None, help="write the page into this folder")
    args = parser.parse_args(argv)
    manifest_path = args.study / MANIFEST
    if not manifest_path.is_file():
        raise InputError(f"{args.study}: no {MANIFEST}; give a study folder")
    manifest = json.loads(manifest_path.read_text())
    if "gan" not in manifest["fitters"] or "posterior" not in manifest["fitters"]:
        raise InputError(f"{args.study}: the study has no gan and posterior fits to compare")
    theory = get_theory(manifest["theory"])  # once: the theory of every experiment
    rows, missing = [], []
    for i, record in sorted(read_records(args.study).items()):
        fits = record["fits"]
        if "error" in fits.get("gan", {"error": 1}) or "error" in fits.get(
            "posterior", {"error": 1}
        ):
            continue
        got = experiment_rows(args.study, manifest, theory, record)
        if got is None:
            missing.append(i)
        else:
            rows += got
    stats = summarize(rows, args.chosen_below)
    payload = {
        "study": str(args.study), "case": manifest["case"], "truths": manifest["truths"],
        "chosen_below": args.chosen_below, "experiments": len({r["i"] for r in rows}),
        "missing_replicas": missing, "summary": stats,
        # SBC needs truths drawn from the prior: near-face or fixed truths are not a check of it
        "sbc": sbc(rows) if manifest["truths"] == "prior" else None,
        "per_parameter": per_parameter(rows), "rows": rows,
        "environment": environment(), "args": {k: str(v) for k, v in vars(args).items()},
    }  # fmt: skip
    for s in stats:
        if s["n"]:
            print(f"{s['group']:32s} {s['subset']:26s} {s['view']:9s} n {s['n']:4d} "
                  f"cover {s['coverage']:.2f} pull rms {s['pull_rms']:.2f} "
                  f"within 0.5σ_post {s['within_half_post']:.2f} "
                  f"σ/σ_post {s['std_over_post_median']:.2f}")  # fmt: skip
    for r in payload["per_parameter"]:
        print(f"{r['param']:6s} " + " ".join(
            f"{v}: cover {r[v]['coverage']:.3f} pull rms {r[v]['pull_rms']:.2f} "
            f"σ/σ_post {r[v]['std_over_post_mean']:.2f}" for v in ("rule", "post")))  # fmt: skip
    for r in payload["sbc"] or []:
        print(f"SBC p-value {r['param']:6s} " + " ".join(
            f"{v} {r[v]:.2f}" if r[v] is not None else f"{v} -" for v in ("replicas", "rule", "post")))  # fmt: skip
    results.publish(args.name, payload, args.out, args.results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
