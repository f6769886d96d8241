"""Module-2 as an event generator: θ → events per channel, with no density anywhere.

A Monte Carlo program, or a theory followed by a detector simulation, gives events and an
estimate of the rate of each channel, not σ_c(x; θ). Such a module-2 is an `EventGenerator`:

    generate(θ, n, seed) → Generated(events, rates)

with ``events`` one array (n, event_dim) per channel (n events per channel after any detector)
and ``rates`` the expected ∫σ_c per channel of those events (what observed data's norms
measure). It is stochastic (the seed fixes it) and not differentiable. Three ways in:

* `CallableGenerator`: a Python function ``g(theta, n, seed)`` returning the events per channel,
  or ``(events, rates)``; an optional ``rates(theta)`` gives the rates instead;
* `ExternalGenerator`: any program, run as a separate process from a command template with the
  placeholders ``{theta}`` (comma-separated values), ``{n}``, ``{seed}`` and ``{out}`` (the file
  it must write: ``.npz`` with arrays ``events_<channel>`` and ``rates``, or ``.csv`` with a
  ``channel`` column, one column per event dimension and a ``# rates: r1, r2`` comment line);
* `TheoryGenerator`: a density `Theory` sampled exactly, then passed event by event through a
  user's non-differentiable ``detector(events, channel, rng) → kept events``; the rates are the
  theory's norms times the kept fraction (a Monte Carlo estimate, as a real generator's are).

Every generator declares its parameters, prior box, channels and event range (`Module2`), so a
training set, a surrogate and an inverse fit can check they belong together.
"""

from __future__ import annotations

import shlex
import subprocess
import tempfile
from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from surrogates.detector import SmearingDetector
from surrogates.errors import InputError, call_user_code
from surrogates.sampling import InverseCDFSampler, MetropolisSampler
from surrogates.theory import THEORIES, ProxyTheory
from surrogates.theory.base import Module2, Theory
from surrogates.theory.card import CARD_FORMS, Card, load_function

__all__ = [
    "Generated",
    "EventGenerator",
    "CallableGenerator",
    "ExternalGenerator",
    "TheoryGenerator",
    "seed_for",
    "proxy_smeared",
]

EXTERNAL_TIMEOUT = 3600.0  # seconds one call of an external generator may take


def seed_for(seed: int, index: int) -> int:
    """The seed of θ row ``index`` of a set seeded ``seed``: independent streams per row, the
    same whichever worker or chunk simulates the row."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1, np.uint64)[0] >> 1)


@dataclass
class Generated:
    """One call of a generator: events per channel, each (n, event_dim), and the rates (C,)."""

    events: list[np.ndarray]
    rates: np.ndarray


class EventGenerator(Module2):
    """A module-2 that gives events, not densities; see the module docstring.

    Subclasses implement `_generate`; `generate` checks θ, n and what comes back (one array per
    channel, n events each inside the event range, finite positive rates).
    """

    name = "generator"
    has_density = False
    is_exact = True
    n_members = 1

    def generate(self, theta: np.ndarray | Sequence[float], n: int, seed: int) -> Generated:
        """n events per channel at one θ (P,), seeded; raises `InputError` naming what is wrong."""
        t = self.check_theta(np.asarray(theta, dtype=float))[0].numpy()
        if int(n) != n or n < 1:
            raise InputError(f"a generator needs n ≥ 1 events per channel, got {n!r}")
        out = self._generate(t, int(n), int(seed))
        return self._checked(out, int(n))

    @abstractmethod
    def _generate(self, theta: np.ndarray, n: int, seed: int) -> Generated:
        """n events per channel at the validated θ (P,)."""

    def _checked(self, out: Generated, n: int) -> Generated:
        if len(out.events) != self.n_channels:
            raise InputError(
                f"generator '{self.name}' returned {len(out.events)} channels; it declares "
                f"{self.n_channels} ({', '.join(self.channels)})"
            )
        lo, hi = self.x_low.numpy(), self.x_high.numpy()
        events = []
        for name, ev in zip(self.channels, out.events, strict=True):
            ev = np.asarray(ev, dtype=float)
            if ev.ndim == 1 and self.event_dim == 1:
                ev = ev[:, None]
            if ev.shape != (n, self.event_dim):
                raise InputError(
                    f"generator '{self.name}' returned events of shape {ev.shape} for channel "
                    f"{name}; expected ({n}, {self.event_dim}): n events per channel"
                )
            if not np.isfinite(ev).all() or ((ev < lo) | (ev > hi)).any():
                raise InputError(
                    f"generator '{self.name}' returned NaN/inf events or events outside its x "
                    f"range {lo.tolist()}..{hi.tolist()} in channel {name}; fix the generator "
                    "or its declared range"
                )
            events.append(ev)
        rates = np.asarray(out.rates, dtype=float).reshape(-1)
        if rates.shape != (self.n_channels,) or not np.isfinite(rates).all() or (rates <= 0).any():
            raise InputError(
                f"generator '{self.name}' returned rates {rates.tolist()}; expected "
                f"{self.n_channels} positive finite numbers (∫σ_c per channel)"
            )
        return Generated(events, rates)

    def norms(self, theta: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Rates (B, C) from a modest generator call per θ: estimates, not exact integrals."""
        t = self.check_theta(theta)
        rows = [self.generate(row.numpy(), 64, seed_for(0, i)).rates for i, row in enumerate(t)]
        return torch.as_tensor(np.stack(rows), dtype=self.dtype)


