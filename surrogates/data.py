"""Event files and simulated data sets: observed data (events + measured norms) and training sets.

File formats
------------
``.npz`` (ours): arrays ``events_<channel>`` (N_c, event_dim), ``counts``, ``norms``,
``norms_sigma``, optionally ``expected_counts`` and ``theta_true``, and ``meta`` (a JSON string
with theory, channels, parameter names, seed, package version, kind).

``.csv`` (observed events a user brings), either layout, ``#`` lines are comments:

* wide: one column per channel, headed by the channel names (``sigma1,sigma2``); shorter
  columns are padded with empty cells;
* long: a ``channel`` column (channel name or index) and one column per event dimension
  (``x`` for 1-D events; any names for more).

The measured norms (∫σ_c dx) and their 1σ uncertainties go in comment lines, one value per
channel in channel order::

    # norms: 3.27, 1.87
    # norms_sigma: 0.033, 0.026
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

from surrogates._version import __version__
from surrogates.errors import EventFileError, InputError, ParameterError, check_choice
from surrogates.generators import EventGenerator, seed_for
from surrogates.runs import atomic_path
from surrogates.sampling import (
    GRID_KINDS,
    InverseCDFSampler,
    InverseCDFSampler2D,
    MetropolisSampler,
    adaptive_grid,
    float32_width,
    warn_grid_error,
)
from surrogates.theory import Theory, get_theory
from surrogates.theory.base import Module2, chebyshev_grid, check_density_values
from surrogates.validation import (
    MAX_EVENTS,
    check_float,
    fraction,
    positive_int,
    seed_value,
)

__all__ = [
    "CASES",
    "DEFAULT_GRID_TOL",
    "ObservedData",
    "TrainingSet",
    "read_events",
    "write_events",
    "simulate_observed",
    "simulate_training",
    "load_training",
    "training_file_meta",
    "event_sampler",
    "TrainingDataModule",
    "check_grid_options",
    "trapezoid_weights",
    "generate_rows",
    "density_rows",
    "grid_summary",
    "training_meta",
    "check_training_module2",
]

CASES: dict[str, tuple[int, int]] = {
    "A": (100_000, 50_000),
    "B": (10_000, 5_000),
    "C": (1_000, 500),
}


@dataclass
class ObservedData:
    """Observed events per channel with the measured norms: what the inverse problem starts from.

    Attributes:
        events: one array (N_c, event_dim) per channel.
        norms: measured ∫σ_c dx per channel.
        norms_sigma: their 1σ uncertainties.
        theory: name of the theory the data belong to ("" when unknown).
        theta_true: the true θ, when known (simulated data).
        expected_counts: the expected counts the data were simulated with, when known.
        meta: everything else (seed, case, version, ...).
    """

    events: list[np.ndarray]
    norms: np.ndarray
    norms_sigma: np.ndarray
    theory: str = ""
    theta_true: np.ndarray | None = None
    expected_counts: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    @property
    def counts(self) -> np.ndarray:
        return np.array([len(e) for e in self.events])

    @property
    def exposure(self) -> np.ndarray:
        """L_c = m_c / s_c²: expected events per unit norm, so that ν_c(θ) = L_c ∫σ_c(x; θ) dx.

        For Poisson-measured norms (s = m/√N) this is N/m, and L·m = N: the extended likelihood.
        """
        return self.norms / self.norms_sigma**2

    def validate(self, theory: Theory, source: str = "events") -> ObservedData:
        """Check the data against a theory; raise `EventFileError` naming the problem."""
        if self.theory and self.theory != theory.name:
            raise EventFileError(
                f"{source} were made with theory '{self.theory}', not '{theory.name}'; "
                f"pass --theory {self.theory} (for a theory of a card: the card's path) or use "
                f"data of theory '{theory.name}'"
            )
        if len(self.events) != theory.n_channels:
            raise EventFileError(
                f"{source} have {len(self.events)} channels; theory '{theory.name}' has "
                f"{theory.n_channels} ({', '.join(theory.channels)})"
            )
        lo, hi = theory.x_low.numpy(), theory.x_high.numpy()
        for name, ev in zip(theory.channels, self.events, strict=True):
            if ev.ndim != 2 or ev.shape[1] != theory.event_dim:
                raise EventFileError(
                    f"{source}: channel {name} has events of shape {ev.shape}; expected "
                    f"(N, {theory.event_dim})"
                )
            if len(ev) == 0:
                raise EventFileError(
                    f"{source}: channel {name} has no events; every channel needs some"
                )
            if not np.isfinite(ev).all():
                bad = int((~np.isfinite(ev)).any(1).sum())
                raise EventFileError(
                    f"{source}: channel {name} has {bad} NaN/inf events; remove them before fitting"
                )
            outside = ((ev < lo) | (ev > hi)).any(1)
            if outside.any():
                v = ev[outside][0]
                raise EventFileError(
                    f"{source}: channel {name} has {int(outside.sum())} events outside the x range "
                    f"[{', '.join(map(str, lo))}, {', '.join(map(str, hi))}] of theory "
                    f"'{theory.name}' (e.g. {v.tolist()}); apply the theory's cuts"
                )
        for what, arr in (("norms", self.norms), ("norms_sigma", self.norms_sigma)):
            if arr.shape != (theory.n_channels,) or not np.isfinite(arr).all() or (arr <= 0).any():
                raise EventFileError(
                    f"{source}: {what} must be {theory.n_channels} positive finite numbers, got "
                    f"{np.asarray(arr).tolist()}"
                )
        if self.expected_counts is not None:
            expected = np.asarray(self.expected_counts)
            if (
                expected.shape != (theory.n_channels,)
                or not np.issubdtype(expected.dtype, np.number)
                or not np.isfinite(expected).all()
                or (expected <= 0).any()
            ):
                raise EventFileError(
                    f"{source}: expected_counts must be {theory.n_channels} positive finite "
                    f"numbers, got {expected.tolist()}; fix them or leave them out"
                )
        if self.theta_true is not None:
            true = np.asarray(self.theta_true)
            if true.shape != (theory.n_params,) or not np.issubdtype(true.dtype, np.number):
                raise EventFileError(
                    f"{source}: theta_true must be {theory.n_params} numbers (one θ: "
                    f"{', '.join(theory.param_names)}), got shape {true.shape}; fix it or leave "
                    "it out"
                )
            theory.check_theta(true)
        return self


def parse_theta(text: str | Sequence[float], theory: Theory) -> np.ndarray:
    """``truth``, P comma-separated numbers, or a list of P numbers → θ, checked against the box."""
    if not isinstance(text, str):
        text = ",".join(map(str, text))
    if text == "truth":
        if theory.truth is None:
            raise InputError(f"theory '{theory.name}' has no known truth; pass --theta v1,v2,...")
        return theory.truth.numpy()
    try:
        values = np.array([float(v) for v in text.split(",")])
    except ValueError:
        raise ParameterError(
            f"--theta '{text}' must be 'truth' or {theory.n_params} comma-separated numbers"
        ) from None
    if values.shape != (theory.n_params,):
        raise ParameterError(
            f"--theta has {values.size} values; theory '{theory.name}' has {theory.n_params} "
            f"({', '.join(theory.param_names)})"
        )
    return theory.check_theta(values)[0].numpy()


def parse_counts(case: str | None, events: str | None, theory: Theory) -> tuple[list[float], str]:
    """Expected counts from --case or --events."""
    if events is not None:
        try:
            counts = [float(v) for v in events.split(",")]
        except ValueError:
            raise InputError(f"--events '{events}' must be comma-separated numbers") from None
        if (
            len(counts) != theory.n_channels
            or not all(np.isfinite(counts))
            or min(counts) <= 0
            or max(counts) > MAX_EVENTS
        ):
            raise InputError(
                f"--events needs {theory.n_channels} positive counts of at most {MAX_EVENTS:.0e} "
                f"per channel, got '{events}'"
            )
        return counts, "custom"
    case = (case or "B").upper()
    if case not in CASES:
        raise InputError(
            f"unknown case '{case}'; choose one of {', '.join(CASES)} or pass --events N1,N2"
        )
    return list(CASES[case]), case


def write_events(path: str | Path, data: ObservedData, channels: Sequence[str]) -> Path:
    """Write observed data as ``.npz`` (see module docstring)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"events_{c}": e for c, e in zip(channels, data.events, strict=True)}
    arrays.update(counts=data.counts, norms=data.norms, norms_sigma=data.norms_sigma)
    if data.theta_true is not None:
        arrays["theta_true"] = np.asarray(data.theta_true)
    if data.expected_counts is not None:
        arrays["expected_counts"] = np.asarray(data.expected_counts)
    meta = {"theory": data.theory, "channels": list(channels), **data.meta}
    with atomic_path(path) as tmp, tmp.open("wb") as f:
        np.savez_compressed(f, meta=json.dumps(meta), **arrays)
    return path


