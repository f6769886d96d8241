"""`python -m surrogates.dashboard [RUNS_DIR ...] [--zoo] --out DIR`: a local comparison page.

Builds one self-contained static HTML file, ``DIR/index.html`` (no server, no internet: styles,
the table-sorting script and every plot are inline), from the runs found under the given folders
(and, with ``--zoo``, the checkpoints shipped with the package):

* a sortable, filterable table of all runs with their key metrics;
* training curves overlaid per surrogate family (and per theory for outer-GAN runs);
* for surrogate runs, the C2ST / W1 / norm-error / speed table, the induced θ shift per
  parameter, and the held-out event histograms, surrogate vs exact;
* for inverse runs, the pull table (truth, θ ± σ, σ_CRB, pull, MLE, (GAN − MLE)/σ_CRB) and the
  parameter traces with truth and σ_CRB bands.

A run is whatever a fit left behind, read from the best source it has: a run directory of this
package (``metrics.json``, ``config.yaml``, ``logs/metrics.csv``, PNG plots), else an offline wandb
run (``wandb/offline-run-*``: config, summary, history and images from its ``.wandb`` file), else
a Lightning CSV log (``metrics.csv`` beside ``hparams.yaml``). A checkpoint's card ``NAME.json``
beside ``NAME.ckpt`` (what ``python -m surrogates.zoo export`` writes) is a run too: its family,
theory, training data and held-out metrics fill the same tables, without curves or plots.

    python -m surrogates.dashboard runs/ --out runs/dashboard
    python -m surrogates.dashboard --zoo --out docs/dashboard --screenshot docs/dashboard.png
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from surrogates.errors import InputError
from surrogates.resources import checkpoint_dir
from surrogates.runs import cli_errors
from surrogates.validation import ArgumentParser

__all__ = ["Run", "find_runs", "load_run", "build_dashboard", "screenshot", "main"]

# Curves drawn per kind of run: (CSV/history column, x axis)
CURVES = {
    "surrogate": [("train_loss", "step"), ("val_loss", "epoch")],
    "inverse": [("g_shape", "step"), ("d_loss", "step"), ("norm_chi2", "step")],
}
IMAGES = {"surrogate": ["heldout"], "inverse": ["traces", "curves", "events"]}
# never runs: (a wandb run's own media/, files/, tmp/ are not entered: its folder is a run)
_SKIP = {"latest-run", "checkpoints", "__pycache__", ".git", ".venv", "node_modules"}
CARD = "zoo card"  # the origin of a run read from a checkpoint's card


@dataclass
class Run:
    """One run, whatever it was read from (``origin``: run dir, wandb offline, CSV log or zoo
    card; ``path`` is the run's folder, or the card's file)."""

    name: str
    path: Path
    origin: str
    kind: str  # surrogate | inverse
    config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    images: dict[str, Path] = field(default_factory=dict)

    @property
    def family(self) -> str:
        m, c = self.metrics, self.config
        if self.kind == "inverse":
            return "outer-gan"
        return str(m.get("model") or c.get("family") or c.get("group") or "surrogate")

    @property
    def backend(self) -> str:
        model = self.config.get("model")
        from_model = model.get("backend") if isinstance(model, dict) else None
        return str(self.metrics.get("backend") or self.config.get("backend") or from_model or "")

    @property
    def theory(self) -> str:
        return str(self.metrics.get("theory") or self.config.get("theory") or "")

    @property
    def group(self) -> str:
        """Whose curves are overlaid: the surrogate family, or outer-GAN runs per theory."""
        if self.kind == "inverse":
            theory = self.metrics.get("theory") or self.config.get("theory")
            return f"outer GAN · {theory}" if theory else "outer GAN"
        return self.family


# --- finding and reading runs ----------------------------------------------------------------


def find_runs(roots: Sequence[str | Path]) -> list[Path]:
    """Runs under ``roots``: run folders, and the card files of exported checkpoints.

    A run directory claims its subtree (its own wandb and CSV logs are read through it);
    elsewhere offline wandb runs and CSV logs count on their own, and so does each card
    ``NAME.json`` that has its ``NAME.ckpt`` beside it (as `surrogates.zoo.list_checkpoints`
    counts them; other JSON files are not cards)."""
    found: list[Path] = []
    for root in map(Path, roots):
        if not root.is_dir():
            raise InputError(f"runs folder {root} does not exist; give the folder fits wrote to")
        for folder, dirs, files in os.walk(root):
            here = Path(folder)
            dirs[:] = sorted(d for d in dirs if d not in _SKIP)
            running = "config.yaml" in files and (here / "logs" / "metrics.csv").is_file()
            if "metrics.json" in files or running or any(f.endswith(".wandb") for f in files):
                found.append(here)
                dirs[:] = []
            else:
                if "metrics.csv" in files:
                    found.append(here)
                cards = (f for f in sorted(files) if f.endswith(".json"))
                found += [here / f for f in cards if f.removesuffix(".json") + ".ckpt" in files]
    return found


def _read_csv(path: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Lightning's CSV log → {column: (x, y)} with x the step (and ``column@epoch`` by epoch)."""
    import csv

    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return _columns(rows, step_key="step", epoch_key="epoch")


