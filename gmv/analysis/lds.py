"""The linear datamodeling score (LDS; Park et al., TRAK, ICML 2023) of an attribution method.

Retrain the generator on S random subsets of its training set (masks, S×N). For each target x̂_j (a fixed
generated image) measure the model output f_s(x̂_j) of every retrained model s, and predict it from the
method's attribution scores τ(x̂_j, x_i) as the sum over the subset: g_s(x̂_j) = Σ_{i∈S_s} τ(x̂_j, x_i).
LDS(x̂_j) = Spearman(g_·(x̂_j), f_·(x̂_j)) across the subsets; the method's LDS is its mean over targets,
with a seeded percentile-bootstrap 95% CI over targets (scipy.stats.bootstrap). Targets whose outputs or predictions do not vary
across subsets (no rank order to correlate) are left out and counted.

The per-target correlations are dattri's (`dattri.metric.lds`, the attribution library's own LDS); this module
adds the subset bookkeeping, the aggregate over targets with its CI, and the skipped targets.

Sign: higher attribution should mean "this training image helps the model produce x̂_j", so the output is
taken as −loss (the negative diffusion loss of x̂_j, D-TRAK's choice of model output): a good method has a
positive LDS.
"""

from __future__ import annotations

import numpy as np

from gmv.errors import GmvError


def predictions(attributions: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """S×T: for every subset s and target j, Σ_{i ∈ S_s} τ(x̂_j, x_i). `attributions` T×N, `masks` S×N (bool)."""
    a = np.asarray(attributions, np.float64)
    m = np.asarray(masks, bool)
    if a.ndim != 2 or m.ndim != 2 or a.shape[1] != m.shape[1]:
        raise GmvError(f"attributions (targets × train images) and masks (subsets × train images) must agree on "
                       f"the number of train images, got {a.shape} and {m.shape}")
    return m.astype(np.float64) @ a.T


def lds(attributions: np.ndarray, masks: np.ndarray, outputs: np.ndarray, n_boot: int = 2000,
        seed: int = 0) -> dict:
    """{lds, lds_ci_low, lds_ci_high, n_targets, n_targets_skipped, per_target (T,)}; `outputs` S×T."""
    import warnings

    import torch
    from dattri.metric import lds as dattri_lds

    y = np.asarray(outputs, np.float64)
    g = predictions(attributions, masks)  # checks the shapes
    if y.shape != g.shape:
        raise GmvError(f"outputs must be subsets × targets {g.shape}, got {y.shape}")
    if y.shape[0] < 3:
        raise GmvError(f"LDS needs at least 3 retrained subsets, got {y.shape[0]}")
    m = np.asarray(masks, bool)
    sizes = m.sum(axis=1)
    if len(set(sizes.tolist())) != 1:
        raise GmvError(f"every subset must keep the same number of train images, got sizes {sorted(set(sizes))}")
    kept = torch.from_numpy(np.stack([np.flatnonzero(row) for row in m]))  # subsets × subset size
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant column: scipy warns and returns NaN (counted as skipped)
        rho, _ = dattri_lds(torch.from_numpy(np.asarray(attributions, np.float64).T), (torch.from_numpy(y), kept))
    rho = rho.numpy()
    ok = np.isfinite(rho)
    if not ok.any():
        raise GmvError("no target has outputs and predictions that vary across the subsets: LDS is undefined")
    from gmv.analysis.ra2 import bootstrap_mean_ci

    mean, low, high = bootstrap_mean_ci(rho[ok], seed=seed, n_boot=n_boot)
    return {"lds": mean, "lds_ci_low": low, "lds_ci_high": high,
            "n_targets": int(ok.sum()), "n_targets_skipped": int((~ok).sum()), "per_target": rho}


def paired_differences(per_target: dict[str, np.ndarray]) -> list[dict]:
    """Every pair of methods (a before b in the dict's order), paired over the targets both scored: the mean of
    LDS_a(x̂_j) − LDS_b(x̂_j) with a 95% bootstrap CI, the two-sided Wilcoxon signed-rank p, and Holm's adjustment
    over all pairs — which method's scores predict the retrained models better, target by target."""
    from scipy.stats import wilcoxon

    from gmv.analysis.multiplicity import holm
    from gmv.analysis.ra2 import bootstrap_mean_ci

    names = list(per_target)
    rows = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            both = np.isfinite(per_target[a]) & np.isfinite(per_target[b])
            d = np.asarray(per_target[a], np.float64)[both] - np.asarray(per_target[b], np.float64)[both]
            mean, low, high = bootstrap_mean_ci(d)
            p = float(wilcoxon(d).pvalue) if len(d) and np.any(d != 0) else 1.0
            rows.append({"a": a, "b": b, "targets": int(both.sum()), "difference": mean, "ci_low": low,
                         "ci_high": high, "p_wilcoxon": p})
    for row, q in zip(rows, holm([r["p_wilcoxon"] for r in rows]) if rows else []):
        row["p_holm"] = float(q)
    return rows


def random_half_masks(n: int, n_subsets: int, alpha: float = 0.5, seed: int = 0) -> np.ndarray:
    """S×N boolean masks, each keeping round(α·n) of the n train images (a seeded draw per subset)."""
    if not 0 < alpha < 1:
        raise GmvError(f"alpha (the share of train images each subset keeps) must lie in (0, 1), got {alpha}")
    k = int(round(alpha * n))
    rng = np.random.default_rng([seed, 11])
    masks = np.zeros((n_subsets, n), bool)
    for s in range(n_subsets):
        masks[s, rng.choice(n, k, replace=False)] = True
    return masks
