"""Counterfactual removal: did the generator's outputs change where a method said they drew on the removed images?

A base model and a model retrained without some X_v1 images (data.subset) draw X̂ and X̂' with the same labels
and noise, so x̂_j and x̂'_j are paired. Read in one embedding:

    paired_shift(gen, gen_cf)                      per target, ‖e(x̂_j) − e(x̂'_j)‖
    affected_targets(attributions, removed, top)   targets whose `top` most-attributed train images include a
                                                   removed one (attributions m×N, from a method's attribute())
    removal_effect(shift, affected)                the shift of affected targets against unaffected ones: means,
                                                   their difference with a bootstrap CI, AUROC, one-sided Welch p
    removed_reproduction(gen, removed, threshold)  how close X̂ comes to the removed images: per removed image the
                                                   distance to its nearest generated image, and how many have a
                                                   near-copy (nearer than `threshold`) — for X̂ and X̂' alike
    near_copy_threshold(gen, held_out, q)          a near-copy distance: the q-quantile of the distances from X̂ to
                                                   its nearest held-out image (closer than that is closer than
                                                   the generator comes to images it never saw, q of the time)
"""

from __future__ import annotations

import numpy as np

from gmv.errors import GmvError


def paired_shift(gen: np.ndarray, gen_cf: np.ndarray) -> np.ndarray:
    a, b = np.asarray(gen, np.float64), np.asarray(gen_cf, np.float64)
    if a.shape != b.shape:
        raise GmvError(f"paired generated sets must have one shape, got {a.shape} and {b.shape} (same m, same "
                       "embedding; draw both with the same generate settings)")
    return np.linalg.norm(a - b, axis=1)


def affected_targets(attributions: np.ndarray, removed: np.ndarray, top: int = 1) -> np.ndarray:
    """bool m: whether any of target j's `top` highest-attributed train images was removed."""
    a = np.asarray(attributions, np.float64)
    removed = np.asarray(removed, bool)
    if a.shape[1] != len(removed):
        raise GmvError(f"attributions have {a.shape[1]} train images, the removal mask {len(removed)}")
    order = np.argsort(-a, axis=1, kind="stable")[:, :top]
    return removed[order].any(axis=1)


def removal_effect(shift: np.ndarray, affected: np.ndarray, n_boot: int = 2000, seed: int = 0) -> dict:
    """Shift of the affected targets against the unaffected ones (membership_summary's reading: affected =
    positives), with the difference of means and its CI."""
    from gmv.analysis.membership import membership_summary

    shift, affected = np.asarray(shift, np.float64), np.asarray(affected, bool)
    if affected.sum() < 2 or (~affected).sum() < 2:
        return {"n_affected": int(affected.sum()), "n_unaffected": int((~affected).sum()),
                "note": "fewer than 2 targets on a side: no comparison"}
    s = membership_summary(shift[affected], shift[~affected], n_boot=n_boot, seed=seed, n_boot_diff=n_boot)
    return {"n_affected": s["n_v1"], "n_unaffected": s["n_v2"], "shift_affected": s["mean_value_v1"],
            "shift_unaffected": s["mean_value_v2"], "shift_diff": s["diff_mean"], "shift_diff_ci_low": s["diff_ci_low"],
            "shift_diff_ci_high": s["diff_ci_high"], "auroc": s["auroc"], "auroc_ci_low": s["auroc_ci_low"],
            "auroc_ci_high": s["auroc_ci_high"], "p_value": s["p_value"]}


def _nearest(queries: np.ndarray, points: np.ndarray) -> np.ndarray:
    from gmv.valuation.matchers import exact_search

    sq, _ = exact_search(np.asarray(points, np.float32), np.asarray(queries, np.float32), 1)
    return np.sqrt(np.maximum(sq[:, 0].astype(np.float64), 0.0))


def near_copy_threshold(gen: np.ndarray, held_out: np.ndarray, q: float = 0.05) -> float:
    if not 0 < q < 1:
        raise GmvError(f"the near-copy quantile must lie in (0, 1), got {q}")
    return float(np.quantile(_nearest(gen, held_out), q))


def removed_reproduction(gen: np.ndarray, removed: np.ndarray, threshold: float) -> dict:
    """Per removed image the distance to its nearest generated image: the mean, and how many are nearer than
    `threshold` (have a near-copy in the generated set)."""
    d = _nearest(removed, gen)
    return {"nn_distance_mean": float(d.mean()), "near_copies": int((d < threshold).sum()), "n_removed": int(len(d))}