def _as_generated(value: object, rates: np.ndarray | None, name: str) -> Generated:
    """A user function's return value (events per channel, or (events, rates)) as `Generated`."""
    if isinstance(value, Generated):
        return value
    if isinstance(value, tuple) and len(value) == 2 and rates is None:
        return Generated(list(value[0]), np.asarray(value[1], dtype=float))
    if rates is None:
        raise InputError(
            f"generator '{name}' returned no rates: return (events, rates) or give a rates function"
        )
    return Generated(list(value), rates)  # type: ignore[arg-type]


class CallableGenerator(EventGenerator):
    """A Python function g(θ (P,), n, seed) → events per channel [or (events, rates)].

    Args:
        fn: the generator.
        name, param_names, channels, prior_low, prior_high, x_low, x_high, truth, event_dim:
            the declaration (see `Module2`).
        rates: optional ``rates(θ (P,)) → (C,)``; needed when ``fn`` returns events only.
        reference_counts: expected events per channel of the user's reference data.

    >>> def g(theta, n, seed):
    ...     rng = np.random.default_rng(seed)
    ...     return [rng.uniform(0, 1, (n, 1)) ** theta[0]], [1.0]
    >>> gen = CallableGenerator(g, "power", ["a"], ["c"], [0.5], [2.0], [0.0], [1.0])
    >>> gen.generate([1.0], 3, seed=1).events[0].shape
    (3, 1)
    """

    def __init__(
        self,
        fn: Callable[[np.ndarray, int, int], object],
        name: str,
        param_names: Sequence[str],
        channels: Sequence[str],
        prior_low: Sequence[float],
        prior_high: Sequence[float],
        x_low: Sequence[float],
        x_high: Sequence[float],
        truth: Sequence[float] | None = None,
        event_dim: int = 1,
        rates: Callable[[np.ndarray], Sequence[float]] | None = None,
        reference_counts: Sequence[float] | None = None,
    ) -> None:
        self.fn, self.rates_fn = fn, rates
        self.declare(name, param_names, channels, event_dim, reference_counts)
        super().__init__(prior_low, prior_high, x_low, x_high, truth)

    def _generate(self, theta: np.ndarray, n: int, seed: int) -> Generated:
        where = f"θ = {np.asarray(theta).tolist()} (seed {seed})"
        rates = None
        if self.rates_fn is not None:
            what = f"the rates function of generator '{self.name}'"
            rates = np.asarray(call_user_code(self.rates_fn, what, where, theta), dtype=float)
        what = f"generator '{self.name}'"
        return _as_generated(call_user_code(self.fn, what, where, theta, n, seed), rates, self.name)