def _columns(rows: list[dict], step_key: str, epoch_key: str) -> dict:
    def num(v: object) -> float:
        try:
            return float(v)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return math.nan

    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    keys = sorted({k for r in rows for k in r} - {step_key, epoch_key})
    for key in keys:
        pts = [(num(r.get(step_key)), num(r.get(epoch_key)), num(r.get(key))) for r in rows]
        pts = [p for p in pts if math.isfinite(p[2])]
        if pts:
            a = np.asarray(pts)
            out[key] = (a[:, 0], a[:, 2])
            out[key + "@epoch"] = (a[:, 1], a[:, 2])
    return out


def _kind(metrics: dict, config: dict, columns: Sequence[str] = ()) -> str:
    if "params_mean" in metrics or config.get("job_type") == "outer-gan":
        return "inverse"
    if any(str(c).startswith("theta/") for c in columns) and "model" not in metrics:
        return "inverse"
    return "surrogate"


def _label(path: Path, root: Path) -> str:
    """A run's name in the tables: its folder relative to the folder given on the command line."""
    rel = path.relative_to(root).as_posix() if path != root else "."
    return path.resolve().name if rel == "." else rel


def load_run(path: Path, root: Path) -> Run:
    """Read one run found by `find_runs` (a folder, or a checkpoint's card)."""
    if path.is_file() and path.suffix == ".json":
        return load_card(path)
    finished = (path / "metrics.json").is_file()
    if finished or (path / "config.yaml").is_file() and (path / "logs" / "metrics.csv").is_file():
        metrics = {}
        if finished:
            try:
                metrics = json.loads((path / "metrics.json").read_text())
            except json.JSONDecodeError as err:
                raise InputError(
                    f"{path / 'metrics.json'} is not valid JSON ({err}); rerun that fit"
                ) from None
            if not isinstance(metrics, dict):
                raise InputError(
                    f"{path / 'metrics.json'} holds a JSON {type(metrics).__name__}, not the "
                    "object a fit writes; rerun that fit or move the file away"
                )
        config = {}
        if (path / "config.yaml").is_file():
            config = yaml.safe_load((path / "config.yaml").read_text()) or {}
            if not isinstance(config, dict):
                raise InputError(
                    f"{path / 'config.yaml'} is not a mapping of settings; rerun that fit or move "
                    "the file away"
                )
        curves = {}
        csv_path = path / "logs" / "metrics.csv"
        if csv_path.is_file():
            curves = _read_csv(csv_path)
        elif wb := sorted(path.glob("wandb/offline-run-*")):
            curves = _wandb_curves(_wandb(wb[-1]).history)
        images = {p.stem: p for p in sorted(path.glob("*.png"))}
        if not finished:  # still training: the last logged values stand in for metrics.json
            metrics = _last_values(curves)
        kind = _kind(metrics, config, list(curves))
        origin = "run dir" if finished else "run dir (running)"
        return Run(_label(path, root), path, origin, kind, config, metrics, curves, images)
    if any(path.glob("*.wandb")):
        wb = _wandb(path)
        owner = path.parent.parent if path.parent.name == "wandb" else path.parent
        name = wb.name if owner == root or not owner.is_relative_to(root) else _label(owner, root)
        config = dict(wb.config) | {"group": wb.group, "job_type": wb.job_type}
        metrics = {k: v for k, v in wb.summary.items() if not isinstance(v, dict) or k == "mle"}
        return Run(
            f"wandb {wb.run_id}" if name == wb.run_id else f"{name} (wandb {wb.run_id})",
            path,
            "wandb offline",
            _kind(metrics, config),
            config,
            metrics,
            _wandb_curves(wb.history),
            wb.images,
        )
    curves = _read_csv(path / "metrics.csv")
    config = {}
    if (path / "hparams.yaml").is_file():
        config = yaml.safe_load((path / "hparams.yaml").read_text()) or {}
    owner = path.parent if path.name == "logs" and path != root else path
    metrics = _last_values(curves)
    name = f"{_label(owner, root)} (csv)"
    return Run(name, path, "CSV log", _kind(metrics, config, list(curves)), config, metrics, curves)


