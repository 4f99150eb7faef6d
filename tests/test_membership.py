"""Membership-inference view of RA2, per-image audit and C1 class agreement, against hand-computed values."""

import math

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from gmv.analysis.membership import (
    audit,
    auroc,
    bootstrap_membership_ci,
    class_agreement,
    empirical_p_values,
    membership_summary,
    tpr_at_fpr,
)
from gmv.errors import GmvError


def _sk_auroc(v1, v2):
    return roc_auc_score(np.r_[np.ones(len(v1)), np.zeros(len(v2))], np.r_[v1, v2])


# ---------------------------------------------------------------- AUROC


def test_auroc_hand_computed_with_ties():
    # pairs (v1 vs v2 = 2, 1, 0): 3 → 3 wins; 2 → 2 wins + tie, twice → 5; 1 → 1 win + tie → 1.5
    v1, v2 = [3, 2, 2, 1], [2, 1, 0]
    assert auroc(v1, v2) == pytest.approx(9.5 / 12)
    assert auroc(v1, v2) == pytest.approx(_sk_auroc(v1, v2))
    assert auroc(v2, v1) == pytest.approx(1 - 9.5 / 12)
    assert auroc([1, 1], [1, 1, 1]) == 0.5


def test_auroc_matches_sklearn_on_heavy_ties():
    rng = np.random.default_rng(1)
    v1, v2 = rng.integers(0, 5, 300), rng.integers(0, 4, 200)  # integer match counts: many ties
    assert auroc(v1, v2) == pytest.approx(_sk_auroc(v1, v2), abs=1e-12)


# ---------------------------------------------------------------- TPR at FPR


def _tpr_brute(v1, v2, fpr):
    v1, v2 = np.asarray(v1, float), np.asarray(v2, float)
    best = 0.0
    for tau in np.r_[-np.inf, np.unique(np.r_[v1, v2])]:
        if np.mean(v2 > tau) <= fpr:
            best = max(best, np.mean(v1 > tau))
    return best


def test_tpr_at_fpr_hand_example():
    v2 = np.arange(100.0)  # 0..99
    v1 = [150, 120, 99.5, 99, 98, 50, 10, 5, 1, 0]
    # fpr 1%: one v2 score (99) may exceed τ → τ = 98; v1 > 98: 150, 120, 99.5, 99 (98 ties: not counted)
    assert tpr_at_fpr(v1, v2, 0.01) == pytest.approx(0.4)
    assert tpr_at_fpr(v1, v2, 0.0) == pytest.approx(0.3)  # τ = 99
    assert tpr_at_fpr(v1, v2, 0.05) == pytest.approx(0.5)  # τ = 94: 98 counts now
    assert tpr_at_fpr(v1, v2, 1.0) == 1.0  # τ = −inf
    # 0.29·100 = 28.99… in floats; still 29 false positives allowed → τ = 70, and 70 itself does not count
    assert tpr_at_fpr([70.0, 70.5], v2, 0.29) == 0.5


def test_tpr_at_fpr_is_strict_at_ties():
    # fpr 25% of 4: one v2 may exceed τ → τ = 2; v1 = 2 ties τ and is not called a member
    assert tpr_at_fpr([2, 2, 3, 4], [0, 1, 2, 3], 0.25) == 0.5
    assert tpr_at_fpr([5, 5], [5, 5, 5], 0.01) == 0.0  # all tied: no threshold separates


def test_tpr_at_fpr_matches_brute_force():
    rng = np.random.default_rng(2)
    for fpr in (0.0, 0.01, 0.1, 0.3):
        v1, v2 = rng.integers(0, 20, 57) + 3, rng.integers(0, 20, 43)
        assert tpr_at_fpr(v1, v2, fpr) == pytest.approx(_tpr_brute(v1, v2, fpr))


# ---------------------------------------------------------------- bootstrap


def test_bootstrap_equals_a_slow_reference_loop():
    rng = np.random.default_rng(3)
    v1, v2 = rng.integers(0, 6, 40).astype(float), rng.integers(0, 5, 30).astype(float)
    ci = bootstrap_membership_ci(v1, v2, n_boot=200, seed=7, fpr=0.1)
    ref = np.random.default_rng(7)  # one block: all v1 resamples are drawn, then all v2 resamples
    i1, i2 = ref.integers(0, 40, (200, 40)), ref.integers(0, 30, (200, 30))
    aucs = [auroc(v1[a], v2[b]) for a, b in zip(i1, i2)]
    tprs = [tpr_at_fpr(v1[a], v2[b], 0.1) for a, b in zip(i1, i2)]
    assert [ci["auroc_ci_low"], ci["auroc_ci_high"]] == pytest.approx(np.percentile(aucs, [2.5, 97.5]))
    assert [ci["tpr_at_fpr_ci_low"], ci["tpr_at_fpr_ci_high"]] == pytest.approx(np.percentile(tprs, [2.5, 97.5]))


