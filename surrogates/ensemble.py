"""`Ensemble`: several trained surrogates of one theory as one EventSource, with their spread.

A single best model hides how much its answer depends on the training run; an ensemble of good
models (the top-k of a hyperparameter search, or any list of checkpoints) shows it. As an
EventSource the ensemble is the equal-weight **mixture** of its members: ``sample`` draws n/M
events from each of the M members (reparameterized, so differentiable in θ as each member is),
``norms`` is the members' mean, ``log_prob`` the mixture density where every member has one.
`Ensemble.spread` separates the members' disagreement (epistemic) from the sampling noise of the
same statistic (aleatoric).

In the outer GAN (`inverse.fit` with ``--source a.ckpt,b.ckpt,c.ckpt``) the data replicas draw
from the members in turn (``members=`` of `sample` and `norms`): replica 0 (the data) from the mixture, replica r ≥ 1 from
member (r − 1) mod M, so that the replica spread holds both the data's statistical uncertainty
and the surrogates' disagreement, and a one-way analysis of variance splits the two
(`surrogate_share`).

    >>> from surrogates.models import FlowSurrogate
    >>> ens = Ensemble([FlowSurrogate(transforms=1, bins=4, hidden=(8, 8)) for _ in range(3)])
    >>> theta = ens.prior_low + 0.5 * (ens.prior_high - ens.prior_low)
    >>> [e.shape for e in ens.sample(theta, 10)]
    [torch.Size([1, 10, 1]), torch.Size([1, 10, 1])]
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from surrogates.errors import InputError

__all__ = ["Ensemble", "member_names", "surrogate_share"]


class Ensemble(nn.Module):
    """An equal-weight mixture of surrogates of one theory and prior box (an EventSource)."""

    def __init__(self, members: Sequence[nn.Module], names: Sequence[str] | None = None) -> None:
        super().__init__()
        if len(members) < 2:
            raise InputError(f"an ensemble needs at least 2 members, got {len(members)}")
        first = members[0]
        for i, m in enumerate(members[1:], start=1):
            for key in ("theory_name", "channels", "param_names"):
                if getattr(m, key) != getattr(first, key):
                    raise InputError(
                        f"ensemble member {i} has {key} {getattr(m, key)!r}, member 0 "
                        f"{getattr(first, key)!r}: members must be surrogates of one theory"
                    )
            for key in ("prior_low", "prior_high", "x_low", "x_high"):
                if not torch.allclose(getattr(m, key), getattr(first, key)):
                    raise InputError(
                        f"ensemble member {i} was trained on another {key} than member 0; "
                        "members must share the prior box and x range"
                    )
        self.members = nn.ModuleList(members)
        self.names = list(names) if names else [f"member{i}" for i in range(len(members))]
        self.theory_name, self.channels = first.theory_name, first.channels
        self.param_names, self.event_dim = first.param_names, first.event_dim
        for key in ("prior_low", "prior_high", "x_low", "x_high"):
            self.register_buffer(key, getattr(first, key).clone())
        self.family = "ensemble"

    is_exact = False

    @property
    def has_density(self) -> bool:
        """A mixture has a density when every member has one."""
        return all(m.has_density for m in self.members)

    @classmethod
    def load(cls, specs: Sequence[str | Path], theory: str | None = None) -> Ensemble:
        """Members from checkpoint paths or shipped names (see `surrogates.zoo.load_surrogate`)."""
        from surrogates.zoo import load_surrogate

        members = [load_surrogate(s, theory) for s in specs]
        return cls(members, names=member_names(specs))

    @classmethod
    def from_search(cls, search_dir: str | Path, k: int = 3, theory: str | None = None) -> Ensemble:
        """The top-k evaluations of a `surrogates.hpo` search (by its objective)."""
        import csv

        if k < 2:
            raise InputError(f"an ensemble needs at least 2 members, k = {k} asked for")
        path = Path(search_dir) / "results.csv"
        if not path.is_file():
            raise InputError(
                f"no {path}: run `python -m surrogates.hpo ... --out {search_dir}` first"
            )
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if _is_number(r.get("objective"))]
        rows.sort(key=lambda r: float(r["objective"]), reverse=True)
        ckpts = []
        for r in rows:
            ckpt = Path(r.get("m:run_dir", "")) / "checkpoints" / "best.ckpt"
            if ckpt.is_file():
                ckpts.append(ckpt)
            if len(ckpts) == k:
                break
        if len(ckpts) < max(k, 2):
            raise InputError(
                f"{path} has {len(ckpts)} finished evaluations with a checkpoint, {k} asked for"
            )
        return cls.load(ckpts, theory)

    @property
    def n_members(self) -> int:
        return len(self.members)

    def _row_members(self, b: int, members: Sequence[int] | None) -> list[int]:
        """The member of each of b θ rows (−1: the mixture); None: every row from the mixture."""
        if members is None:
            return [-1] * b
        rows = [int(r) for r in members]
        if len(rows) != b or any(not -1 <= r < self.n_members for r in rows):
            raise InputError(
                f"members must give one member index in [-1, {self.n_members - 1}] per θ row "
                f"({b} rows), got {list(members)}"
            )
        return rows

    def _counts(self, n: int) -> list[int]:
        m = self.n_members
        return [n // m + (1 if i < n % m else 0) for i in range(m)]

    def sample(
        self,
        theta: Tensor,
        n: int,
        generator: torch.Generator | None = None,
        members: Sequence[int] | None = None,
    ) -> list[Tensor]:
        """n events per channel and θ row: the mixture, or the member that ``members`` gives the
        row (one index per row; −1: the mixture)."""
        if not isinstance(n, (int, np.integer)):
            raise InputError("an ensemble samples the same number of events in every channel")
        theta = theta if theta.dim() == 2 else theta.unsqueeze(0)
        rows = self._row_members(theta.shape[0], members)
        if all(r < 0 for r in rows):
            return self._mixture(theta, n, generator)
        # rows grouped by member: one batched call per member, scattered back into row order
        out: list[Tensor | None] = [None] * len(self.channels)
        for r in sorted(set(rows)):
            idx = [b for b, rb in enumerate(rows) if rb == r]
            sub = theta[idx]
            if r < 0:
                events = self._mixture(sub, n, generator)
            else:
                events = self.members[r].sample(sub, n, generator=generator)
            for c, e in enumerate(events):
                if out[c] is None:
                    out[c] = e.new_empty((theta.shape[0], *e.shape[1:]))
                out[c] = out[c].index_copy(0, torch.as_tensor(idx, device=e.device), e)
        return out

    def _mixture(self, theta: Tensor, n: int, generator: torch.Generator | None) -> list[Tensor]:
        """Every row from the mixture: n/M events from each member."""
        parts = [
            m.sample(theta, k, generator=generator)
            for m, k in zip(self.members, self._counts(n), strict=True)
            if k > 0
        ]
        return [torch.cat([p[c] for p in parts], dim=1) for c in range(len(self.channels))]

    def member_norms(self, theta: Tensor) -> Tensor:
        """(M, B, C) each member's ∫σ_c."""
        return torch.stack([m.norms(theta) for m in self.members])

    def norms(self, theta: Tensor, members: Sequence[int] | None = None) -> Tensor:
        """(B, C) ∫σ_c: the members' mean, or per row the member ``members`` gives it."""
        theta = theta if theta.dim() == 2 else theta.unsqueeze(0)
        per = self.member_norms(theta)
        rows = self._row_members(theta.shape[0], members)
        if all(r < 0 for r in rows):
            return per.mean(0)
        pick = [per[:, b].mean(0) if r < 0 else per[r, b] for b, r in enumerate(rows)]
        return torch.stack(pick)

    def log_prob(self, x: Tensor, theta: Tensor) -> Tensor:
        """The mixture's log density, log(1/M Σ_m p_m(x | θ)), (B, C, n) like a member's."""
        if not self.has_density:
            raise InputError("log_prob needs a density from every member (flows and VAIM have one)")
        per = torch.stack([m.log_prob(x, theta) for m in self.members])
        return torch.logsumexp(per, 0) - np.log(self.n_members)

    @torch.no_grad()
    def spread(self, theta: Tensor, n: int = 100_000, seed: int = 0) -> dict[str, np.ndarray]:
        """Epistemic against aleatoric spread of each channel's mean x and norm at θ (B, P).

        ``mean_x_epistemic``: standard deviation of the members' mean x (n events each);
        ``mean_x_aleatoric``: the sampling error of one such mean (σ_x/√n), the noise floor of the
        first; ``norm_epistemic``: the members' relative standard deviation of ∫σ_c (the norms
        are regressions, with no sampling noise). Arrays are (B, C).
        """
        theta = theta if theta.dim() == 2 else theta.unsqueeze(0)
        gen = torch.Generator().manual_seed(seed)
        means, sds = [], []
        for m in self.members:
            ev = m.sample(theta, n, generator=gen)
            means.append(torch.stack([e[..., 0].double().mean(-1) for e in ev], -1))
            sds.append(torch.stack([e[..., 0].double().std(-1) for e in ev], -1))
        means, sds = torch.stack(means), torch.stack(sds)  # (M, B, C)
        norms = self.member_norms(theta).double()
        return {
            "mean_x_epistemic": means.std(0).numpy(),
            "mean_x_aleatoric": (sds.mean(0) / np.sqrt(n)).numpy(),
            "norm_epistemic": (norms.std(0) / norms.mean(0)).numpy(),
        }