def read_events(path: str | Path, theory: Theory) -> ObservedData:
    """Read observed events (``.npz`` or ``.csv``) and validate them against the theory.

    Raises:
        EventFileError: the file is missing, unreadable, malformed, or does not fit the theory.
    """
    path = Path(path)
    if not path.is_file():
        raise EventFileError(
            f"event file '{path}' not found; make one with `python -m surrogates.simulate observed`"
        )
    suffix = path.suffix.lower()
    if suffix == ".npz":
        data = _read_npz(path, theory)
    elif suffix == ".csv":
        data = _read_csv(path, theory)
    else:
        raise EventFileError(f"event file '{path}' has unknown type '{suffix}'; use .npz or .csv")
    return data.validate(theory, source=f"'{path}'")


def _read_npz(path: Path, theory: Theory) -> ObservedData:
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as err:  # noqa: BLE001 - any unreadable file gets the same message
        raise EventFileError(
            f"cannot read '{path}' as .npz ({type(err).__name__}); is it an event file?"
        ) from None
    meta = _meta(arrays, path)
    try:
        if meta.get("kind") not in (None, "observed"):
            raise EventFileError(
                f"'{path}' is a {meta['kind']} set, not observed events; make observed data with "
                "`python -m surrogates.simulate observed`"
            )
        channels = meta["channels"]
        events = [np.asarray(arrays[f"events_{c}"], dtype=float) for c in channels]
        norms, sigma = arrays["norms"].astype(float), arrays["norms_sigma"].astype(float)
    except (KeyError, TypeError, ValueError) as err:
        raise EventFileError(f"'{path}' is not an observed-events file (missing {err})") from None
    if "counts" in arrays and not np.array_equal(arrays["counts"], [len(e) for e in events]):
        raise EventFileError(
            f"'{path}': counts {arrays['counts'].tolist()} do not match the number of events "
            f"{[len(e) for e in events]}; the file is corrupt or was edited"
        )
    expected = arrays.get("expected_counts")
    own = meta.get("theory", theory.name) == theory.name
    if own and list(channels) != list(theory.channels):
        if sorted(map(str, channels)) != sorted(theory.channels):
            raise EventFileError(
                f"'{path}' holds channels {list(channels)}; theory '{theory.name}' has "
                f"{list(theory.channels)}: name the channels as the theory does"
            )
        order = [list(channels).index(c) for c in theory.channels]  # the theory's order
        events = [events[i] for i in order]
        if norms.shape == sigma.shape == (len(order),):  # else validate names the bad shape
            norms, sigma = norms[order], sigma[order]
        if expected is not None and np.shape(expected) == (len(order),):
            expected = np.asarray(expected)[order]
    return ObservedData(
        events=events,
        norms=norms,
        norms_sigma=sigma,
        theory=meta.get("theory", ""),
        theta_true=arrays.get("theta_true"),
        expected_counts=expected,
        meta={k: v for k, v in meta.items() if k not in ("theory", "channels")},
    )