def test_bootstrap_ci_contains_estimate_is_seeded_and_narrows():
    rng = np.random.default_rng(4)
    small = rng.normal(0.5, 1, 60), rng.normal(0, 1, 60)
    big = rng.normal(0.5, 1, 3000), rng.normal(0, 1, 3000)
    ci_small = bootstrap_membership_ci(*small, n_boot=300, seed=0, fpr=0.05)
    assert set(ci_small) == {"auroc_ci_low", "auroc_ci_high", "tpr_at_fpr_ci_low", "tpr_at_fpr_ci_high", "ci_method"}
    assert ci_small["ci_method"] == "percentile bootstrap × 300"
    assert ci_small["auroc_ci_low"] <= auroc(*small) <= ci_small["auroc_ci_high"]
    assert ci_small["tpr_at_fpr_ci_low"] <= tpr_at_fpr(*small, 0.05) <= ci_small["tpr_at_fpr_ci_high"]
    assert bootstrap_membership_ci(*small, n_boot=300, seed=0, fpr=0.05) == ci_small
    assert bootstrap_membership_ci(*small, n_boot=300, seed=1, fpr=0.05) != ci_small
    ci_big = bootstrap_membership_ci(*big, n_boot=300, seed=0, fpr=0.05)
    width = lambda c, key: c[f"{key}_ci_high"] - c[f"{key}_ci_low"]  # noqa: E731
    assert width(ci_big, "auroc") < width(ci_small, "auroc") / 4
    assert width(ci_big, "tpr_at_fpr") < width(ci_small, "tpr_at_fpr") / 2


def test_bootstrap_perfect_separation_gives_one_one():
    ci = bootstrap_membership_ci(np.arange(10.0, 20.0), np.arange(10.0), n_boot=100)
    assert ci == {"auroc_ci_low": 1.0, "auroc_ci_high": 1.0, "tpr_at_fpr_ci_low": 1.0, "tpr_at_fpr_ci_high": 1.0,
                  "ci_method": "percentile bootstrap × 100"}


def test_bootstrap_bad_arguments():
    with pytest.raises(GmvError, match="n_boot"):
        bootstrap_membership_ci([1, 2], [0, 1], n_boot=0)
    with pytest.raises(GmvError, match="level"):
        bootstrap_membership_ci([1, 2], [0, 1], level=95)
    with pytest.raises(GmvError, match="fpr"):
        tpr_at_fpr([1, 2], [0, 1], fpr=1.5)
    with pytest.raises(GmvError, match="NaN"):
        auroc([1, np.nan], [0, 1])


# ---------------------------------------------------------------- summary


def test_membership_summary_matches_scipy_and_is_plain_python():
    rng = np.random.default_rng(5)
    v1, v2 = rng.normal(0.3, 1.0, 80), rng.normal(0.0, 2.0, 120)
    s = membership_summary(v1, v2, n_boot=200)
    ref = stats.ttest_ind(v1, v2, equal_var=False, alternative="greater")
    assert s["t_statistic"] == pytest.approx(ref.statistic)
    assert s["p_value"] == pytest.approx(ref.pvalue)
    assert s["significant"] == (ref.pvalue < 0.01)
    assert s["auroc"] == pytest.approx(_sk_auroc(v1, v2))
    assert s["tpr_at_fpr"] == tpr_at_fpr(v1, v2, 0.01) and s["fpr"] == 0.01
    assert s["auroc_ci_low"] <= s["auroc"] <= s["auroc_ci_high"]
    pooled = math.sqrt((79 * v1.var(ddof=1) + 119 * v2.var(ddof=1)) / 198)
    assert s["cohens_d"] == pytest.approx((v1.mean() - v2.mean()) / pooled)
    assert (s["n_v1"], s["n_v2"], s["mean_value_v1"]) == (80, 120, pytest.approx(v1.mean()))
    assert set(s) == {
        "n_v1", "n_v2", "mean_value_v1", "mean_value_v2", "zero_share_v1", "zero_share_v2", "t_statistic", "p_value",
        "alpha", "significant", "auroc", "auroc_ci_low", "auroc_ci_high", "fpr", "tpr_at_fpr", "tpr_at_fpr_ci_low",
        "tpr_at_fpr_ci_high", "mannwhitney_u", "mannwhitney_p", "cohens_d", "diff_mean", "diff_ci_low",
        "diff_ci_high", "ci_method",
    }
    assert all(type(x) in (int, float, bool, str) for x in s.values())
    assert membership_summary(v1 + 3, v2, n_boot=50)["significant"] is True


# ---------------------------------------------------------------- per-image audit


