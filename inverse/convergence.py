"""When the outer GAN has settled: a stopping rule judged against the estimate's own noise.

The fixed schedule (``steps`` generator updates, cosine decay over all of them) spends most of
its steps on a trace that has long stopped moving. `SettleRule` watches the recorded trace of
every replica's θ, in units of the data's Fisher σ (the one the generator's steps are scaled
with), over two adjacent windows of ``window`` trace points. The replicas are independent fits
driven by the same kind of noise, so each replica's move between the two window means splits,
across replicas, into a common move (the fit still going somewhere) and a spread (the noise of a
window mean, however long the trace's correlation time: batch means on one replica's trace
underestimated it 2–10× on the proxy, docs/notes/2026-12-01-convergence.md). The trace has
settled when, at ``patience`` checks in a row,

- every parameter's common move is below ``k`` standard errors (spread/√R), or below
  ``tolerance`` σ (negligible whatever its error: a parameter pinned at a face of the box creeps
  with almost no noise), and
- so is the change of the replicas' widths (the fit's σ still growing or shrinking).

Then the learning rates are annealed over ``anneal`` further steps (`AnnealSchedule`) and the run
stops once the test passes again with each window mean known to better than ``precision`` σ.
The rule is a pure function of the trace: unit-tested on synthetic traces
(tests/test_convergence.py) and measured on the proxy in benchmarks/convergence.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["SettleCheck", "SettleRule", "AnnealSchedule", "window_moves"]


@dataclass
class SettleCheck:
    """One evaluation of the rule: whether it passed, and the numbers it was judged on."""

    passed: bool
    drift: float  # the largest common move / its allowance (k standard errors, ≥ tolerance)
    error: float  # the largest noise of one replica's window mean (σ units)


def window_moves(trace: np.ndarray, window: int, lag: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Each replica's mean over the last ``window`` points and its move from the window that
    starts ``lag`` windows earlier, ((R, P), (R, P)), from a trace (n ≥ (lag + 1) × window, R, P)."""
    new = trace[-window:].mean(0)
    old = trace[-(lag + 1) * window : len(trace) - lag * window].mean(0)
    return new, new - old


@dataclass
class SettleRule:
    """The settle test on a growing trace (see the module docstring).

    The replicas are independent fits (own generator, own discriminators) driven by the same
    kind of noise, so their spread measures the noise of a window mean, however long the
    trace's correlation time: a replica's move between two windows, across the R replicas, has
    a common part (drift: all replicas still going somewhere) and a spread (noise). The trace
    has settled when the common move of every parameter is below ``k`` × its standard error
    (spread/√R) or below ``tolerance`` σ, and so is the change of the replicas' spread (their
    widths, σ of the fit, still growing or shrinking; the log ratio of the two windows' summed
    squared distances from the replicas' mean, its error by the jackknife over replicas).

    Args:
        window: trace points per window (each ``gan.trace_every`` generator steps apart).
        k: a move below k standard errors counts as noise.
        tolerance: a move below this many σ is negligible whatever its error.
        precision: to stop (`check` with ``final``), a replica's window mean must be known to
            better than this many σ (its noise: the spread of the moves / √2).
        patience: checks in a row that must pass.
        lag: compare the last window with the one ``lag`` windows before it (a slow drift
            grows with the distance, the noise of two window means does not, once they are
            further apart than the trace's correlation time).
    """

    window: int = 20
    k: float = 3.0
    tolerance: float = 0.05
    precision: float = 0.1
    patience: int = 3
    lag: int = 1

    def check(
        self, trace: np.ndarray, sigma: np.ndarray, final: bool = False
    ) -> SettleCheck | None:
        """The test on the last (lag + 1) × window points of ``trace`` (n, R, P) in units ``sigma`` (P,);
        None while too short or with fewer than 3 replicas. ``final``: also the precision."""
        trace = np.asarray(trace, dtype=float) / np.asarray(sigma, dtype=float)
        n, r = trace.shape[:2]
        if n < (self.lag + 1) * self.window or r < 3:
            return None
        new, move = window_moves(trace, self.window, self.lag)
        spread = move.std(0, ddof=1)  # (P,) noise of one replica's move
        common = np.abs(move.mean(0))
        se = spread / np.sqrt(r)
        # the widths: the log ratio of the replicas' summed squared distances from their mean in
        # the two windows, its error by the jackknife over replicas (the same replicas in both
        # windows: a common growth is far better known than either width)
        a = (new - new.mean(0)) ** 2
        b = ((new - move) - (new - move).mean(0)) ** 2
        tiny = 1e-24
        g = 0.5 * np.log((a.sum(0) + tiny) / (b.sum(0) + tiny))
        g_i = 0.5 * np.log((a.sum(0) - a + tiny) / (b.sum(0) - b + tiny))  # (R, P) leave one out
        se_g = np.sqrt((r - 1) / r * ((g_i - g_i.mean(0)) ** 2).sum(0))
        width = np.sqrt(a.mean(0))  # σ units: a relative change of the width times the width
        d_width, se_width = np.abs(g) * width, se_g * width
        allowed = np.maximum(self.k * se, self.tolerance)
        allowed_width = np.maximum(self.k * se_width, self.tolerance)
        drift = float(max(np.max(common / allowed), np.max(d_width / allowed_width)))
        error = float(np.max(spread / np.sqrt(2)))
        passed = drift < 1 and (not final or error < self.precision)
        return SettleCheck(passed, drift, error)

    def settled_at(self, trace: np.ndarray, sigma: np.ndarray, start: int = 0) -> int | None:
        """The first trace index ≥ ``start`` at which ``patience`` checks in a row have passed
        (checking after every point, as a run does), or None."""
        run = 0
        for n in range(max(start, 1), len(trace) + 1):
            result = self.check(trace[:n], sigma)
            run = run + 1 if result is not None and result.passed else 0
            if run >= self.patience:
                return n - 1
        return None


@dataclass
class AnnealSchedule:
    """The learning-rate factor per generator step: cosine from 1 to ``floor`` over ``steps``;
    once `start_anneal` is called at step a, cosine from the factor reached at a down to
    ``floor`` over ``anneal`` steps (then ``floor``). The schedule of a run that never settles
    is the fixed one."""

    steps: int
    floor: float
    anneal: int
    anneal_from: int | None = None

    def base(self, step: int) -> float:
        c = 0.5 * (1 + math.cos(math.pi * min(step / self.steps, 1.0)))
        return self.floor + (1 - self.floor) * c

    def __call__(self, step: int) -> float:
        if self.anneal_from is None:
            return self.base(step)
        top = self.base(self.anneal_from)
        c = 0.5 * (1 + math.cos(math.pi * min((step - self.anneal_from) / self.anneal, 1.0)))
        return self.floor + (top - self.floor) * c

    def start_anneal(self, step: int) -> int:
        """Anneal from ``step``; returns the step after which the run stops."""
        self.anneal_from = step
        return self.end

    @property
    def end(self) -> int | None:
        """The last step of the anneal (None before it started)."""
        return None if self.anneal_from is None else self.anneal_from + self.anneal