def _meta(arrays: dict | np.lib.npyio.NpzFile, path: Path) -> dict:
    """The JSON object stored under 'meta' in an .npz file, or an EventFileError."""
    try:
        meta = json.loads(str(arrays["meta"]))
    except KeyError:
        raise EventFileError(f"'{path}' has no 'meta' entry; is it a surrogate-zoo file?") from None
    except ValueError:
        raise EventFileError(
            f"'{path}': its 'meta' entry is not JSON; the file is corrupt"
        ) from None
    if not isinstance(meta, dict):
        raise EventFileError(
            f"'{path}': its 'meta' entry is JSON but not an object ({type(meta).__name__}); "
            "the file is corrupt or not a surrogate-zoo file"
        )
    return meta


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_csv(path: Path, theory: Theory) -> ObservedData:
    comments: dict[str, str] = {}
    rows: list[str] = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise EventFileError(f"'{path}' is not a UTF-8 text CSV; is it an event file?") from None
    for line in text.removeprefix("\ufeff").splitlines():  # a spreadsheet's byte-order mark
        if line.startswith("#"):
            key, sep, value = line[1:].partition(":")
            if sep:
                comments[key.strip()] = value.strip()
        elif line.strip():
            rows.append(line)
    if not rows:
        raise EventFileError(f"'{path}' has no header and no events")
    header = [h.strip() for h in rows[0].split(",")]
    if len(header) == 1 and ";" in rows[0]:
        raise EventFileError(f"'{path}' is separated by ';'; write it with commas")
    if len(set(header)) != len(header):
        raise EventFileError(f"'{path}': its header {header} names a column twice")
    cells = [r.split(",") for r in rows[1:]]
    if any(len(r) != len(header) for r in cells):
        raise EventFileError(
            f"'{path}': every row must have {len(header)} numeric fields (header {header})"
        )
    if "channel" in header:  # a channel by name as well as by index
        col, index = header.index("channel"), {c: str(k) for k, c in enumerate(theory.channels)}
        for r in cells:
            r[col] = index.get(r[col].strip(), r[col])
    empty = np.array([[not v.strip() for v in r] for r in cells], dtype=bool).reshape(
        len(cells), len(header)
    )
    try:
        body = np.array(
            [[float(v) if v.strip() else math.nan for v in r] for r in cells], dtype=float
        )
    except ValueError:
        row, field_, value = next(
            (i + 1, header[j], v)
            for i, r in enumerate(cells)
            for j, v in enumerate(r)
            if v.strip() and not _is_float(v)
        )
        hint = f" or a channel of {list(theory.channels)}" if field_ == "channel" else ""
        raise EventFileError(
            f"'{path}': event row {row} has '{value.strip()}' in column {field_}, not a "
            f"number{hint}"
        ) from None
    body = body.reshape(len(cells), len(header))
    if "channel" in header:
        col = header.index("channel")
        dims = [i for i in range(len(header)) if i != col]
        labels = body[:, col]
        if not np.isin(labels, np.arange(theory.n_channels)).all():
            raise EventFileError(
                f"'{path}': channel column must hold 0..{theory.n_channels - 1} or the names "
                f"{list(theory.channels)}"
            )
        events = [body[labels == k][:, dims] for k in range(theory.n_channels)]
    else:
        missing = [c for c in theory.channels if c not in header]
        if missing or theory.event_dim != 1:
            raise EventFileError(
                f"'{path}': wide CSV needs one column per channel named {list(theory.channels)} "
                "(1-D events), or a long CSV with a 'channel' column"
            )
        events = []
        for c in theory.channels:
            j = header.index(c)
            filled = np.flatnonzero(~empty[:, j])
            last = int(filled[-1]) + 1 if filled.size else 0
            if empty[:last, j].any():
                raise EventFileError(
                    f"'{path}': column {c} has an empty cell before its last event"
                )
            events.append(body[:last, j].reshape(-1, 1))
    try:
        norms = np.array([float(v) for v in comments["norms"].split(",")])
        sigma = np.array([float(v) for v in comments["norms_sigma"].split(",")])
    except KeyError:
        raise EventFileError(
            f"'{path}' has no measured norms; add comment lines '# norms: m1, m2' and "
            "'# norms_sigma: s1, s2' (∫σ_c dx per channel and its 1σ uncertainty)"
        ) from None
    except ValueError:
        raise EventFileError(f"'{path}': norms must be comma-separated numbers") from None
    return ObservedData(events, norms, sigma, theory=comments.get("theory", ""))