class ExternalGenerator(EventGenerator):
    """An existing program, any language, run as a separate process per call.

    Args:
        command: the command as a list of words (or one string, split like a shell would, but
            never run by a shell), with the placeholders {theta} (comma-separated θ), {n},
            {seed} and {out} (the path of the file the program must write; its suffix is
            ``output``).
        output: "npz" or "csv" (see the module docstring for both layouts).
        cwd: the program's working directory (the card's folder for a card).
        timeout: seconds per call before it is stopped.
        Other arguments: the declaration, as for `CallableGenerator`.
    """

    def __init__(
        self,
        command: str | Sequence[str],
        name: str,
        param_names: Sequence[str],
        channels: Sequence[str],
        prior_low: Sequence[float],
        prior_high: Sequence[float],
        x_low: Sequence[float],
        x_high: Sequence[float],
        truth: Sequence[float] | None = None,
        event_dim: int = 1,
        output: str = "npz",
        cwd: str | Path | None = None,
        timeout: float = EXTERNAL_TIMEOUT,
        reference_counts: Sequence[float] | None = None,
    ) -> None:
        words = shlex.split(command) if isinstance(command, str) else [str(w) for w in command]
        if not words or "{out}" not in " ".join(words):
            raise InputError(
                f"external generator '{name}': the command must name its output file with the "
                "placeholder {out} (and take {theta}, {n}, {seed})"
            )
        if output not in ("npz", "csv"):
            raise InputError(
                f"external generator '{name}': output must be npz or csv, not {output!r}"
            )
        self.command, self.output = words, output
        self.cwd = None if cwd is None else str(cwd)
        self.timeout = float(timeout)
        self.declare(name, param_names, channels, event_dim, reference_counts)
        super().__init__(prior_low, prior_high, x_low, x_high, truth)

    def _generate(self, theta: np.ndarray, n: int, seed: int) -> Generated:
        with tempfile.TemporaryDirectory(prefix="surrogate-zoo-gen-") as tmp:
            out = Path(tmp) / f"events.{self.output}"
            values = {
                "theta": ",".join(repr(float(v)) for v in theta),
                "n": str(n),
                "seed": str(seed),
                "out": str(out),
            }
            argv = [w.format(**values) for w in self.command]
            try:
                proc = subprocess.run(  # noqa: S603 - the user's own program, no shell
                    argv, cwd=self.cwd, capture_output=True, text=True, timeout=self.timeout
                )
            except FileNotFoundError:
                raise InputError(
                    f"external generator '{self.name}': program '{argv[0]}' not found; give its "
                    "path in the command"
                ) from None
            except subprocess.TimeoutExpired:
                raise InputError(
                    f"external generator '{self.name}' ran past {self.timeout:g} s on one call"
                ) from None
            if proc.returncode != 0:
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
                raise InputError(
                    f"external generator '{self.name}' exited with status {proc.returncode}: "
                    f"{tail[0][:200]}"
                )
            if not out.is_file():
                raise InputError(
                    f"external generator '{self.name}' wrote no file at {{out}}; it must write "
                    f"its events there as .{self.output}"
                )
            return self._read(out)

    def _read(self, path: Path) -> Generated:
        if self.output == "npz":
            try:
                with np.load(path, allow_pickle=False) as f:
                    events = [np.asarray(f[f"events_{c}"], dtype=float) for c in self.channels]
                    rates = np.asarray(f["rates"], dtype=float)
            except Exception as err:  # noqa: BLE001 - any malformed file: one message
                raise InputError(
                    f"external generator '{self.name}': its .npz needs arrays "
                    f"{', '.join('events_' + c for c in self.channels)} and rates ({err})"
                ) from None
            return Generated(events, rates)
        return _read_generated_csv(path, self)


def _read_generated_csv(path: Path, gen: EventGenerator) -> Generated:
    """A long CSV (``channel`` column: index or name; one column per event dimension) with a
    ``# rates: r1, r2`` comment line."""
    rates, rows, header = None, [], None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            key, _, value = line[1:].partition(":")
            if key.strip() == "rates":
                rates = [float(v) for v in value.split(",")]
        elif line.strip():
            if header is None:
                header = [h.strip() for h in line.split(",")]
            else:
                rows.append([v.strip() for v in line.split(",")])
    if header is None or "channel" not in header or rates is None:
        raise InputError(
            f"generator '{gen.name}': its CSV needs a header with a 'channel' column and a "
            "'# rates: r1, r2' comment line"
        )
    col = header.index("channel")
    names = {c: i for i, c in enumerate(gen.channels)}
    try:
        labels = [names[r[col]] if r[col] in names else int(r[col]) for r in rows]
        body = np.array([[float(v) for j, v in enumerate(r) if j != col] for r in rows])
    except (ValueError, IndexError):
        raise InputError(f"generator '{gen.name}': its CSV rows must be numbers") from None
    body = body.reshape(len(rows), len(header) - 1)
    lab = np.asarray(labels)
    return Generated([body[lab == k] for k in range(gen.n_channels)], np.asarray(rates))


DetectorFn = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]