def load_card(path: Path) -> Run:
    """A checkpoint's card ``NAME.json`` as a surrogate run: what its fit measured (``metrics``),
    the theory's parameter and channel names, and the training data and provenance (``config``).
    A card that is not valid JSON, or lacks its metrics or family, is an InputError."""
    from surrogates.zoo import card_of  # the torch-importing layer, only when cards are read

    card = card_of(path.with_suffix(".ckpt"))
    redo = "re-export it (python -m surrogates.zoo export RUN_DIR --name NAME)"
    if not isinstance(card, dict) or not isinstance(card.get("metrics"), dict):
        raise InputError(f"card {path} has no 'metrics' object; {redo}")
    metrics = card["metrics"]
    family = card.get("family") or metrics.get("model")
    if not family:
        raise InputError(f"card {path} names no 'family'; {redo}")
    theory = card.get("theory") if isinstance(card.get("theory"), dict) else {}
    data = card.get("training_data") if isinstance(card.get("training_data"), dict) else {}
    config = {
        "family": family,
        "backend": card.get("backend") or metrics.get("backend") or "",
        "theory": theory.get("theory") or metrics.get("theory") or "",
        "param_names": theory.get("param_names"),
        "channels": theory.get("channels"),
        "data": data,
        "seed": data.get("seed"),
        "version": card.get("version"),
        "exported": card.get("exported"),
        "sha256": card.get("sha256"),
        "size_bytes": card.get("size_bytes"),
        "test_set": card.get("test_set") if isinstance(card.get("test_set"), dict) else None,
    }
    name = str(card.get("name") or path.stem)
    return Run(name, path, CARD, "surrogate", config, {"model": family} | metrics)


def _last_values(curves: dict) -> dict:
    """The last logged value of every column, and the last step."""
    metrics = {k: float(y[-1]) for k, (_, y) in curves.items() if not k.endswith("@epoch")}
    steps = [x for k, (x, _) in curves.items() if not k.endswith("@epoch")]
    if steps:
        metrics["steps"] = float(np.nanmax(np.concatenate(steps)))
    return metrics


def _wandb(path: Path):  # noqa: ANN202 - WandbRun
    from surrogates.tracking import read_wandb_run

    try:
        return read_wandb_run(path)
    except (OSError, ValueError) as err:
        raise InputError(f"cannot read the wandb run {path}: {err}") from None


def _wandb_curves(history: list[dict]) -> dict:
    rows = [{k: v for k, v in r.items() if not isinstance(v, dict)} for r in history]
    return _columns(rows, step_key="trainer/global_step", epoch_key="epoch")


# --- numbers for the tables ------------------------------------------------------------------


def _vec(metrics: dict, key: str) -> np.ndarray | None:
    v = metrics.get(key)
    if isinstance(v, dict):
        v = v.get("params")
    try:
        a = np.asarray(v, dtype=float)
    except (TypeError, ValueError):
        return None
    return a if a.ndim == 1 and a.size else None


def _max_abs(metrics: dict, key: str) -> float | None:
    a = _vec(metrics, key)
    return None if a is None else float(np.max(np.abs(a)))


def _scalar(metrics: dict, *keys: str) -> float | None:
    for key in keys:
        v = metrics.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    return None


def _seed(run: Run) -> float | None:
    c = run.config
    return _scalar(c, "seed_everything", "seed")


def _names(run: Run, what: str, n: int) -> list[str]:
    """The run's parameter (``what="param_names"``) or channel (``"channels"``) names."""
    for names in (run.metrics.get(what), run.config.get(what)):
        if isinstance(names, list) and len(names) == n:
            return [str(x) for x in names]
    try:
        from surrogates.theory import installed_theory

        names = list(getattr(installed_theory(run.theory), what))
        if len(names) == n:
            return names
    except Exception:  # noqa: BLE001 - an unknown theory: number them
        pass
    return [f"{'θ' if what == 'param_names' else 'ch'}{i + 1}" for i in range(n)]


# --- HTML ------------------------------------------------------------------------------------