def event_sampler(theory: Theory, method: str = "auto") -> InverseCDFSampler | MetropolisSampler:
    """The exact sampler: inverse CDF for 1-D events and for 2-D events on a region mapped onto the
    unit square (`InverseCDFSampler2D`), Metropolis otherwise."""
    if method not in ("auto", "inverse-cdf", "mcmc"):
        raise InputError(f"unknown sampler '{method}'; choose auto, inverse-cdf or mcmc")
    if method == "mcmc" or (method == "auto" and theory.event_dim != 1):
        if method == "auto" and getattr(theory, "support_map", False):
            return InverseCDFSampler2D(theory)
        return MetropolisSampler(theory)
    return InverseCDFSampler(theory)


def simulate_observed(
    theory: Theory | EventGenerator,
    theta: Sequence[float] | np.ndarray,
    expected_counts: Sequence[int],
    seed: int,
    method: str = "auto",
    fluctuate: bool = True,
    detector=None,  # noqa: ANN001 - surrogates.detector.DISDetector or None
) -> ObservedData:
    """Simulate an observed data set: Poisson counts, events, and the norms they measure.

    The count N_c ~ Poisson(ν_c) of each channel measures its norm: m_c = ∫σ_c(θ) · N_c / ν_c,
    with uncertainty m_c / √N_c. With a ``detector`` the ν_c true events are reconstructed through
    it (efficiency, smearing, box acceptance); the data are the reconstructed events, and the norms
    they measure are the accepted ones, ∫σ_c ε acc dx (``expected_counts`` = ν_c × acceptance).
    """
    theta_t = theory.check_theta(theta)
    rng = np.random.default_rng(seed)
    expected = np.asarray(expected_counts, dtype=float)
    if expected.shape != (theory.n_channels,) or (expected <= 0).any():
        raise InputError(
            f"expected counts {list(expected_counts)} must be {theory.n_channels} positive numbers"
        )
    counts = rng.poisson(expected) if fluctuate else np.round(expected).astype(int)
    counts = np.maximum(counts, 1)
    if not theory.has_density:
        return _generated_observed(theory, theta_t[0].numpy(), counts, expected, seed, rng)
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    with torch.no_grad():
        true_norms = theory.checked_norms(theta_t)[0].numpy()
        events = event_sampler(theory, method).sample(theta_t, counts.tolist(), generator=generator)
    events = [e[0].numpy() for e in events]
    meta: dict = {"detector": None}  # recorded either way, so a fit can refuse a mismatch
    if detector is not None:
        with torch.no_grad():
            accepted = detector.accepted_norms(theta_t)[0].numpy()
        expected = expected * accepted / true_norms
        true_norms = accepted
        events = [detector.simulate(e, rng) for e in events]
        counts = np.array([max(len(e), 1) for e in events])
        meta["detector"] = detector.describe()
    norms = true_norms * counts / expected
    return ObservedData(
        events=events,
        norms=norms,
        norms_sigma=norms / np.sqrt(counts),
        theory=theory.name,
        theta_true=theta_t[0].numpy(),
        expected_counts=expected,
        meta={
            "kind": "observed",
            "seed": seed,
            "param_names": list(theory.param_names),
            "version": __version__,
            **meta,
        },
    )


def _generated_observed(
    generator: EventGenerator,
    theta: np.ndarray,
    counts: np.ndarray,
    expected: np.ndarray,
    seed: int,
    rng: np.random.Generator,
) -> ObservedData:
    """Observed data from an event generator: N_c ~ Poisson(ν_c) events of its output, the
    rates it reports as the measured norms' scale (ν_c are expected observed events)."""
    out = generator.generate(theta, int(counts.max()), int(rng.integers(2**62)))
    norms = out.rates * counts / expected
    return ObservedData(
        events=[e[:n] for e, n in zip(out.events, counts, strict=True)],
        norms=norms,
        norms_sigma=norms / np.sqrt(counts),
        theory=generator.name,
        theta_true=theta,
        expected_counts=expected,
        meta={
            "kind": "observed",
            "seed": seed,
            "param_names": list(generator.param_names),
            "version": __version__,
            "detector": None,
        },
    )


