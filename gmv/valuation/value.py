"""The paper's value: Eq. 5 (credit of a generated point to its K matches) and Eq. 6 (sum of credits).

Eq. 5:  V(x_i, x̂_j) = exp(−d_ij/τ) / Σ_{i'∈P_j} exp(−d_i'j/τ)   for x_i ∈ P_j, else 0
        (a softmax over each row of the m×K distance table, computed with the log-sum-exp shift so
        that 4096-d distances of several hundred do not underflow to 0/0).
Eq. 6:  φ_i = Σ_j V(x_i, x̂_j)   (a scatter-add of the credits onto the training indices).

Every generated point hands out exactly 1, so Σ_i φ_i = m.

The temperature τ. A number is used as given (τ = 1 is the paper). But τ = 1 means different things
in different embeddings: on the paper's VGG-16 fc7 features neighbour distances are in the hundreds
and their gaps in the units, so exp(−d) hands nearly all of a generated point's credit to its nearest
match; on a 64-d ResNet-20 embedding (d₁ ≈ 2.3, d₁₀ − d₁ ≈ 0.55) the same τ = 1 gives the nearest
match 0.14 of the credit (uniform: 0.10) and the value degenerates into a match count. `tau="auto"`
restores the paper's sharpness on any embedding: it is the τ at which the nearest match receives, on
average over the generated points, `target_top_credit` of the credit (default 0.9 — nearly one-hot,
as in the paper's setting, while the other K − 1 matches keep a share). It is found by bisection on
log τ (the mean top credit falls monotonically from 1 to 1/K as τ grows) and is homogeneous in the
distances: multiplying every embedding by c multiplies d and τ alike (c² for squared distances), so
the credits and values do not change. `credit_sharpness` reports the mean top credit and the
effective number of credited neighbours exp(H), H = −Σ_k V_k log V_k, averaged over generated points.
"""

from __future__ import annotations

import math

import numpy as np

from gmv.errors import GmvError

#: the default mean credit of the nearest match under tau = "auto"
TARGET_TOP_CREDIT = 0.9
#: tables larger than this many entries are processed in row chunks (smaller ones in one piece, as always)
CHUNK_ENTRIES = 1 << 22


def check_tau(tau) -> float | str:
    """`tau` as a positive float or the string "auto"; anything else is a clear error."""
    if isinstance(tau, str):
        if tau.strip().lower() == "auto":
            return "auto"
        try:
            tau = float(tau)
        except ValueError:
            raise GmvError(f"temperature tau must be a number > 0 or 'auto', got {tau!r}") from None
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not math.isfinite(tau) or tau <= 0:
        raise GmvError(f"temperature tau must be a number > 0 or 'auto', got {tau!r}")
    return float(tau)


def check_target(target: float) -> float:
    if not isinstance(target, (int, float)) or not 0.0 < float(target) < 1.0:
        raise GmvError(f"target_top_credit must lie strictly between 0 and 1, got {target!r}")
    return float(target)