def _fmt(v: float | None, digits: int = 3) -> str:
    if v is None or not math.isfinite(v):
        return ""
    if v == int(v) and abs(v) < 1e7:
        return str(int(v))
    if 1e3 <= abs(v) < 1e6:
        return f"{v:.0f}"
    if abs(v) >= 1e6 or abs(v) < 1e-3:
        return f"{v:.{digits - 1}e}"
    return f"{v:.{digits}g}"


def _cell(v: object, digits: int = 3) -> str:
    if v is None:
        return '<td data-v=""></td>'
    if isinstance(v, (int, float, np.floating)) and not isinstance(v, bool):
        f = float(v)
        if math.isnan(f):
            return '<td data-v=""></td>'
        key = repr(f) if math.isfinite(f) else ("Infinity" if f > 0 else "-Infinity")
        shown = _fmt(f, digits) if math.isfinite(f) else str(f)
        return f'<td class="num" data-v="{key}">{html.escape(shown)}</td>'
    return f"<td>{html.escape(str(v))}</td>"


def _table(columns: list[str], rows: list[list], cls: str = "sortable", tid: str = "") -> str:
    head = "".join(f'<th title="click to sort">{html.escape(c)}</th>' for c in columns)
    body = "\n".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    ident = f' id="{tid}"' if tid else ""
    return f'<div class="wide"><table class="{cls}"{ident}><thead><tr>{head}</tr></thead><tbody>\n{body}\n</tbody></table></div>'


def _png_bytes(raw: bytes) -> bytes:
    """A plot's PNG with a 128-colour palette (about 3× smaller, the same to the eye)."""
    try:
        from PIL import Image  # Pillow comes with matplotlib

        image = Image.open(io.BytesIO(raw)).convert("RGB")
        small = image.quantize(colors=128, method=Image.Quantize.MEDIANCUT)
        buf = io.BytesIO()
        small.save(buf, format="PNG", optimize=True)
        return buf.getvalue() if buf.tell() < len(raw) else raw
    except Exception:  # noqa: BLE001 - an unreadable image is embedded as it is
        return raw


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(_png_bytes(path.read_bytes())).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _figure_png(fig) -> str:  # noqa: ANN001 - matplotlib figure
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(_png_bytes(buf.getvalue())).decode()


def _curves_figure(group: str, runs: list[Run]) -> str | None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kind = runs[0].kind
    panels = [(key, xaxis) for key, xaxis in CURVES[kind] if any(key in r.curves for r in runs)]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 3.2), squeeze=False)
    for ax, (key, xaxis) in zip(axes[0], panels, strict=True):
        for run in runs:
            series = run.curves.get(key + "@epoch" if xaxis == "epoch" else key)
            if series is None:
                continue
            x, y = series
            ok = np.isfinite(x) & np.isfinite(y)
            ax.plot(x[ok], y[ok], lw=1.2, label=run.name)
        ax.set_xlabel(xaxis)
        ax.set_title(key, fontsize=10)
        if key == "norm_chi2" and all(
            (s[1][np.isfinite(s[1])] > 0).all() for r in runs if (s := r.curves.get(key))
        ):
            ax.set_yscale("log")
    axes[0][-1].legend(fontsize=7, loc="best")
    return (
        f"<h3>{html.escape(group)}</h3>"
        f'<img alt="training curves: {html.escape(group)}" src="{_figure_png(fig)}">'
    )


