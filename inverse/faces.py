"""θ and σ of the outer GAN for a parameter whose likelihood the prior box cuts.

The GAN's σ is the spread of its bootstrap replicas, each a maximum of its replica's likelihood
inside the box. Where the likelihood keeps rising towards a face of the box, every replica ends at
that face and the spread collapses (in a case-B study, σ 0.04 against an exact posterior σ of
0.65): the bootstrap of a constrained maximum says on which side the likelihood's maximum lies,
not how wide the posterior is. For such a parameter the GAN reports instead the mean and σ of the
Gaussian that starts at the face with the width of the data's Fisher information, cut by the box
(the flat-prior posterior of a likelihood whose maximum is on the face). Parameters whose
replicas do not pile up at a face keep the replicas' mean and spread unchanged.

How the rule and its two constants were chosen (on 70 case-B pseudo-experiments, then checked on
others): docs/notes/2026-12-01-faces.md.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import truncnorm

__all__ = ["FACE_NEAR", "FACE_SHARE", "cut_by_box"]

# a bootstrap replica within FACE_NEAR Fisher σ of a face is at that face; a parameter with at
# least FACE_SHARE of its bootstrap replicas at one face is cut there
FACE_NEAR = 0.25
FACE_SHARE = 0.5


def cut_by_box(
    boot: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    sigma: np.ndarray,
    low: np.ndarray,
    high: np.ndarray,
    near: float = FACE_NEAR,
    share: float = FACE_SHARE,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Mean and σ per parameter with the parameters cut by the box replaced (see the module).

    Args:
        boot: (R, P) the bootstrap replicas' θ.
        mean, std: (P,) the GAN's θ (the data replicas' mean) and the replicas' spread.
        sigma: (P,) the data's Fisher σ per parameter at ``mean`` (the Cramér–Rao σ).
        low, high: (P,) the prior box.
        near, share: a parameter is cut when at least ``share`` of its replicas lie within
            ``near`` σ of one face.

    Returns:
        The mean and σ to report (copies) and, per cut parameter index, what was found:
        the face, the share of replicas at it, σ, and the replicas' own mean and spread.
    """
    boot, mean, std, sigma, low, high = (
        np.asarray(a, dtype=float) for a in (boot, mean, std, sigma, low, high)
    )
    out_mean, out_std = mean.copy(), std.copy()
    cut: dict[int, dict] = {}
    if boot.ndim != 2 or len(boot) < 2:
        return out_mean, out_std, cut
    for j in range(len(mean)):
        s = sigma[j]
        if not (np.isfinite(s) and s > 0):
            continue
        at_low = float(np.mean((boot[:, j] - low[j]) < near * s))
        at_high = float(np.mean((high[j] - boot[:, j]) < near * s))
        if max(at_low, at_high) < share:
            continue
        if at_high != at_low:
            face = high[j] if at_high > at_low else low[j]
        else:  # a σ wider than the box reaches both faces: the one the replicas are nearer
            face = high[j] if high[j] - mean[j] < mean[j] - low[j] else low[j]
        m, v = truncnorm.stats((low[j] - face) / s, (high[j] - face) / s, face, s, moments="mv")
        out_mean[j], out_std[j] = float(m), float(np.sqrt(v))
        cut[j] = {
            "face": float(face),
            "replicas_at_face": max(at_low, at_high),
            "fisher_sigma": float(s),
            "replicas_mean": float(mean[j]),
            "replicas_std": float(std[j]),
        }
    return out_mean, out_std, cut