def test_empirical_p_values_hand_computed():
    # v2 = {4, 2, 3}; v1: 5 → (0+1)/4, 3 → (2+1)/4, 1 → (3+1)/4; v2 leave-one-out: 4 → 1/3, 2 → 3/3, 3 → 2/3
    p = empirical_p_values([5, 3, 1, 4, 2, 3], ["v1", "v1", "v1", "v2", "v2", "v2"])
    np.testing.assert_allclose(p, [0.25, 0.75, 1.0, 1 / 3, 1.0, 2 / 3])


def test_audit_bh_flags_hand_computed():
    values, split = [10, 9, 1, 4, 2, 3], np.array(["v1", "v1", "v1", "v2", "v2", "v2"])
    # v1 p = 1/4, 1/4, 1 → BH-adjusted 0.375, 0.375, 1; v2 p = 1/3, 1, 2/3 → all adjusted to 1
    a = audit(values, split, fdr=0.4)
    np.testing.assert_allclose(a["p_value"], [0.25, 0.25, 1.0, 1 / 3, 1.0, 2 / 3])
    assert a["bh_flag"].tolist() == [True, True, False, False, False, False]
    assert (a["n_flagged_v1"], a["n_flagged_v2"], a["share_flagged_v1"]) == (2, 0, pytest.approx(2 / 3))
    assert a["min_p_value"] == 0.25
    assert a["audit_sentence"] == (
        "2 of 3 training images are over-represented in X\u0302 (BH, FDR 40%); 0 of 3 held-out images (control)"
    )
    assert audit(values, split, fdr=0.3)["n_flagged_v1"] == 0  # 0.375 > 0.3: the resolution limit bites


def test_audit_bad_input():
    with pytest.raises(GmvError, match="at least 2 held-out"):
        empirical_p_values([1, 2, 3], ["v1", "v1", "v2"])
    with pytest.raises(GmvError, match="only contain"):
        empirical_p_values([1, 2, 3], ["v1", "v3", "v2"])
    with pytest.raises(GmvError, match="one entry per image"):
        audit([1, 2, 3], ["v1", "v2"])


# ---------------------------------------------------------------- C1 class agreement


def test_class_agreement_planted():
    pool = [0, 0, 1, 1, 2]
    gen = [0, 1, 1, 2, 0]
    nb = [[0, 2],  # class 0: labels 0, 1 → k1 = 1, k2 = 1/2
          [2, -1],  # class 1: label 1 (−1 ignored) → 1, 1
          [4, 3],  # class 1: labels 2, 1 → 0, 1/2
          [-1, 4],  # class 2: nothing valid at k1 (left out), label 2 → k2 = 1
          [-1, 2]]  # class 0: left out at k1, label 1 → k2 = 0 (−1 must not count as pool image 0)
    c = class_agreement(gen, pool, nb, ks=(1, 2, 5))  # 5 > K = 2: skipped
    assert c["c1_at_1"] == pytest.approx(2 / 3)  # (1 + 1 + 0) / 3
    assert c["c1_at_2"] == pytest.approx(0.6)  # (0.5 + 1 + 0.5 + 1 + 0) / 5
    assert "c1_at_5" not in c and c["ks"] == [1, 2]
    per = c["c1_per_class"]
    assert per[0] == {1: 1.0, 2: 0.25} and per[1] == {1: 0.5, 2: 0.75}
    assert math.isnan(per[2][1]) and per[2][2] == 1.0
    assert all(type(k) is int for k in per)
    # chance: X̂ shares 2/5, 2/5, 1/5 × pool shares 2/5, 2/5, 1/5
    assert c["c1_chance"] == pytest.approx(0.4 * 0.4 + 0.4 * 0.4 + 0.2 * 0.2)


def test_class_agreement_bad_shapes():
    with pytest.raises(GmvError, match="m×K"):
        class_agreement([0, 1], [0, 1], [[0], [1], [0]])
    with pytest.raises(GmvError, match="lie in"):
        class_agreement([0, 1], [0, 1], [[0], [2]])


# ---- statistics at scale (issue 21): the large-sample methods against the bootstrap they replace ------

from gmv.analysis import membership as membership_module  # noqa: E402
from gmv.analysis.membership import LARGE_N, auroc_delong_ci, tpr_tail_bootstrap  # noqa: E402
from gmv.analysis.ra2 import bootstrap_diff_ci  # noqa: E402


def _scores_with_ties(n1, n2, seed):
    """Member scores like valuations: many exact zeros, a shifted heavy tail, ties among the rest."""
    rng = np.random.default_rng(seed)
    v1 = np.where(rng.random(n1) < 0.4, 0.0, np.round(rng.gamma(2.0, 1.2, n1), 2))
    v2 = np.where(rng.random(n2) < 0.5, 0.0, np.round(rng.gamma(2.0, 1.0, n2), 2))
    return v1, v2


