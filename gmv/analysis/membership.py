"""The membership-inference view of RA2, a per-image audit, and GMValuator's C1 criterion.

A valuation φ (GMValuator values, a K-NN match count, a GAN-Leaks score negated so that
higher = more member-like) is read as a membership score: v1 = trained-on = positives,
v2 = held-out = negatives.

* ``auroc(s1, s2)`` = P(S1 > S2) + ½·P(S1 = S2) = U / (n1·n2), with the Mann–Whitney
  U = Σ_{i∈v1} (#{j∈v2: s_j < s_i} + ½·#{j∈v2: s_j = s_i}); sort-based, O(n log n).
* ``tpr_at_fpr(s1, s2, fpr)`` (Carlini et al. 2022, "TPR at low FPR"): the rule is
  "member iff s > τ" (strict). FPR(τ) = #{v2 > τ}/n2, TPR(τ) = #{v1 > τ}/n1; return
  max TPR(τ) over τ ∈ {−inf} ∪ {scores} with FPR(τ) ≤ fpr. Both rates fall with τ, so
  the best τ is the (k+1)-th largest v2 score, k = max{k: k/n2 ≤ fpr} (τ = −inf, TPR = 1,
  when k ≥ n2). E.g. n2 = 100, fpr = 0.01: at most one v2 score may exceed τ.
* ``bootstrap_membership_ci`` — percentile bootstrap of both, resampling v1 and v2
  independently with ``numpy.random.default_rng(seed)``. Keys: ``auroc_ci_low/high``,
  ``tpr_at_fpr_ci_low/high`` (always "tpr_at_fpr", whatever `fpr` is; `fpr` is reported
  beside it by :func:`membership_summary`), ``ci_method``.
  Above LARGE_N scores in all (n1 + n2 > 50,000; every committed study is far below) the
  resampling of every score is replaced by two large-sample methods that cost O(n log n):
  the AUROC's CI is DeLong's (DeLong et al. 1988: AUROC ± z·SE from the placement values
  V10_i = share of v2 below s1_i, V01_j = share of v1 above s2_j, ties ½;
  SE² = var(V10)/n1 + var(V01)/n2), and the TPR's CI is the same percentile bootstrap drawn
  from its exact law instead of by resampling (:func:`tpr_tail_bootstrap`).
* ``membership_summary`` — the one summary of an RA2 comparison (Table 1 and this view): Welch t-test
  (H1: mean v1 > mean v2), Cohen's d, Mann–Whitney U, the difference of means with its bootstrap CI (from
  :mod:`gmv.analysis.ra2`), AUROC and TPR@FPR with their CIs.
* ``empirical_p_values(φ, split)`` — per image, against the held-out null: for v1 image i
  p_i = (#{j∈v2: φ_j ≥ φ_i} + 1)/(n2 + 1); for v2 image i (leave-one-out)
  p_i = (#{j∈v2, j≠i: φ_j ≥ φ_i} + 1)/n2.
* ``audit(φ, split, fdr)`` — Benjamini–Hochberg flags at level `fdr`, within v1 (which
  training images are over-represented in X̂?) and within v2 (a negative control).
* ``class_agreement`` — ICLR-2025 GMValuator C1: share of a generated image's top-k matched
  training images that carry its class, with the chance level Σ_c P_X̂(c)·P_pool(c).
"""

from __future__ import annotations

import numpy as np

from gmv.analysis.multiplicity import bh_reject
from gmv.analysis.ra2 import cohens_d, welch_one_sided
from gmv.errors import GmvError

_BLOCK_ELEMS = 2_000_000  # entries per bootstrap work array (int64: 16 MB; ~6 alive → ~100 MB)
#: above this many scores in all, CIs use the large-sample methods (module docstring)
LARGE_N = 50_000


def _scores(x, what: str) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size == 0:
        raise GmvError(f"{what}: no scores given; pass at least one score per half")
    if not np.all(np.isfinite(a)):
        raise GmvError(f"{what}: scores contain NaN or infinite entries; check the valuation output")
    return a


def _check_fpr(fpr: float) -> None:
    if not 0.0 <= fpr <= 1.0:
        raise GmvError(f"fpr must lie in [0, 1] (e.g. 0.01 for TPR at 1% FPR), got {fpr}")


def _allowed_false_positives(fpr: float, n2: int) -> int:
    """k = max{k integer: k/n2 ≤ fpr}, robust to float rounding of fpr·n2 (0.29·100 = 28.999…)."""
    k = int(np.floor(fpr * n2))
    return k + 1 if (k + 1) / n2 <= fpr else k