class TheoryGenerator(EventGenerator):
    """A density theory sampled exactly, then a non-differentiable event-by-event detector.

    The package sees only the events and the rates, as with any generator: the theory's norms
    times the detector's kept fraction. Without a detector it is the theory's exact sampler.

    Args:
        theory: the density theory.
        detector: ``detector(events (m, d), channel, rng) → kept events (k, d)``: smearing,
            efficiency, acceptance; None keeps every event.
        name: the generator's name (default: the theory's, with "+detector" when there is one).
        batch: true events drawn per pass while filling n kept events; the rates' Monte Carlo
            error falls as 1/√batch (a generator's rates are estimates, as a real one's are).
    """

    def __init__(
        self,
        theory: Theory,
        detector: DetectorFn | None = None,
        name: str | None = None,
        batch: int = 4096,
    ) -> None:
        self.theory, self.detector, self.batch = theory, detector, batch
        name = name or (theory.name if detector is None else f"{theory.name}+detector")
        self.declare(
            name, theory.param_names, theory.channels, theory.event_dim, theory.reference_counts
        )
        truth = None if theory.truth is None else theory.truth.tolist()
        super().__init__(
            theory.prior_low.tolist(),
            theory.prior_high.tolist(),
            theory.x_low.tolist(),
            theory.x_high.tolist(),
            truth,
        )
        sampler = InverseCDFSampler if theory.event_dim == 1 else MetropolisSampler
        self.sampler = sampler(theory)

    def _generate(self, theta: np.ndarray, n: int, seed: int) -> Generated:
        rng = np.random.default_rng(seed)
        gen = torch.Generator().manual_seed(int(rng.integers(2**62)))
        th = torch.as_tensor(theta, dtype=self.theory.dtype).unsqueeze(0)
        with torch.no_grad():
            norms = self.theory.checked_norms(th)[0].numpy()
        events, rates = [], []
        for c in range(self.n_channels):
            kept, made, have = [], 0, 0
            while have < n:
                m = n if self.detector is None else max(self.batch, 2 * (n - have))
                with torch.no_grad():
                    ev = self.sampler.sample(
                        th, [m if k == c else 1 for k in range(self.n_channels)], generator=gen
                    )
                x = ev[c][0].numpy()
                made += m
                if self.detector is not None:
                    what = f"the detector of generator '{self.name}'"
                    where = f"θ = {theta.tolist()}, channel {self.channels[c]}"
                    x = call_user_code(self.detector, what, where, x, c, rng)
                    x = np.asarray(x, dtype=float).reshape(-1, self.event_dim)
                kept.append(x)
                have += len(x)
                if made > 1000 * n and have == 0:
                    raise InputError(
                        f"generator '{self.name}': the detector kept no event of channel "
                        f"{self.channels[c]} in {made} at θ = {theta.tolist()}"
                    )
            events.append(np.concatenate(kept)[:n])
            rates.append(norms[c] * have / made)
        return Generated(events, np.asarray(rates))

    def describe(self) -> dict:
        return super().describe() | {"detector": self.detector is not None}


def proxy_smeared() -> TheoryGenerator:
    """The proxy theory seen through a detector written as an event-by-event simulation
    (efficiency ε(x) = 0.9 − 0.3 (x − 0.1) of the true x, Gaussian smearing σ = 0.02, events
    leaving [0.1, 1) lost): the package's test of a module-2 that gives events only."""
    theory = ProxyTheory()
    return TheoryGenerator(theory, SmearingDetector(theory), name="proxy-smeared")


THEORIES["proxy-smeared"] = proxy_smeared


# ----------------------------------------------------------------------------- plug-in cards
# The card forms that are event generators (surrogates/theory/card.py reads the card; it sits
# below this layer, so this module hands it the builders).


def _card_generator(card: Card, theory: Theory | None) -> CallableGenerator:
    """``generator = "file.py:function"`` (+ ``rates``)."""
    rates = load_function(card, "rates") if card.rates is not None else None
    return CallableGenerator(load_function(card, "generator"), rates=rates, **card.declaration())


def _card_command(card: Card, theory: Theory | None) -> ExternalGenerator:
    """``command = [...]``: run in the card's folder."""
    return ExternalGenerator(
        list(card.command or ()), output=card.output, cwd=card.path.parent, **card.declaration()
    )


def _card_detector(card: Card, theory: Theory | None) -> TheoryGenerator:
    """``density`` + ``detector``: the density's exact sampler, then the user's detector."""
    assert theory is not None
    return TheoryGenerator(theory, load_function(card, "detector"), name=card.name)


CARD_FORMS.update(generator=_card_generator, command=_card_command, detector=_card_detector)
