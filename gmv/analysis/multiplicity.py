"""Multiple testing: Holm's step-down adjustment (family-wise error; not in scipy) and Benjamini–Hochberg
(FDR; scipy's `false_discovery_control`).

    holm(p)                 → Holm-adjusted p-values (reject H_i at level α iff holm(p)_i ≤ α)
    benjamini_hochberg(p)   → BH-adjusted p-values ("q-values"; reject iff ≤ the FDR level)
    bh_reject(p, q=0.05)    → boolean mask of the BH discoveries at FDR level q

NaN p-values (an undefined test) are carried through as NaN and do not count as tests.
"""

from __future__ import annotations

import numpy as np

from gmv.errors import GmvError


def _as_p(pvalues) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    ok = np.isfinite(p)
    if np.any((p[ok] < 0) | (p[ok] > 1)):
        raise GmvError("p-values must lie in [0, 1]")
    return p, ok


def _adjust(pvalues, adjust_sorted) -> np.ndarray:
    """Apply `adjust_sorted` (ascending p-values → adjusted, same order) to the finite p-values and put
    the results back in the input order; NaN stays NaN."""
    p, ok = _as_p(pvalues)
    out = np.full_like(p, np.nan)
    q = p[ok]
    if len(q):
        order = np.argsort(q, kind="stable")
        adjusted = np.empty(len(q))
        adjusted[order] = adjust_sorted(q[order])
        out[ok] = adjusted
    return out


def holm(pvalues) -> np.ndarray:
    """Holm (1979): sort the n p-values ascending; the i-th (1-based) gets max over j ≤ i of
    min(1, (n − j + 1)·p_(j)). Controls the family-wise error rate under any dependence."""
    def step_down(q: np.ndarray) -> np.ndarray:
        return np.maximum.accumulate(np.minimum(1.0, (len(q) - np.arange(len(q))) * q))

    return _adjust(pvalues, step_down)


def benjamini_hochberg(pvalues) -> np.ndarray:
    """Benjamini–Hochberg (1995) adjusted p-values: the i-th smallest gets
    min over j ≥ i of min(1, n·p_(j)/j). Controls the FDR for independent or PRDS tests.
    scipy's `false_discovery_control` computes them (NaN p-values are kept out of it and stay NaN)."""
    from scipy.stats import false_discovery_control

    return _adjust(pvalues, lambda q: false_discovery_control(q, method="bh"))


def bh_reject(pvalues, q: float = 0.05) -> np.ndarray:
    """The Benjamini–Hochberg discoveries at FDR level `q` (NaN p-values are never rejected)."""
    if not 0.0 < q < 1.0:
        raise GmvError(f"the FDR level must lie strictly between 0 and 1, got {q}")
    adjusted = benjamini_hochberg(pvalues)
    return np.where(np.isfinite(adjusted), adjusted <= q, False)