_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px;color:#1b1f24}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d0d7de}
h3{font-size:15px;margin:18px 0 6px} .meta{color:#57606a;font-size:12px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:12.5px}
th,td{border:1px solid #d0d7de;padding:3px 7px;text-align:left;white-space:nowrap}
th{background:#f6f8fa;cursor:pointer;user-select:none} td.num{text-align:right;font-variant-numeric:tabular-nums}
th[aria-sort=ascending]::after{content:" ▲"} th[aria-sort=descending]::after{content:" ▼"}
tbody tr:nth-child(even){background:#fafbfc} img{max-width:100%;border:1px solid #eaeef2;margin:4px 0}
.wide{overflow-x:auto} details{margin:6px 0} summary{cursor:pointer;font-weight:600} input{padding:4px 8px;margin:4px 0;width:320px}
"""

_SCRIPT = """
function cellValue(row, i) {
  const c = row.cells[i];
  if (!c) return "";
  if (c.dataset.v !== undefined) return c.dataset.v === "" ? "" : parseFloat(c.dataset.v);
  return c.textContent.trim();
}
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, i) {
    th.addEventListener("click", function () {
      const asc = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("th").forEach(function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", asc ? "ascending" : "descending");
      const body = table.tBodies[0];
      const rows = Array.from(body.rows);
      rows.sort(function (a, b) {
        const x = cellValue(a, i), y = cellValue(b, i);
        const bx = x === "" || Number.isNaN(x), by = y === "" || Number.isNaN(y);
        if (bx || by) return bx === by ? 0 : (bx ? 1 : -1);
        const d = (typeof x === "number" && typeof y === "number") ? x - y : String(x).localeCompare(String(y), undefined, {numeric: true});
        return asc ? d : -d;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
const filter = document.getElementById("filter");
if (filter) filter.addEventListener("input", function () {
  const q = filter.value.toLowerCase();
  document.querySelectorAll("#runs tbody tr").forEach(function (r) {
    r.style.display = r.textContent.toLowerCase().includes(q) ? "" : "none";
  });
});
"""


# a surrogate of a generator with no density: its fit's density-free report stands in (the θ shift
# in σ_CRB of the surrogate's own likelihood; C2ST, W1, KS and norms against generator events)
DENSITY_FREE = {
    "theta_shift_crb": "theta_shift_surrogate_crb",
    "theta_shift_events": "theta_shift_surrogate_events",
    "c2st_auc": "c2st_auc_generator",
    "w1": "w1_generator",
    "ks": "ks_generator",
    "norm_error": "norm_error_generator",
}


def with_density_free(metrics: dict) -> dict:
    """``metrics`` with the density-free keys under the density ones where those are empty."""
    return metrics | {
        key: metrics[free]
        for key, free in DENSITY_FREE.items()
        if metrics.get(key) is None and metrics.get(free) is not None
    }


def _runs_table(runs: list[Run]) -> str:
    columns = [
        "run", "kind", "family / source", "backend", "theory", "read from", "seed", "epochs",
        "steps", "seconds", "θ shift max (σ_CRB)", "C2ST AUC max", "norm error", "events/s",
        "max |pull|", "max |GAN−MLE| (σ_CRB)", "σ/σ_CRB min", "σ/σ_CRB max",
    ]  # fmt: skip
    rows = []
    for r in runs:
        m = with_density_free(r.metrics)
        ratio = _vec(m, "std_over_crb")
        source = str(m.get("source", "")).split("/")[-1] if r.kind == "inverse" else r.family
        rows.append(
            [
                r.name, r.kind, source, r.backend, r.theory,
                r.origin, _seed(r), _scalar(m, "epochs", "epoch"), _scalar(m, "steps", "trainer/global_step"),
                _scalar(m, "train_seconds", "seconds"), _max_abs(m, "theta_shift_crb"),
                None if _vec(m, "c2st_auc") is None else float(np.max(_vec(m, "c2st_auc"))),
                _scalar(m, "norm_error"), _scalar(m, "sample_events_per_second"),
                _max_abs(m, "pull"), _max_abs(m, "gan_minus_mle_crb"),
                None if ratio is None else float(ratio.min()), None if ratio is None else float(ratio.max()),
            ]
        )  # fmt: skip
    return _table(columns, rows, tid="runs")


def _by_theory(runs: list[Run]) -> list[tuple[str, list[Run]]]:
    """Runs grouped by theory (the proxy first): each theory has its own parameters and channels."""
    groups: dict[str, list[Run]] = {}
    for r in runs:
        groups.setdefault(r.theory, []).append(r)
    return sorted(groups.items(), key=lambda g: (g[0] != "proxy", g[0]))


def _fidelity_tables(runs: list[Run]) -> str:
    """Per theory: the C2ST / W1 / KS / norm-error / speed table and the θ-shift table."""
    runs = [r for r in runs if r.kind == "surrogate" and _vec(r.metrics, "c2st_auc") is not None]
    groups = _by_theory(runs)
    out = ""
    for theory, group in groups:
        label = f" · theory {theory}" if len(groups) > 1 and theory else ""
        out += _fidelity_table(group, label) + _shift_table(group, label)
    return out


def _test_set_table(runs: list[Run]) -> str:
    """The headline over the prior box, from the cards' ``test_set`` blocks (written by
    benchmarks/fidelity.py): max / 95th percentile / median of |θ shift| over the test θ, per
    checkpoint and per parameter."""
    tested = [r for r in runs if r.origin == CARD and r.config.get("test_set")]
    if not tested:
        return ""
    out = ""
    for theory, group in _by_theory(tested):
        first = group[0].config["test_set"]
        names = list(first.get("param_names") or [])
        columns = ["checkpoint", "family", "statistic", *names, "all", "method"]
        rows = []
        for r in group:
            t = r.config["test_set"]
            for stat in ("max", "p95", "median"):
                rows.append([r.name, r.family, stat, *t.get(stat, []), t.get(f"{stat}_all"),
                             t.get("method")])  # fmt: skip
        out += (
            f"<h3>Test set{html.escape(f' · theory {theory}' if theory else '')}: |θ_fit − θ| / "
            f"σ ({html.escape(str(first.get('unit')))}) over {first.get('points')} test θ "
            f"(<code>{html.escape(str(first.get('id')))}</code>, never used for a choice)</h3>"
            f'<p class="meta">{html.escape(str(first.get("command")))}</p>' + _table(columns, rows)
        )
    return out


def _fidelity_table(runs: list[Run], label: str) -> str:
    n_ch = max(len(_vec(r.metrics, "c2st_auc")) for r in runs)
    channels = _names(runs[0], "channels", n_ch)
    columns = ["run", "family", "backend"]
    for what in ("C2ST AUC", "± se", "W1", "KS"):
        columns += [f"{what} {c}" for c in channels]
    columns += ["norm error", "events/s", "train s", "epochs", "val loss"]
    rows = []
    for r in runs:
        m = r.metrics
        row = [r.name, r.family, r.backend]
        for key in ("c2st_auc", "c2st_auc_se", "w1", "ks"):
            v = _vec(m, key)
            row += [None if v is None or c >= v.size else float(v[c]) for c in range(n_ch)]
        row += [_scalar(m, "norm_error"), _scalar(m, "sample_events_per_second")]
        row += [_scalar(m, "train_seconds"), _scalar(m, "epochs"), _scalar(m, "val_loss")]
        rows.append(row)
    return f"<h3>Fidelity and speed at held-out (validation) θ{html.escape(label)}</h3>" + _table(
        columns, rows
    )


def _shift_table(runs: list[Run], label: str) -> str:
    runs = [r for r in runs if _vec(r.metrics, "theta_shift_crb") is not None]
    if not runs:
        return ""
    n = max(_vec(r.metrics, "theta_shift_crb").size for r in runs)
    names = _names(runs[0], "param_names", n)
    rows = []
    for r in runs:
        v = _vec(r.metrics, "theta_shift_crb")
        rows.append([r.name, r.family, _scalar(r.metrics, "theta_shift_events")]
                    + [float(v[i]) if i < v.size else None for i in range(n)])  # fmt: skip
    unit = runs[0].metrics.get("theta_shift_unit")
    unit = f"σ ({unit})" if unit else "σ_CRB (case A)"
    return (
        f"<h3>Induced parameter shift |θ_fit − θ| / {html.escape(unit)}, max over held-out θ"
        f"{html.escape(label)}</h3>" + _table(["run", "family", "events"] + names, rows)
    )


def _matrix(metrics: dict, key: str) -> np.ndarray | None:
    """A per-held-out-θ table of the metrics (rows × parameters), or None."""
    try:
        a = np.asarray(metrics.get(key), dtype=float)
    except (TypeError, ValueError):
        return None
    return a if a.ndim == 2 and a.size else None


def _held_out_table(run: Run) -> str:
    """The held-out θ a surrogate was scored at, each with the signed θ shift it gave."""
    theta = _matrix(run.metrics, "held_out_theta")
    if theta is None:
        return ""
    shift = _matrix(run.metrics, "theta_shift_crb_all")
    if shift is not None and shift.shape != theta.shape:
        shift = None
    names = _names(run, "param_names", theta.shape[1])
    columns = ["held-out θ", *names]
    if shift is not None:
        columns += [f"shift {n}" for n in names]
    rows = []
    for i, point in enumerate(theta):
        row = [i + 1, *map(float, point)]
        rows.append(row + ([] if shift is None else [*map(float, shift[i])]))
    return _table(columns, rows)


def _held_out_section(run: Run) -> str:
    """A folded section per surrogate: its held-out θ table and held-out histograms."""
    table = _held_out_table(run)
    imgs = [_img(p, f"{run.name}: {k}") for k in IMAGES["surrogate"] if (p := run.images.get(k))]
    if not table and not imgs:
        return ""
    what = []
    if table:
        shifts = _matrix(run.metrics, "theta_shift_crb_all") is not None
        what.append("held-out θ" + (" and the θ shift (in σ) at each" if shifts else ""))
    if imgs:
        what.append("held-out events, surrogate vs exact")
    note = ""
    if run.origin == CARD:
        note = (
            '<p class="meta">No held-out histograms: a card keeps the numbers, not the plots '
            "(heldout.png stays in the run folder that made the checkpoint).</p>"
        )
    return (
        f"<details><summary>{html.escape(run.name)}: {html.escape('; '.join(what))}</summary>"
        f"{table}{note}{''.join(imgs)}</details>"
    )


def _cards_table(runs: list[Run]) -> str:
    """Where each checkpoint read from a card came from: its training data and its export."""
    cards = [r for r in runs if r.origin == CARD]
    if not cards:
        return ""
    columns = [
        "checkpoint", "family", "backend", "theory", "training data", "training θ",
        "events per θ", "grid", "batch", "seed", "version", "exported", "MB", "sha256",
    ]  # fmt: skip
    rows = []
    for r in cards:
        c, data = r.config, r.config.get("data") or {}
        size = _scalar(c, "size_bytes")
        rows.append(
            [
                r.name, r.family, r.backend, r.theory, data.get("path", ""),
                _scalar(data, "n_params"), _scalar(data, "events_per_param"),
                _scalar(data, "grid_size"), _scalar(data, "batch_size"), _seed(r),
                c.get("version") or "", c.get("exported") or "",
                None if size is None else size / 1e6, str(c.get("sha256") or "")[:12],
            ]
        )  # fmt: skip
    return "<h3>Checkpoints: training data and export (from their cards)</h3>" + _table(
        columns, rows
    )


def _pull_table(run: Run) -> str:
    m = run.metrics
    mean = _vec(m, "params_mean")
    if mean is None:
        return ""
    names = _names(run, "param_names", mean.size)
    cols = {
        "truth": _vec(m, "params_true"),
        "θ": mean,
        "± σ": _vec(m, "params_std"),
        "σ_CRB": _vec(m, "crb_std"),
        "pull": _vec(m, "pull"),
        "σ/σ_CRB": _vec(m, "std_over_crb"),
        "MLE": _vec(m, "mle"),
        "(GAN−MLE)/σ_CRB": _vec(m, "gan_minus_mle_crb"),
    }
    cols = {k: v for k, v in cols.items() if v is not None and v.size == mean.size}
    rows = [[n] + [float(v[i]) for v in cols.values()] for i, n in enumerate(names)]
    return _table(["param", *cols], rows)


def _root_label(root: Path) -> str:
    """A folder as the page names it: the shipped zoo by that name, not by where it is installed."""
    if root.resolve() == checkpoint_dir().resolve():
        return "the shipped zoo (checkpoints/)"
    return str(root)


def _read_runs(roots: Sequence[Path]) -> tuple[list[Run], list[str]]:
    """Every run under ``roots``, and one line per run that could not be read (it is skipped:
    one broken run spoils no page)."""
    runs: list[Run] = []
    skipped: list[str] = []
    for root in roots:
        for path in find_runs([root]):
            try:
                runs.append(load_run(path, root))
            except (InputError, OSError, ValueError) as err:
                skipped.append(f"{path}: {err}")
                print(f"dashboard: skipped {path}: {err}", file=sys.stderr)
    return [r for r in runs if r.metrics or r.curves], skipped  # not a wandb run that failed


def _curves_section(runs: list[Run]) -> list[str]:
    """The overlaid training curves per group, and a line naming the runs that have none."""
    groups: dict[str, list[Run]] = {}
    for r in runs:
        groups.setdefault(r.group, []).append(r)
    figures = [f for g, rs in groups.items() if (f := _curves_figure(g, rs))]
    cards = [r.name for r in runs if not r.curves and r.origin == CARD]
    others = [r.name for r in runs if not r.curves and r.origin != CARD]
    notes = []
    if cards:
        notes.append(
            f"No curves for the checkpoints read from their cards ({', '.join(cards)}): a card "
            "keeps the final numbers, not the training log (logs/metrics.csv stays in the run "
            "folder that made it)."
        )
    if others:
        notes.append(f"No logged steps found for {', '.join(others)}.")
    if not figures and not notes:
        return []
    lines = [f'<p class="meta">{html.escape(n)}</p>' for n in notes]
    return ["<h2>Training curves</h2>", *figures, *lines]


def build_dashboard(
    roots: Sequence[str | Path], out: str | Path, title: str = "surrogate-zoo runs"
) -> Path:
    """Write ``out/index.html`` for the runs under ``roots``; returns its path.

    ``roots`` may hold run folders or zoo folders (``surrogates.resources.checkpoint_dir()`` is
    the shipped zoo). The page is the same for the same runs, but for its "built" time."""
    roots = [Path(r) for r in roots]
    runs, skipped = _read_runs(roots)
    if not runs:
        raise InputError(
            f"no runs under {', '.join(map(str, roots))} (looked for metrics.json, offline wandb "
            "runs, Lightning metrics.csv and checkpoint cards NAME.json beside NAME.ckpt); point "
            "at the --out folders of surrogates.fit or inverse.fit, or give --zoo"
        )
    runs.sort(key=lambda r: (r.kind, r.group, r.name))
    parts = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="meta">{len(runs)} runs from {html.escape(", ".join(map(_root_label, roots)))}'
        f" · built {time.strftime('%Y-%m-%d %H:%M')} by surrogates.dashboard · click a column to "
        "sort</p>",
    ]
    if skipped:
        parts.append(
            f'<p class="meta">skipped {len(skipped)}: {html.escape("; ".join(skipped))}</p>'
        )
    parts += [
        "<h2>All runs</h2>",
        '<input id="filter" type="search" placeholder="filter runs (family, backend, theory…)">',
        _runs_table(runs),
        *_curves_section(runs),
    ]
    surrogates = [r for r in runs if r.kind == "surrogate"]
    if surrogates:
        parts += ["<h2>Surrogates</h2>", _test_set_table(surrogates), _fidelity_tables(surrogates)]
        parts.append(_cards_table(surrogates))
        parts += [s for r in surrogates if (s := _held_out_section(r))]
    inverse = [r for r in runs if r.kind == "inverse"]
    if inverse:
        parts.append("<h2>Inverse runs (outer GAN)</h2>")
        for r in inverse:
            src = html.escape(str(r.metrics.get("source", "")))
            parts.append(f"<h3>{html.escape(r.name)} <span class=meta>source {src}</span></h3>")
            parts.append(_pull_table(r))
            imgs = [_img(p, f"{r.name}: {k}") for k in IMAGES["inverse"] if (p := r.images.get(k))]
            if imgs:
                parts.append(f"<details open><summary>plots</summary>{''.join(imgs)}</details>")
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>\n"
        + "\n".join(parts)
        + f"\n<script>{_SCRIPT}</script>\n</body></html>\n"
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "index.html").write_text(page, encoding="utf-8")
    return out / "index.html"


def screenshot(page: str | Path, png: str | Path, size: tuple[int, int] = (1400, 900)) -> Path:
    """The top ``size`` pixels of a page, as headless Chromium shows it (Playwright driving the
    system's ``chromium``, as the tests do); an InputError names what is missing."""
    import shutil

    browser_path = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise InputError("--screenshot needs playwright: pip install playwright") from None
    if browser_path is None:
        raise InputError("--screenshot needs chromium on PATH: apt-get install chromium")
    png = Path(png)
    png.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=browser_path, args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
        )
        view = browser.new_page(viewport={"width": size[0], "height": size[1]})
        view.goto(Path(page).resolve().as_uri())
        view.wait_for_load_state("load")
        view.screenshot(path=str(png))
        browser.close()
    return png


@cli_errors
def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(
        prog="python -m surrogates.dashboard",
        description=__doc__.split("\n\n")[0],
    )
    parser.add_argument("runs", nargs="*", help="folders holding run directories or zoo cards")
    parser.add_argument(
        "--zoo", action="store_true", help="add the shipped checkpoints (their JSON cards)"
    )
    parser.add_argument("--out", required=True, help="folder for index.html")
    parser.add_argument("--title", default=None, help="the page's title")
    parser.add_argument(
        "--screenshot", metavar="PNG", help="also save the top 1400x900 pixels (needs chromium)"
    )
    args = parser.parse_args(argv)
    roots = [*args.runs, *([checkpoint_dir()] if args.zoo else [])]
    if not roots:
        raise InputError("nothing to show: give runs folders, or --zoo for the shipped zoo")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise InputError(f"--out '{out}' is a file; give a folder for index.html")
    if args.screenshot and Path(args.screenshot).is_dir():
        raise InputError(f"--screenshot '{args.screenshot}' is a folder; give a .png file name")
    title = args.title or (
        "surrogate-zoo: the shipped zoo" if roots == [checkpoint_dir()] else "surrogate-zoo runs"
    )
    page = build_dashboard(roots, args.out, title)
    size = page.stat().st_size / 1e6
    print(f"dashboard: {page} ({size:.1f} MB); open it in a browser (file://{page.resolve()})")
    if args.screenshot:
        print(f"dashboard: screenshot {screenshot(page, args.screenshot)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