def auroc(scores_v1, scores_v2) -> float:
    """P(random v1 score > random v2 score), ties ½ = Mann–Whitney U / (n1·n2)."""
    s1, s2 = _scores(scores_v1, "scores of v1"), _scores(scores_v2, "scores of v2")
    s2 = np.sort(s2)
    less = np.searchsorted(s2, s1, side="left")
    equal = np.searchsorted(s2, s1, side="right") - less
    return float((2 * less + equal).sum() / (2.0 * len(s1) * len(s2)))


def tpr_at_fpr(scores_v1, scores_v2, fpr: float = 0.01) -> float:
    """max TPR(τ) s.t. #{v2 > τ}/n2 ≤ fpr, rule "member iff score > τ" (see module docstring)."""
    s1, s2 = _scores(scores_v1, "scores of v1"), _scores(scores_v2, "scores of v2")
    _check_fpr(fpr)
    n2 = len(s2)
    k = _allowed_false_positives(fpr, n2)
    if k >= n2:
        return 1.0  # τ = −inf
    tau = np.sort(s2)[n2 - 1 - k]  # the (k+1)-th largest v2 score
    return float(np.mean(s1 > tau))


def bootstrap_membership_ci(scores_v1, scores_v2, n_boot: int = 1000, seed: int = 0,
                            level: float = 0.95, fpr: float = 0.01) -> dict:
    """Percentile-bootstrap CIs of :func:`auroc` and :func:`tpr_at_fpr`.

    Each resample draws n1 of v1 and n2 of v2 with replacement. The pooled scores are
    coded 0..U−1 by rank of distinct value; a resample becomes count vectors c1, c2 over
    the codes, so with L2 = cumsum(c2) − c2 (v2 counts below each code)
    AUROC = Σ_u c1_u·(2·L2_u + c2_u) / (2·n1·n2), and TPR@FPR = #{v1 codes > u*}/n1 with
    u* the smallest code where cumsum(c2) ≥ n2 − k. Resamples are done in blocks so each
    work array has about 2·10⁶ entries. Returns auroc_ci_low/high, tpr_at_fpr_ci_low/high.
    """
    s1, s2 = _scores(scores_v1, "scores of v1"), _scores(scores_v2, "scores of v2")
    _check_fpr(fpr)
    if n_boot < 1:
        raise GmvError(f"n_boot must be at least 1, got {n_boot}")
    if not 0.0 < level < 1.0:
        raise GmvError(f"level must lie strictly between 0 and 1 (e.g. 0.95), got {level}")
    n1, n2 = len(s1), len(s2)
    if n1 + n2 > LARGE_N:
        a_lo, a_hi = auroc_delong_ci(s1, s2, level)
        t_lo, t_hi = tpr_tail_bootstrap(s1, s2, fpr, n_boot=n_boot, seed=seed, level=level)
        return {"auroc_ci_low": a_lo, "auroc_ci_high": a_hi, "tpr_at_fpr_ci_low": t_lo, "tpr_at_fpr_ci_high": t_hi,
                "ci_method": f"DeLong (AUROC), exact-law percentile bootstrap × {n_boot} (TPR); n > {LARGE_N:,}"}
    from scipy.stats import bootstrap

    uniq, codes = np.unique(np.concatenate([s1, s2]), return_inverse=True)
    code1, code2, n_codes = codes[:n1], codes[n1:], len(uniq)
    k = _allowed_false_positives(fpr, n2)

    def counts(code: np.ndarray) -> np.ndarray:  # resamples × codes: how often each code was drawn
        r = len(code)
        rows = code + (np.arange(r) * n_codes)[:, None]
        return np.bincount(rows.ravel(), minlength=r * n_codes).reshape(r, n_codes)

    def auroc_and_tpr(r1: np.ndarray, r2: np.ndarray, axis: int = -1) -> np.ndarray:  # 2 × resamples
        c1, c2 = counts(np.atleast_2d(r1)), counts(np.atleast_2d(r2))
        cum2 = np.cumsum(c2, axis=1)
        aucs = (c1 * (2 * (cum2 - c2) + c2)).sum(1) / (2.0 * n1 * n2)
        if k >= n2:
            return np.stack([aucs, np.ones(len(c1))]).reshape((2, *np.shape(r1)[:-1]))
        u_star = np.argmax(cum2 >= n2 - k, axis=1)
        tprs = (n1 - np.cumsum(c1, axis=1)[np.arange(len(c1)), u_star]) / n1
        return np.stack([aucs, tprs]).reshape((2, *np.shape(r1)[:-1]))

    block = max(1, _BLOCK_ELEMS // max(n1, n2, n_codes))
    ci = bootstrap((code1, code2), auroc_and_tpr, n_resamples=n_boot, batch=block, method="percentile",
                   confidence_level=level, rng=np.random.default_rng(seed)).confidence_interval
    (a_lo, t_lo), (a_hi, t_hi) = ci.low, ci.high
    return {"auroc_ci_low": float(a_lo), "auroc_ci_high": float(a_hi),
            "tpr_at_fpr_ci_low": float(t_lo), "tpr_at_fpr_ci_high": float(t_hi),
            "ci_method": f"percentile bootstrap × {n_boot}"}


def _placements(s1: np.ndarray, s2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong's placement values: V10_i = (#{v2 < s1_i} + ½#{v2 = s1_i})/n2, V01_j = (#{v1 > s2_j} + ½#{v1 = s2_j})/n1."""
    o1, o2 = np.sort(s1), np.sort(s2)
    lo2, hi2 = np.searchsorted(o2, s1, side="left"), np.searchsorted(o2, s1, side="right")
    lo1, hi1 = np.searchsorted(o1, s2, side="left"), np.searchsorted(o1, s2, side="right")
    v10 = (lo2 + 0.5 * (hi2 - lo2)) / len(s2)
    v01 = ((len(s1) - hi1) + 0.5 * (hi1 - lo1)) / len(s1)
    return v10, v01


def auroc_delong_ci(scores_v1, scores_v2, level: float = 0.95) -> tuple[float, float]:
    """DeLong's asymptotic CI of :func:`auroc`: AUROC ± z·SE, SE² = var(V10)/n1 + var(V01)/n2 (sample variances
    of the placement values), clipped to [0, 1]. O(n log n)."""
    from scipy.stats import norm

    s1, s2 = _scores(scores_v1, "scores of v1"), _scores(scores_v2, "scores of v2")
    v10, v01 = _placements(s1, s2)
    auc = float(v10.mean())
    var = (v10.var(ddof=1) if len(v10) > 1 else 0.0) / len(v10) + (v01.var(ddof=1) if len(v01) > 1 else 0.0) / len(v01)
    z = float(norm.ppf(0.5 + level / 2.0))
    half = z * float(np.sqrt(var))
    return max(0.0, auc - half), min(1.0, auc + half)


def tpr_tail_bootstrap(scores_v1, scores_v2, fpr: float = 0.01, n_boot: int = 1000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """The percentile-bootstrap CI of :func:`tpr_at_fpr`, each resample drawn from its exact law in O(n log n)
    in all instead of O(n) per resample.

    In a resample of v2 (n2 draws with replacement) the threshold is the (k+1)-th largest draw; with
    v2 sorted descending, P(threshold ≥ the j-th largest score) = P(Binomial(n2, j/n2) ≥ k+1), so the
    threshold's position is drawn by inverting that CDF (only the top positions carry mass). Given the
    threshold τ, the resampled v1 count above it is Binomial(n1, share of v1 > τ). Independent halves, as in
    :func:`bootstrap_membership_ci`; the two agree up to Monte Carlo error (tested)."""
    from scipy.stats import binom

    s1, s2 = _scores(scores_v1, "scores of v1"), _scores(scores_v2, "scores of v2")
    _check_fpr(fpr)
    n1, n2 = len(s1), len(s2)
    k = _allowed_false_positives(fpr, n2)
    if k >= n2:
        return 1.0, 1.0
    desc = np.sort(s2)[::-1]
    # positions j = 1..T with non-negligible mass: the count above the j-th largest is ≈ Binomial(n2, j/n2)
    span = int(min(n2, k + 1 + 12 * np.sqrt(k + 1) + 50))
    j = np.arange(1, span + 1)
    cdf = binom.sf(k, n2, j / n2)  # P(at least k+1 draws among the top j) = P(threshold position ≤ j)
    rng = np.random.default_rng(seed)
    pos = np.minimum(np.searchsorted(cdf, rng.random(n_boot), side="left"), span - 1)
    tau = desc[pos]
    above = (n1 - np.searchsorted(np.sort(s1), tau, side="right")) / n1  # share of v1 strictly above τ
    tprs = rng.binomial(n1, above) / n1
    tail = (1.0 - level) / 2.0 * 100.0
    lo, hi = np.percentile(tprs, [tail, 100.0 - tail])
    return float(lo), float(hi)


def membership_summary(scores_v1, scores_v2, alpha: float = 0.01, n_boot: int = 1000,
                       seed: int = 0, fpr: float = 0.01, n_boot_diff: int = 2000) -> dict:
    """The one summary of an RA2 comparison (higher = more member-like), a flat dict of plain Python scalars —
    the paper's Table 1 and the membership-inference view of it:

    * ``n_v1``, ``n_v2``; ``mean_value_v1``, ``mean_value_v2`` (Table 1's "Average value"); ``zero_share_v1``,
      ``zero_share_v2`` — share of images valued exactly 0 (never matched);
    * ``t_statistic``, ``p_value`` — one-sided Welch t-test, H1: mean v1 > mean v2 (NaN if both halves are
      constant); ``alpha``, ``significant`` (p < alpha; False when p is NaN);
    * ``auroc`` with ``auroc_ci_low/high``; ``fpr``, ``tpr_at_fpr`` with ``tpr_at_fpr_ci_low/high`` (TPR at the
      false-positive rate `fpr`, 1% by default) — 95% CIs from :func:`bootstrap_membership_ci` (`n_boot`
      resamples, `seed`; large-sample methods above LARGE_N), ``ci_method``;
    * ``mannwhitney_u``, ``mannwhitney_p`` — Mann–Whitney U of v1 and its one-sided p (``auroc`` = U / (n1·n2));
    * ``cohens_d``; ``diff_mean`` = mean v1 − mean v2 with ``diff_ci_low/high``, its seeded percentile-bootstrap
      95% CI (`n_boot_diff` resamples, gmv.analysis.ra2.bootstrap_diff_ci).
    """
    import warnings

    from scipy import stats as sps

    from gmv.analysis.ra2 import bootstrap_diff_ci

    s1, s2 = _scores(scores_v1, "scores of v1"), _scores(scores_v2, "scores of v2")
    if not 0.0 < alpha < 1.0:
        raise GmvError(f"alpha must lie strictly between 0 and 1, got {alpha}")
    t, p = welch_one_sided(s1, s2)
    ci = bootstrap_membership_ci(s1, s2, n_boot=n_boot, seed=seed, fpr=fpr)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mw = sps.mannwhitneyu(s1, s2, alternative="greater")
    low, high = bootstrap_diff_ci(s1, s2, n_boot=n_boot_diff, seed=seed)
    return {
        "n_v1": int(len(s1)), "n_v2": int(len(s2)),
        "mean_value_v1": float(s1.mean()), "mean_value_v2": float(s2.mean()),
        "zero_share_v1": float(np.mean(s1 == 0.0)), "zero_share_v2": float(np.mean(s2 == 0.0)),
        "t_statistic": t, "p_value": p, "alpha": float(alpha), "significant": bool(p < alpha),
        "auroc": auroc(s1, s2), "auroc_ci_low": ci["auroc_ci_low"], "auroc_ci_high": ci["auroc_ci_high"],
        "fpr": float(fpr), "tpr_at_fpr": tpr_at_fpr(s1, s2, fpr),
        "tpr_at_fpr_ci_low": ci["tpr_at_fpr_ci_low"], "tpr_at_fpr_ci_high": ci["tpr_at_fpr_ci_high"],
        "mannwhitney_u": float(mw.statistic), "mannwhitney_p": float(mw.pvalue),
        "cohens_d": cohens_d(s1, s2), "diff_mean": float(s1.mean() - s2.mean()), "diff_ci_low": low,
        "diff_ci_high": high, "ci_method": ci["ci_method"],
    }


def _split(values, split) -> tuple[np.ndarray, np.ndarray]:
    v = np.asarray(values, dtype=np.float64).ravel()
    s = np.asarray(split).astype(str).ravel()
    if v.shape != s.shape:
        raise GmvError(f"values ({v.size}) and split ({s.size}) must have one entry per image")
    bad = sorted(set(s.tolist()) - {"v1", "v2"})
    if bad:
        raise GmvError(f"split may only contain 'v1' (trained-on) and 'v2' (held-out), found {bad[:5]}")
    if not np.all(np.isfinite(v)):
        raise GmvError("values contain NaN or infinite entries; check the valuation output")
    is_v1 = s == "v1"
    if np.count_nonzero(~is_v1) < 2:
        raise GmvError("need at least 2 held-out (v2) images to form the null distribution of values")
    return v, is_v1


def empirical_p_values(values, split) -> np.ndarray:
    """Per-image p-value of "φ_i is not larger than a held-out image's value" (module docstring).

    v1: (#{v2 ≥ φ_i} + 1)/(n2 + 1); v2 (leave-one-out): (#{other v2 ≥ φ_i} + 1)/n2.
    """
    v, is_v1 = _split(values, split)
    null = np.sort(v[~is_v1])
    n2 = len(null)
    at_least = n2 - np.searchsorted(null, v, side="left")  # #{j∈v2: φ_j ≥ φ_i}, i itself included if v2
    return np.where(is_v1, (at_least + 1) / (n2 + 1), at_least / n2)


def audit(values, split, fdr: float = 0.05) -> dict:
    """Which training images are over-represented in X̂? BH at level `fdr` within v1 and within v2.

    Returns p_value (array), bh_flag (bool array), n_v1, n_v2, n_flagged_v1, n_flagged_v2,
    share_flagged_v1, share_flagged_v2, fdr, min_p_value and audit_sentence. The v2 flags
    are a negative control: held-out images should almost never be flagged.

    Resolution: the smallest attainable p is min_p_value = 1/(n2 + 1), and BH flags the i
    smallest only if p_(i) ≤ i·fdr/n1, so nothing can be flagged unless at least
    n1/(fdr·(n2 + 1)) training images beat every held-out value (≈ 20 at n1 = n2, FDR 5%).
    """
    p = empirical_p_values(values, split)
    _, is_v1 = _split(values, split)
    n1, n2 = int(is_v1.sum()), int((~is_v1).sum())
    if n1 == 0:
        raise GmvError("no trained-on (v1) images in split: the audit asks which of them are over-represented")
    flag = np.zeros(len(p), dtype=bool)
    flag[is_v1] = bh_reject(p[is_v1], fdr)
    flag[~is_v1] = bh_reject(p[~is_v1], fdr)
    f1, f2 = int(flag[is_v1].sum()), int(flag[~is_v1].sum())
    sentence = (f"{f1} of {n1} training images are over-represented in X\u0302 (BH, FDR {fdr * 100:g}%); "
                f"{f2} of {n2} held-out images (control)")
    return {"p_value": p, "bh_flag": flag, "n_v1": n1, "n_v2": n2, "n_flagged_v1": f1, "n_flagged_v2": f2,
            "share_flagged_v1": f1 / n1, "share_flagged_v2": f2 / n2, "fdr": float(fdr),
            "min_p_value": 1.0 / (n2 + 1), "audit_sentence": sentence}


def class_agreement(generated_labels, pool_labels, neighbour_indices, ks=(1, 5, 10)) -> dict:
    """GMValuator C1: do a generated image's matched training images share its class?

    neighbour_indices[j] lists pool indices of generated image j's nearest training images,
    nearest first; −1 = missing. For k ≤ K: share_j(k) = #{valid i among the first k with
    pool_labels[i] = y_j} / #{valid among the first k}; images with no valid entry among the
    first k are left out (NaN if none is left). Returns c1_at_<k> (mean of share_j(k) over generated images),
    c1_per_class = {class: {k: mean over generated images of that class}}, c1_chance =
    Σ_c P_X̂(c)·P_pool(c), and ks (the ks evaluated; those larger than K are skipped).
    """
    gen, pool = np.asarray(generated_labels).ravel(), np.asarray(pool_labels).ravel()
    nb = np.asarray(neighbour_indices)
    if nb.ndim != 2 or nb.shape[0] != len(gen):
        raise GmvError(f"neighbour_indices must be an m×K array with m = {len(gen)} generated images, "
                       f"got shape {nb.shape}")
    if nb.size and not np.all(nb == np.round(nb)):
        raise GmvError("neighbour_indices must hold integer pool indices (−1 for missing)")
    nb = nb.astype(np.int64)
    if nb.size and (nb.min() < -1 or nb.max() >= len(pool)):
        raise GmvError(f"neighbour_indices must lie in [-1, {len(pool) - 1}] (pool of {len(pool)} images)")
    if len(gen) == 0 or len(pool) == 0:
        raise GmvError("need at least one generated image and one pool image")
    if any(int(k) < 1 for k in ks):
        raise GmvError(f"every k must be at least 1, got ks = {tuple(ks)}")
    used = [int(k) for k in ks if int(k) <= nb.shape[1]]
    valid = nb >= 0
    same = valid & (pool[np.where(valid, nb, 0)] == gen[:, None])
    classes = np.unique(gen)
    out, per_class = {}, {c.item(): {} for c in classes}
    for k in used:
        n_valid = valid[:, :k].sum(1)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(n_valid > 0, same[:, :k].sum(1) / n_valid, np.nan)
        out[f"c1_at_{k}"] = float(np.nanmean(share)) if np.any(n_valid > 0) else float("nan")
        for c in classes:
            s = share[gen == c]
            per_class[c.item()][k] = float(np.nanmean(s)) if np.any(np.isfinite(s)) else float("nan")
    chance = sum(float(np.mean(gen == c)) * float(np.mean(pool == c)) for c in classes)
    out.update({"c1_per_class": per_class, "c1_chance": chance, "ks": used})
    return out
