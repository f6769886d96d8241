"""The worked example's module-2: a Gaussian resonance on an exponentially falling background.

σ_c(m; θ) = b_c · bkg · exp(−k_c · slope · (m − 100) / 80) + s_c · mu · N(m; mass, width)

for m in the window [100, 180] GeV and the channels c = ee, mumu, which differ by fixed
acceptances: the background's scale b = (1, 0.7) and steepness k = (1, 1.3), the signal's
efficiency s = (1, 0.8). θ = (bkg, slope, mu, mass, width), as named in peak.toml.
"""

import math

import numpy as np
import torch

LOW, HIGH = 100.0, 180.0
BKG_SCALE = (1.0, 0.7)
BKG_STEEPNESS = (1.0, 1.3)
SIGNAL_EFFICIENCY = (1.0, 0.8)


def density(x: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """σ per channel: x (B, n, 1) in GeV, θ (B, 5) → (B, 2, n); torch, so differentiable."""
    bkg, slope, mu, mass, width = (theta[:, i : i + 1] for i in range(5))
    m = x[..., 0]
    t = (m - LOW) / (HIGH - LOW)
    gauss = torch.exp(-0.5 * ((m - mass) / width) ** 2) / (width * math.sqrt(2 * math.pi))
    channels = [
        b * bkg * torch.exp(-k * slope * t) + s * mu * gauss
        for b, k, s in zip(BKG_SCALE, BKG_STEEPNESS, SIGNAL_EFFICIENCY)
    ]
    return torch.stack(channels, dim=1)


def norms(theta: np.ndarray) -> np.ndarray:
    """∫σ_c dm over the window in closed form, θ (B, 5) → (B, 2): a check of the quadrature."""
    from scipy.special import ndtr

    bkg, slope, mu, mass, width = np.atleast_2d(theta).T
    inside = ndtr((HIGH - mass) / width) - ndtr((LOW - mass) / width)
    out = []
    for b, k, s in zip(BKG_SCALE, BKG_STEEPNESS, SIGNAL_EFFICIENCY):
        rate = k * slope
        out.append(b * bkg * (HIGH - LOW) * -np.expm1(-rate) / rate + s * mu * inside)
    return np.stack(out, axis=1)
