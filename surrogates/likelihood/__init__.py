"""The statistical yardstick both sides measure against: extended likelihood (unbinned, binned,
folded through a detector), Fisher information, the Cramér–Rao bound, maximum likelihood, the exact posterior (MCMC)."""

from surrogates.likelihood.binned import BinnedEvents, fit_binned_mle
from surrogates.likelihood.extended import (
    crb_std,
    fisher_information,
    fit_mle,
    negative_log_likelihood,
)
from surrogates.likelihood.folded import FoldedModel
from surrogates.likelihood.optimize import MLEResult, maximize, nll_excess
from surrogates.likelihood.posterior import Posterior, exact_posterior

__all__ = [
    "negative_log_likelihood",
    "fisher_information",
    "crb_std",
    "fit_mle",
    "nll_excess",
    "maximize",
    "fit_binned_mle",
    "BinnedEvents",
    "MLEResult",
    "FoldedModel",
    "Posterior",
    "exact_posterior",
]