@dataclass
class TrainingSet:
    """(θ, events[, densities]) for surrogate training; the file format users may write too.

    An ``.npz`` with arrays ``theta``, ``events``, ``norms`` (and ``grid`` + ``densities`` when a
    density exists) and ``meta``, a JSON object with at least ``kind: "training"``, ``theory``
    (the module-2's name), ``param_names`` and ``channels``.

    Attributes:
        theta: (M, P) parameters drawn from the prior box.
        events: (M, C, K, event_dim) K events per channel per θ.
        norms: (M, C) ∫σ_c dx per θ (an event generator's rates).
        grid: the x grid of the densities: (M, G, 1) one per θ (1-D theories; adaptive or
            Chebyshev, see `simulate_training`), or (G, event_dim) shared by every θ (2-D
            theories, and 1-D files written before per-θ grids; `theta_grids` broadcasts it);
            None for an event generator (no density).
        densities: (M, C, G) σ_c on the grid per θ (unnormalized), or None.
        meta: module-2 description, seed, version.
    """

    theta: np.ndarray
    events: np.ndarray
    grid: np.ndarray | None
    densities: np.ndarray | None
    norms: np.ndarray
    meta: dict

    @property
    def has_density(self) -> bool:
        return self.densities is not None

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        arrays = {"theta": self.theta, "events": self.events, "norms": self.norms}
        if self.has_density:
            arrays.update(grid=self.grid, densities=self.densities)
        meta = {**self.meta, "has_density": self.has_density}
        with atomic_path(path) as tmp, tmp.open("wb") as f:
            np.savez_compressed(f, meta=json.dumps(meta), **arrays)
        return path

    def theta_grids(self, index: np.ndarray | slice = slice(None)) -> np.ndarray:
        """The grids of the θ at ``index``: (m, G, event_dim), a shared grid repeated (a view)."""
        if self.grid.ndim == 3:
            return self.grid[index]
        m = len(self.theta[index])
        return np.broadcast_to(self.grid, (m, *self.grid.shape))


DEFAULT_GRID_TOL = 1e-3


def check_grid_options(theory: Theory, grid: str, grid_tol: float, prefix: str = "") -> None:
    """One-line errors for a grid kind and tolerance that a theory cannot use."""
    check_choice(f"{prefix}grid", grid, ("auto", *GRID_KINDS))
    check_float(f"{prefix}grid{'-' if prefix == '--' else '_'}tol", grid_tol, 0.0, open_low=True)
    if theory.event_dim != 1 and grid != "auto":
        raise InputError(
            f"{prefix}grid '{grid}' is for 1-D events; theory '{theory.name}' has "
            f"{theory.event_dim}-D events, tabulated on its own fixed grid: use {prefix}grid auto"
        )


def simulate_training(
    theory: Theory | EventGenerator,
    n_params: int,
    events_per_param: int,
    seed: int,
    grid_size: int = 128,
    batch: int = 512,
    method: str = "auto",
    grid: str = "auto",
    grid_tol: float = DEFAULT_GRID_TOL,
) -> TrainingSet:
    """Simulate a training set: θ uniform in the prior box, events and grid densities per θ.

    An `EventGenerator` gives events and rates only, seeded per θ row
    (`surrogates.generators.seed_for`), so any subset of rows can be redone alone.

    1-D theories tabulate each θ's densities on its own ``grid_size`` nodes: ``grid="adaptive"``
    (the default, "auto") places them by `surrogates.sampling.adaptive_grid` where linear
    interpolation errs most, so a narrow interior peak is resolved as well as an edge; the
    estimated L1 interpolation error ∫|p_lin − p| dx of every θ (worst channel) is checked
    against ``grid_tol`` and summarized in ``meta["grid"]``, with a one-line warning naming how
    many θ exceed it. ``grid="chebyshev"`` keeps one grid clustered at both ends for every θ.
    2-D theories keep their fixed grid (unit square or tensor-product quadrature).
    """
    if n_params < 1 or events_per_param < 0 or grid_size < 2:
        raise InputError("n-params must be ≥ 1, events-per-param ≥ 0 and grid-size ≥ 2")
    check_grid_options(theory, grid, grid_tol)
    kind = "adaptive" if grid == "auto" else grid
    generator = torch.Generator().manual_seed(seed)
    theta = theory.sample_prior(n_params, generator)
    if not theory.has_density:
        return _generated_training(theory, theta.numpy(), events_per_param, seed)
    ts, errors = density_rows(
        theory, theta, events_per_param, generator, grid_size, batch, method, kind
    )
    if theory.event_dim == 1:
        ts.meta["grid"] = grid_summary(kind, grid_size, grid_tol, errors, theory)
    ts.meta = training_meta(theory, seed, events_per_param, **ts.meta)
    return ts


