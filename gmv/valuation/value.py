"""The paper's value: Eq. 5 (credit of a generated point to its K matches) and Eq. 6 (sum of credits).

Eq. 5:  V(x_i, x̂_j) = exp(−d_ij/τ) / Σ_{i'∈P_j} exp(−d_i'j/τ)   for x_i ∈ P_j, else 0
        (τ = 1 is the paper; a softmax over each row of the m×K distance table, computed with the
        log-sum-exp shift so that 4096-d distances of several hundred do not underflow to 0/0).
Eq. 6:  φ_i = Σ_j V(x_i, x̂_j)   (a scatter-add of the credits onto the training indices).

Every generated point hands out exactly 1, so Σ_i φ_i = m.
"""

from __future__ import annotations

import numpy as np

from gmv.errors import GmvError


def credit(distances: np.ndarray, tau: float = 1.0, valid: np.ndarray | None = None) -> np.ndarray:
    """Eq. 5 on an m×K distance table → m×K credits, each row summing to 1 over valid entries."""
    if tau <= 0:
        raise GmvError(f"temperature tau must be > 0, got {tau}")
    d = np.asarray(distances, dtype=np.float64)
    valid = np.isfinite(d) if valid is None else (valid & np.isfinite(d))
    empty = ~valid.any(axis=1)
    if empty.any():
        raise GmvError(f"{int(empty.sum())} generated points have no match at all; "
                       "raise nprobe (ivfpq) or use another matcher")
    logits = np.where(valid, -d / tau, -np.inf)
    logits -= logits.max(axis=1, keepdims=True)  # log-sum-exp shift: the nearest match has logit 0
    w = np.exp(logits)
    return w / w.sum(axis=1, keepdims=True)


def values_from_credit(indices: np.ndarray, weights: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 6: (φ of every pool point, how many generated points matched it)."""
    idx = np.asarray(indices).ravel()
    w = np.asarray(weights).ravel()
    keep = idx >= 0
    values = np.bincount(idx[keep], weights=w[keep], minlength=n)
    n_matches = np.bincount(idx[keep], minlength=n)
    return values, n_matches


def values_from_matches(distances: np.ndarray, indices: np.ndarray, n: int, tau: float = 1.0):
    """Eq. 5 then Eq. 6: (values, n_matches, credits)."""
    w = credit(distances, tau, valid=np.asarray(indices) >= 0)
    values, n_matches = values_from_credit(indices, w, n)
    return values, n_matches, w
