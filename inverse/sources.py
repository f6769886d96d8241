"""The EventSource the outer GAN draws from (exact theory, a surrogate, an ensemble) and the
detector the data went through, each checked against the data's theory."""

from __future__ import annotations

import numpy as np
import torch

from surrogates.data import ObservedData, event_sampler
from surrogates.detector import make_detector
from surrogates.errors import InputError
from surrogates.theory import Theory
from surrogates.types import EventSource

__all__ = ["make_source", "check_detector"]


def make_source(spec: str, theory: Theory) -> EventSource:
    """The EventSource named by ``spec`` for data of ``theory``, or an InputError saying why not."""
    if spec == "exact":
        if not theory.has_density:
            raise InputError(
                f"'{theory.name}' is an event generator (no density, no gradients), so "
                "--source exact cannot drive the GAN; train a surrogate on its events "
                f"(python -m surrogates.fit flow --config surrogates/flow-events.yaml "
                f"--data.theory {_theory_arg(theory)}) and pass its checkpoint as --source"
            )
        if not theory.differentiable:
            raise InputError(
                f"theory '{theory.name}' has no gradients, so --source exact cannot drive the GAN; "
                "train a surrogate (python -m surrogates.fit flow --data.theory "
                f"{_theory_arg(theory)}) and pass its checkpoint as --source"
            )
        return event_sampler(theory)
    if "," in spec:  # an ensemble: every member checked like a single surrogate
        from surrogates.ensemble import Ensemble, member_names

        specs = [s.strip() for s in spec.split(",") if s.strip()]
        members = [make_source(s, theory) for s in specs]
        if any(not isinstance(m, torch.nn.Module) for m in members):
            raise InputError("an ensemble source takes surrogates only, not 'exact'")
        return Ensemble(members, names=member_names(specs)).requires_grad_(False)
    from surrogates.zoo import card_of, load_surrogate, resolve_checkpoint

    info = card_of(resolve_checkpoint(spec)).get("theory", {})
    if info.get("theory") == theory.name and info.get("prior_low") is not None:
        lo, hi = np.asarray(info["prior_low"]), np.asarray(info["prior_high"])
        need_lo, need_hi = theory.prior_low.numpy(), theory.prior_high.numpy()
        narrow = (lo > need_lo + 1e-9) | (hi < need_hi - 1e-9)
        if narrow.any():
            j = int(np.flatnonzero(narrow)[0])
            raise InputError(
                f"surrogate '{spec}' was trained on {theory.param_names[j]} in "
                f"[{lo[j]:g}, {hi[j]:g}], narrower than the prior [{need_lo[j]:g}, "
                f"{need_hi[j]:g}] the data's theory needs; retrain it on the full box"
            )
    model = load_surrogate(spec, theory)
    model.requires_grad_(False)
    return model


def check_detector(spec: dict | None, theory: Theory, data: ObservedData):  # noqa: ANN201
    """The config's detector, checked against the one the data were simulated through (if known)."""
    detector = make_detector(spec, theory)
    if "detector" not in data.meta:  # data from elsewhere: the config says what the detector is
        return detector
    simulated = data.meta["detector"]
    have = None if detector is None else detector.describe()
    if simulated != have:
        what = "no detector" if simulated is None else f"detector {simulated}"
        config = "no detector" if have is None else f"detector {have}"
        raise InputError(
            f"the events were simulated with {what}, but the config has {config}; "
            "set the config's detector block to the data's settings"
        )
    return detector


def _theory_arg(theory: Theory) -> str:
    """How a command names ``theory``: a card's path (its name resolves only where it was
    loaded), else its name."""
    return getattr(theory, "card", None) or theory.name