def member_names(specs: Sequence[str | Path]) -> list[str]:
    """Short names for checkpoints: the file stem, or the run directory for ``RUN/checkpoints/X.ckpt``.

    >>> member_names(["flow-zuko", "runs/a/checkpoints/best.ckpt", "runs/b/checkpoints/best.ckpt"])
    ['flow-zuko', 'a', 'b']
    """
    paths = [Path(str(s)) for s in specs]
    stems = [p.stem for p in paths]
    return [
        p.parent.parent.name
        if stems.count(p.stem) > 1 and p.parent.name == "checkpoints"
        else p.stem
        for p in paths
    ]


def surrogate_share(theta: np.ndarray, groups: Sequence[int]) -> dict[str, np.ndarray]:
    """Split the spread of replica estimates θ (R, P) drawn through different members.

    One-way random-effects analysis of variance with the member as the group: the within-member
    variance is the data's statistical part, the between-member variance of the group means minus
    its statistical share (within / group size) is the surrogates' part (floored at 0). Returns
    ``surrogate_std``, ``statistical_std`` and ``surrogate_share`` = surrogate variance / total,
    per parameter.
    """
    theta, groups = np.asarray(theta, float), np.asarray(groups)
    labels = np.unique(groups)
    if len(labels) < 2 or any((groups == g).sum() < 2 for g in labels):
        raise ValueError("need at least 2 members with at least 2 replicas each")
    sizes = np.array([(groups == g).sum() for g in labels])
    means = np.stack([theta[groups == g].mean(0) for g in labels])
    within = sum(((theta[groups == g] - means[i]) ** 2).sum(0) for i, g in enumerate(labels))
    within = within / (len(theta) - len(labels))
    n0 = (sizes.sum() - (sizes**2).sum() / sizes.sum()) / (len(labels) - 1)
    between = ((sizes[:, None] * (means - theta.mean(0)) ** 2).sum(0)) / (len(labels) - 1)
    surrogate = np.maximum((between - within) / n0, 0.0)
    return {
        "surrogate_std": np.sqrt(surrogate),
        "statistical_std": np.sqrt(within),
        "surrogate_share": np.divide(
            surrogate,
            surrogate + within,
            out=np.zeros_like(surrogate),
            where=surrogate + within > 0,
        ),
    }


def _is_number(v: object) -> bool:
    try:
        return np.isfinite(float(v))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