def _valid(distances: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    d = np.asarray(distances, dtype=np.float64)
    ok = np.isfinite(d) if valid is None else (np.asarray(valid) & np.isfinite(d))
    empty = ~ok.any(axis=1)
    if empty.any():
        raise GmvError(f"{int(empty.sum())} generated points have no match at all; "
                       "raise nprobe (ivfpq) or use another matcher")
    return ok


def _softmax_rows(d: np.ndarray, valid: np.ndarray, tau: float) -> np.ndarray:
    logits = np.where(valid, -d / tau, -np.inf)
    logits -= logits.max(axis=1, keepdims=True)  # log-sum-exp shift: the nearest match has logit 0
    w = np.exp(logits)
    return w / w.sum(axis=1, keepdims=True)


def credit(distances: np.ndarray, tau: float = 1.0, valid: np.ndarray | None = None) -> np.ndarray:
    """Eq. 5 on an m×K distance table → m×K credits, each row summing to 1 over valid entries.
    `tau` must be a number here; resolve "auto" first with :func:`auto_tau`."""
    tau = check_tau(tau)
    if tau == "auto":
        raise GmvError("credit() takes a numeric tau; resolve 'auto' with auto_tau(distances) first")
    d = np.asarray(distances, dtype=np.float64)
    ok = _valid(d, valid)
    if d.size <= CHUNK_ENTRIES:
        return _softmax_rows(d, ok, tau)
    out = np.empty(d.shape, np.float64)  # rows are independent: chunks bound the temporaries
    for lo in range(0, len(d), _rows_per_chunk(d.shape[1])):
        hi = lo + _rows_per_chunk(d.shape[1])
        out[lo:hi] = _softmax_rows(d[lo:hi], ok[lo:hi], tau)
    return out


def auto_tau(distances: np.ndarray, valid: np.ndarray | None = None,
             target_top_credit: float = TARGET_TOP_CREDIT) -> float:
    """The τ at which the nearest match gets, on average over generated points, `target_top_credit`
    of the credit (see the module docstring). Returns 1.0 when τ cannot matter (K = 1, or no row has
    two distinct valid distances)."""
    target = check_target(target_top_credit)
    d = np.asarray(distances, dtype=np.float64)
    ok = _valid(d, valid)
    d_min = np.where(ok, d, np.inf).min(axis=1)
    d_max = np.where(ok, d, -np.inf).max(axis=1)
    spread = d_max - d_min
    if d.shape[1] < 2 or not np.any(spread > 0):
        return 1.0
    n_valid = ok.sum(axis=1)
    floor = float(np.mean(1.0 / n_valid))  # the mean top credit as τ → ∞ (uniform over each row)
    if target <= floor:
        raise GmvError(f"target_top_credit {target} is at or below uniform credit ({floor:.3f} for these K); "
                       "choose a larger target or a larger K")

    def mean_top(tau: float) -> float:
        # = _softmax_rows(d, ok, tau).max(axis=1).mean(), bit for bit: after the shift the nearest match's
        # weight is exp(0) = 1, so each row's largest credit is 1 / (row sum), the same division
        logits = np.where(ok, -d / tau, -np.inf)
        logits -= logits.max(axis=1, keepdims=True)
        return float((1.0 / np.exp(logits, out=logits).sum(axis=1)).mean())

    scale = float(np.median(spread[spread > 0]))
    lo, hi = math.log(scale) - 30.0, math.log(scale) + 30.0  # e^±30 around the typical gap
    if mean_top(math.exp(lo)) < target:  # ties at the top cap the reachable sharpness
        return math.exp(lo)
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        if mean_top(math.exp(mid)) > target:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-12:
            break
    return math.exp(0.5 * (lo + hi))


def resolve_tau(distances: np.ndarray, tau, valid: np.ndarray | None = None,
                target_top_credit: float = TARGET_TOP_CREDIT) -> float:
    """A numeric τ: `tau` itself, or :func:`auto_tau` of the distance table when tau = "auto"."""
    tau = check_tau(tau)
    return auto_tau(distances, valid, target_top_credit) if tau == "auto" else tau


def credit_sharpness(weights: np.ndarray) -> dict[str, float]:
    """How concentrated Eq. 5 is: mean credit of the top match, and the effective number of credited
    neighbours exp(H) (1 = one-hot, K = uniform), both averaged over generated points."""
    w = np.asarray(weights, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.where(w > 0, w * np.log(w), 0.0).sum(axis=1)
    return {"top_credit_mean": float(w.max(axis=1).mean()), "effective_neighbours": float(np.exp(h).mean())}


def values_from_credit(indices: np.ndarray, weights: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Eq. 6: (φ of every pool point, how many generated points matched it). Large tables (which may be
    memory-mapped) are summed in row chunks with bincount, so memory stays O(N + chunk)."""
    indices, weights = np.asarray(indices), np.asarray(weights)
    if indices.size <= CHUNK_ENTRIES:
        return _bincount(indices, weights, n)
    values, n_matches = np.zeros(n, np.float64), np.zeros(n, np.int64)
    step = _rows_per_chunk(indices.shape[1])
    for lo in range(0, len(indices), step):
        v, c = _bincount(indices[lo:lo + step], weights[lo:lo + step], n)
        values += v
        n_matches += c
    return values, n_matches


def _bincount(indices: np.ndarray, weights: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    idx = np.asarray(indices).ravel()
    w = np.asarray(weights).ravel()
    keep = idx >= 0
    values = np.bincount(idx[keep], weights=w[keep], minlength=n)
    n_matches = np.bincount(idx[keep], minlength=n)
    return values, n_matches


def _rows_per_chunk(k: int) -> int:
    return max(1, CHUNK_ENTRIES // max(1, k))


def values_from_matches(distances: np.ndarray, indices: np.ndarray, n: int, tau=1.0,
                        target_top_credit: float = TARGET_TOP_CREDIT):
    """Eq. 5 then Eq. 6: (values, n_matches, credits). `tau` may be "auto" (see :func:`resolve_tau`;
    the τ used is :func:`resolve_tau` of the same table)."""
    valid = np.asarray(indices) >= 0
    w = credit(distances, resolve_tau(distances, tau, valid, target_top_credit), valid=valid)
    values, n_matches = values_from_credit(indices, w, n)
    return values, n_matches, w