@pytest.mark.parametrize("seed", [0, 1])
def test_delong_ci_agrees_with_the_bootstrap_it_replaces(seed):
    v1, v2 = _scores_with_ties(6000, 5000, seed)
    boot = bootstrap_membership_ci(v1, v2, n_boot=2000, seed=seed)  # n = 11,000: the resampling path
    lo, hi = auroc_delong_ci(v1, v2)
    assert lo < auroc(v1, v2) < hi
    # the two 95% CIs agree to well within the bootstrap's Monte Carlo error of its percentiles
    assert lo == pytest.approx(boot["auroc_ci_low"], abs=0.003) and hi == pytest.approx(boot["auroc_ci_high"], abs=0.003)


def test_delong_variance_hand_computed():
    # v1 = {2, 3}, v2 = {1, 2}: placements V10 = (1.5/2 … ) by hand; SE² = var(V10)/2 + var(V01)/2
    v10 = np.array([0.75, 1.0])  # 2 beats 1, ties 2 (½) → 1.5/2; 3 beats both → 1
    v01 = np.array([1.0, 0.75])  # 1 is below both v1 → 1; 2 ties 2, below 3 → 1.5/2
    se = math.sqrt(v10.var(ddof=1) / 2 + v01.var(ddof=1) / 2)
    lo, hi = auroc_delong_ci([2.0, 3.0], [1.0, 2.0])
    assert v10.mean() == auroc([2.0, 3.0], [1.0, 2.0]) == 0.875
    assert hi == 1.0 and lo == pytest.approx(0.875 - stats.norm.ppf(0.975) * se)


@pytest.mark.parametrize("fpr", [0.01, 0.05])
def test_tpr_tail_bootstrap_draws_the_resampling_distribution(fpr):
    v1, v2 = _scores_with_ties(4000, 3000, 2)
    v1 = v1 + 0.3  # some signal, so that the CI is not pinned at the ends
    full = bootstrap_membership_ci(v1, v2, n_boot=4000, seed=3, fpr=fpr)
    lo, hi = tpr_tail_bootstrap(v1, v2, fpr, n_boot=4000, seed=4)
    assert lo <= tpr_at_fpr(v1, v2, fpr) <= hi
    width = full["tpr_at_fpr_ci_high"] - full["tpr_at_fpr_ci_low"]
    assert lo == pytest.approx(full["tpr_at_fpr_ci_low"], abs=0.12 * width)
    assert hi == pytest.approx(full["tpr_at_fpr_ci_high"], abs=0.12 * width)
    assert tpr_tail_bootstrap(v1, v2, fpr, n_boot=500, seed=9) == tpr_tail_bootstrap(v1, v2, fpr, n_boot=500, seed=9)
    assert tpr_tail_bootstrap(v1, v2, 1.0) == (1.0, 1.0)  # every v2 may be a false positive: τ = −inf


def test_large_samples_switch_methods_and_say_so(monkeypatch):
    v1, v2 = _scores_with_ties(3000, 3000, 5)
    small = membership_summary(v1, v2, n_boot=300)
    assert small["ci_method"] == "percentile bootstrap × 300"
    monkeypatch.setattr(membership_module, "LARGE_N", 1000)  # the same data, read as large
    large = membership_summary(v1, v2, n_boot=300)
    assert large["ci_method"].startswith("DeLong (AUROC), exact-law percentile bootstrap × 300 (TPR)")
    assert (large["auroc_ci_low"], large["auroc_ci_high"]) == auroc_delong_ci(v1, v2)
    for key in ("t_statistic", "p_value", "auroc", "tpr_at_fpr", "cohens_d"):  # the estimates do not move
        assert large[key] == small[key]
    assert LARGE_N == 50_000


def test_difference_ci_above_large_n_is_the_bootstrap_normal_limit(monkeypatch):
    rng = np.random.default_rng(6)
    a, b = rng.gamma(1.5, 2.0, 4000), rng.gamma(1.5, 1.8, 5000)
    boot = bootstrap_diff_ci(a, b, n_boot=4000, seed=1)
    monkeypatch.setattr(membership_module, "LARGE_N", 1000)
    normal = bootstrap_diff_ci(a, b, n_boot=4000, seed=1)
    z = stats.norm.ppf(0.975)
    half = z * math.sqrt(a.var() / len(a) + b.var() / len(b))
    assert normal == pytest.approx((a.mean() - b.mean() - half, a.mean() - b.mean() + half), rel=1e-12)
    assert normal[0] == pytest.approx(boot[0], abs=0.05 * half) and normal[1] == pytest.approx(boot[1], abs=0.05 * half)