def density_rows(
    theory: Theory,
    theta: torch.Tensor,
    events_per_param: int,
    generator: torch.Generator,
    grid_size: int = 128,
    batch: int = 512,
    method: str = "auto",
    grid: str = "adaptive",
) -> tuple[TrainingSet, list[torch.Tensor]]:
    """Events and grid densities of a density theory at the given θ (B, P), drawn from
    ``generator``, with the estimated L1 interpolation error of each θ's grid.

    ``grid`` is "adaptive" or "chebyshev" (as resolved by `simulate_training`); a 1-D theory's
    adaptive grids come back per θ, (B, G, 1), with their errors (a list of (b,) tensors, one per
    batch, empty for fixed grids); other grids are shared, (G, event_dim). ``meta`` holds only
    the grid's own keys: callers add `grid_summary` over all errors and `training_meta`.

    `simulate_training` calls it with the generator that drew θ; a chunked build
    (`surrogates.datasets`) calls it once per chunk with a generator seeded per chunk and
    summarizes the errors of all chunks at the merge (one warning for the whole set)."""
    sampler = event_sampler(theory, method)
    unit = getattr(theory, "support_map", False)
    extra: dict = {}
    shared = None
    if theory.event_dim == 1:
        shared = torch.as_tensor(
            chebyshev_grid(float(theory.x_low[0]), float(theory.x_high[0]), grid_size),
            dtype=theory.dtype,
        ).view(-1, 1)
    elif unit:  # a uniform grid on the unit square of the event region; densities in u there
        g = torch.linspace(0.0, 1.0, grid_size, dtype=theory.dtype)
        shared = torch.cartesian_prod(g, g)
        extra = {"density_space": "unit", "grid_shape": [grid_size, grid_size]}
    else:
        shared = theory.quadrature(grid_size)[0]
    events, densities, norms, grids, errors = [], [], [], [], []
    with torch.no_grad():
        for start in range(0, len(theta), batch):
            th = theta[start : start + batch]
            norm = theory.checked_norms(th)  # before sampling: σ must be a density at each θ
            ev = sampler.sample(th, events_per_param, generator=generator)
            events.append(torch.stack(ev, dim=1).float().numpy())
            if theory.event_dim == 1 and grid == "adaptive":
                lo, hi = float(theory.x_low[0]), float(theory.x_high[0])
                width = float32_width(lo, hi)  # the surrogates read the grids in float32
                table = adaptive_grid(theory._density, th, lo, hi, grid_size, min_width=width)
                dens = table.values
                grids.append(table.nodes.unsqueeze(-1).numpy())
                errors.append(table.error)
            elif unit:
                dens = theory.unit_density(shared.unsqueeze(0).expand(len(th), -1, -1), th)
            else:
                dens = theory.density(shared.unsqueeze(0), th)
            check_density_values(theory, th, dens)
            densities.append(dens.float().numpy())
            norms.append(norm.numpy())
    return TrainingSet(
        theta=theta.numpy(),
        events=np.concatenate(events),
        grid=np.concatenate(grids) if grids else shared.numpy(),
        densities=np.concatenate(densities),
        norms=np.concatenate(norms),
        meta=extra,
    ), errors


def generate_rows(
    generator: EventGenerator, theta: np.ndarray, rows: Sequence[int], k: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Events (R, C, k, d) and rates (R, C) of the given θ rows, each seeded by its row index."""
    if k < 1:
        raise InputError("an event generator's training set needs events-per-param ≥ 1")
    events, rates = [], []
    for i in rows:
        out = generator.generate(theta[i], k, seed_for(seed, i))
        events.append(np.stack(out.events).astype(np.float32))
        rates.append(out.rates)
    return np.stack(events), np.stack(rates)


def training_meta(module2: Module2, seed: int, events_per_param: int, **extra: object) -> dict:
    """The meta object of a training set of this module-2."""
    return {
        **module2.describe(),
        "kind": "training",
        "seed": seed,
        "events_per_param": events_per_param,
        "version": __version__,
        **extra,
    }


def _generated_training(
    generator: EventGenerator, theta: np.ndarray, k: int, seed: int
) -> TrainingSet:
    events, rates = generate_rows(generator, theta, range(len(theta)), k, seed)
    meta = training_meta(generator, seed, k, seeding="per-row")
    return TrainingSet(theta, events, None, None, rates, meta)


def grid_summary(
    kind: str, size: int, tol: float, errors: list[torch.Tensor], theory: Theory
) -> dict:
    """meta["grid"] of a 1-D training set: how it was placed and the interpolation error it left
    (adaptive grids; one warning line when some θ exceed the tolerance)."""
    summary: dict = {"kind": kind, "size": size, "tol": tol}
    if errors:
        error = torch.cat(errors)
        summary.update(
            error_max=float(error.max()),
            error_median=float(error.median()),
            above_tol=int((error > tol).sum()),
        )
        summary["warning"] = warn_grid_error(error, tol, size, f"training set of '{theory.name}'")
    return summary


def load_training(path: str | Path, theory: Module2 | None = None) -> TrainingSet:
    """Read a training set written by `simulate_training`; check it matches the theory if given."""
    path = Path(path)
    if not path.is_file():
        raise EventFileError(
            f"training set '{path}' not found; make one with `python -m surrogates.simulate training`"
        )
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except Exception as err:  # noqa: BLE001 - truncated, not a zip, not numpy: one message
        raise EventFileError(
            f"cannot read '{path}' as .npz ({type(err).__name__}); the file is truncated or "
            "not a training set"
        ) from None
    meta = _meta(arrays, path)
    if ("grid" in arrays) != ("densities" in arrays):
        raise EventFileError(
            f"'{path}': grid and densities come together (or neither, for event generators)"
        )
    try:
        ts = TrainingSet(
            arrays["theta"],
            arrays["events"],
            arrays.get("grid"),
            arrays.get("densities"),
            arrays["norms"],
            meta,
        )
    except KeyError as err:
        raise EventFileError(f"'{path}' is not a training set (no {err} array)") from None
    _check_training_arrays(ts, path)
    if meta.get("kind") != "training":
        raise EventFileError(f"'{path}' is a {meta.get('kind')} file, not a training set")
    if theory is not None and meta.get("theory") != theory.name:
        raise EventFileError(
            f"training set '{path}' is for theory '{meta.get('theory')}', not '{theory.name}'"
        )
    if theory is not None:
        check_training_module2(ts, theory, path)
    return ts


def check_training_module2(ts: TrainingSet, module2: Module2, path: str | Path) -> None:
    """The set's parameters, channels, event dimension and θ box are the module-2's: with or
    without densities, a surrogate trained on it can stand in for this module-2 only then."""
    meta = ts.meta
    for key, want in (("param_names", module2.param_names), ("channels", module2.channels)):
        have = meta.get(key)
        if have is not None and list(have) != list(want):
            raise EventFileError(
                f"training set '{path}' has {key} {list(have)}; '{module2.name}' declares "
                f"{list(want)}: regenerate it for this module-2"
            )
    shape = ts.events.shape
    if ts.theta.shape[1] != module2.n_params or shape[1] != module2.n_channels:
        raise EventFileError(
            f"training set '{path}': θ has {ts.theta.shape[1]} columns and events "
            f"{shape[1]} channels; '{module2.name}' has {module2.n_params} parameters and "
            f"{module2.n_channels} channels"
        )
    if shape[3] != module2.event_dim:
        raise EventFileError(
            f"training set '{path}': events of dimension {shape[3]}; '{module2.name}' "
            f"declares {module2.event_dim}"
        )
    low, high = module2.prior_low.numpy(), module2.prior_high.numpy()
    tol = 1e-6 * (high - low)
    outside = ((ts.theta < low - tol) | (ts.theta > high + tol)).any(0)
    if outside.any():
        j = int(np.flatnonzero(outside)[0])
        raise EventFileError(
            f"training set '{path}': {module2.param_names[j]} leaves the prior box "
            f"[{low[j]:g}, {high[j]:g}] of '{module2.name}'; drop those θ or widen the box"
        )


def training_file_meta(path: str | Path) -> dict:
    """The meta object of a training-set file, read without loading its arrays (an .npz reads
    its members lazily): e.g. ``meta["grid"]``, the summary of its grids."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as f:
            return _meta(f, path)
    except (OSError, ValueError) as err:
        raise EventFileError(f"cannot read '{path}' as .npz ({type(err).__name__})") from None


def _check_training_arrays(ts: TrainingSet, path: Path) -> None:
    """Shapes that agree and values that are finite: a NaN density would train to a NaN loss."""
    n = ts.theta.shape[0] if ts.theta.ndim == 2 else -1
    shapes_ok = (
        n > 0
        and ts.events.ndim == 4
        and ts.events.shape[0] == n
        and ts.norms.shape == ts.events.shape[:2]
    )
    if ts.has_density:
        shapes_ok = (
            shapes_ok
            and ts.densities.ndim == 3
            and ts.densities.shape[:2] == ts.events.shape[:2]
            and ts.grid.ndim in (2, 3)
            and (ts.grid.ndim == 2 or ts.grid.shape[0] == n)
            and ts.densities.shape[2] == ts.grid.shape[-2]
        )
    if not shapes_ok:
        raise EventFileError(
            f"'{path}': arrays of inconsistent shapes (theta {ts.theta.shape}, events "
            f"{ts.events.shape}, grid {getattr(ts.grid, 'shape', None)}, densities "
            f"{getattr(ts.densities, 'shape', None)}, norms {ts.norms.shape}); regenerate it "
            "with python -m surrogates.simulate training"
        )
    for name in ("theta", "events", "grid", "densities", "norms"):
        if getattr(ts, name) is None:
            continue
        values = np.asarray(getattr(ts, name), dtype=float)
        bad = ~np.isfinite(values)
        if bad.any():
            rows = (
                int(bad.reshape(bad.shape[0], -1).any(-1).sum())
                if values.ndim > 1
                else int(bad.sum())
            )
            raise EventFileError(
                f"'{path}': {name} holds NaN or inf ({rows} rows); regenerate those θ or drop them"
            )
    if (ts.has_density and (ts.densities < 0).any()) or (ts.norms <= 0).any():
        raise EventFileError(f"'{path}': densities must be ≥ 0 and norms > 0")
    if (
        ts.has_density
        and ts.grid.shape[-1] == 1
        and not (np.diff(ts.grid[..., 0], axis=-1) > 0).all()
    ):
        raise EventFileError(
            f"'{path}': a grid's x values must increase; regenerate it with "
            "python -m surrogates.simulate training"
        )


def trapezoid_weights(grid: np.ndarray) -> np.ndarray:
    """Trapezoid-rule weights of 1-D grids (..., G) (one per row) so that Σ w f ≈ ∫ f dx.

    >>> trapezoid_weights(np.array([0.0, 1.0, 3.0]))
    array([0.5, 1.5, 1. ])
    """
    h = np.diff(grid, axis=-1)
    w = np.zeros_like(grid)
    w[..., :-1] += h / 2
    w[..., 1:] += h / 2
    return w


class _PerTheta(torch.utils.data.Dataset):
    """One item per θ: θ, log norms, events (C, K, d), normalized grid densities (C, G), and
    that θ's grid (G, d) with its quadrature weights (G,); batches stack them to (B, G, d) and
    (B, G)."""

    def __init__(self, ts: TrainingSet, index: np.ndarray) -> None:
        self.theta = torch.as_tensor(ts.theta[index], dtype=torch.float32)
        self.log_norms = torch.as_tensor(
            np.log(np.clip(ts.norms[index], 1e-300, None)), dtype=torch.float32
        )
        self.events = torch.as_tensor(ts.events[index], dtype=torch.float32)
        self.has_density = ts.has_density
        if not ts.has_density:  # an event generator's set: events and rates only
            return
        norms = np.clip(ts.norms[index], 1e-300, None)[..., None]
        self.pdf = torch.as_tensor(ts.densities[index] / norms, dtype=torch.float32)
        # a grid per θ, or one shared grid (2-D theories, older files) broadcast without copies
        shared = ts.grid.ndim == 2
        grid = ts.grid if shared else ts.grid[index]
        # trapezoid weights of 1-D grids (2-D grids: the model forms its own cells)
        w = trapezoid_weights(grid[..., 0]) if grid.shape[-1] == 1 else np.ones(grid.shape[:-1])
        self.grid = torch.as_tensor(grid, dtype=torch.float32)
        self.weights = torch.as_tensor(w, dtype=torch.float32)
        if shared:
            self.grid = self.grid.expand(len(index), -1, -1)
            self.weights = self.weights.expand(len(index), -1)

    def __len__(self) -> int:
        return len(self.theta)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        item = {"theta": self.theta[i], "log_norms": self.log_norms[i], "events": self.events[i]}
        if self.has_density:
            item.update(pdf=self.pdf[i], grid=self.grid[i], weights=self.weights[i])
        return item


class TrainingDataModule(pl.LightningDataModule):
    """Training set for a surrogate: read from ``path`` or simulated on the fly from the theory.

    Args:
        path: a training set from `python -m surrogates.simulate training`; None simulates one.
        theory: the module-2: a built-in name (proxy, proxy-numpy, dis, peak), an installed entry point, package.module:attribute, or a plug-in card file (.toml/.yaml); docs/guide/bring-your-own.md. Must be the training file's theory.
        n_params, events_per_param, grid_size: size of a simulated set.
        grid: "auto" (adaptive per θ for 1-D theories, the fixed grid for 2-D), "adaptive" or
            "chebyshev": how a simulated set places its grid nodes (`simulate_training`).
        grid_tol: the L1 interpolation error a simulated set's adaptive grid is checked against
            (a warning names the θ above it).
        seed: seed of a simulated set and of the train/validation split.
        batch_size: θ per batch (each with all its events and grid densities).
        val_fraction: share of θ held out for validation.
    """

    def __init__(
        self,
        path: str | None = None,
        theory: str = "proxy",
        n_params: int = 20000,
        events_per_param: int = 10,
        grid_size: int = 128,
        seed: int = 1,
        batch_size: int = 256,
        val_fraction: float = 0.1,
        grid: str = "auto",
        grid_tol: float = DEFAULT_GRID_TOL,
    ) -> None:
        super().__init__()
        if path is not None and not Path(path).is_file():
            raise InputError(
                f"--data.path '{path}' not found; make one with python -m surrogates.simulate training"
            )
        for key, value in (("n_params", n_params), ("events_per_param", events_per_param)):
            positive_int(f"data.{key}", value, 100)
            if value > MAX_EVENTS:
                raise InputError(f"data.{key} must be at most {MAX_EVENTS:.0e}, got {value}")
        positive_int("data.grid_size", grid_size, 128)
        if grid_size < 2:
            raise InputError(f"data.grid_size must be at least 2, got {grid_size}")
        check_choice("data.grid", grid, ("auto", *GRID_KINDS))
        check_float("data.grid_tol", grid_tol, 0.0, open_low=True)
        seed_value("data.seed", seed)
        positive_int("data.batch_size", batch_size, 256)
        fraction("data.val_fraction", val_fraction, 0.1, zero=True)
        if val_fraction >= 1:
            raise InputError(
                f"data.val_fraction must be below 1 (some θ must train), got {val_fraction}"
            )
        self.save_hyperparameters()
        self.training_set: TrainingSet | None = None

    def setup(self, stage: str | None = None) -> None:
        if self.training_set is not None:
            return
        hp = self.hparams
        theory = get_theory(hp.theory)
        if hp.path:
            self.training_set = load_training(hp.path, theory)
        else:
            check_grid_options(theory, hp.grid, hp.grid_tol, "data.")
            self.training_set = simulate_training(
                theory,
                hp.n_params,
                hp.events_per_param,
                hp.seed,
                hp.grid_size,
                grid=hp.grid,
                grid_tol=hp.grid_tol,
            )
        n = len(self.training_set.theta)
        order = np.random.default_rng(hp.seed).permutation(n)
        n_val = max(1, int(round(hp.val_fraction * n))) if n > 1 else 0
        self.train_set = _PerTheta(self.training_set, order[n_val:])
        self.val_set = _PerTheta(self.training_set, order[:n_val])

    def train_dataloader(self) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(
            self.train_set, batch_size=self.hparams.batch_size, shuffle=True
        )

    def val_dataloader(self) -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(self.val_set, batch_size=self.hparams.batch_size)
