"""The linear datamodeling score (gmv/analysis/lds.py) against hand-computed cases."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from gmv.analysis.lds import lds, paired_differences, predictions, random_half_masks
from gmv.errors import GmvError


def test_predictions_are_subset_sums():
    tau = np.array([[1.0, 2.0, 4.0], [0.5, 0.0, -1.0]])  # 2 targets × 3 train images
    masks = np.array([[1, 1, 0], [0, 1, 1], [1, 0, 1]], bool)  # 3 subsets
    assert predictions(tau, masks) == pytest.approx(np.array([[3.0, 0.5], [6.0, -1.0], [5.0, -0.5]]))


def test_lds_by_hand():
    tau = np.array([[1.0, 2.0, 4.0], [0.5, 0.0, -1.0]])
    masks = np.array([[1, 1, 0], [0, 1, 1], [1, 0, 1]], bool)
    # target 0: predictions 3, 6, 5 → ranks 1, 3, 2; outputs ranked 1, 3, 2 → ρ = 1
    # target 1: predictions 0.5, −1, −0.5 → ranks 3, 1, 2; outputs ranked 1, 2, 3 → ρ = −0.5
    outputs = np.array([[10.0, 1.0], [30.0, 2.0], [20.0, 3.0]])
    r = lds(tau, masks, outputs, n_boot=200)
    assert r["per_target"] == pytest.approx([1.0, -0.5])
    assert r["lds"] == pytest.approx(0.25) and r["n_targets"] == 2
    assert r["lds_ci_low"] <= r["lds"] <= r["lds_ci_high"]


def test_lds_matches_scipy_and_recovers_a_linear_datamodel():
    rng = np.random.default_rng(0)
    n, s, t = 40, 64, 12
    tau = rng.normal(size=(t, n))
    masks = random_half_masks(n, s, seed=1)
    assert (masks.sum(axis=1) == 20).all()
    outputs = masks @ tau.T + rng.normal(0, 0.5, (s, t))  # outputs linear in the true attributions, plus noise
    r = lds(tau, masks, outputs)
    expected = [spearmanr(masks @ tau[j], outputs[:, j]).statistic for j in range(t)]
    assert r["per_target"] == pytest.approx(expected)
    assert r["lds"] > 0.8
    assert abs(lds(rng.normal(size=(t, n)), masks, outputs)["lds"]) < 0.3  # unrelated scores: no signal


def test_constant_targets_are_skipped_and_bad_shapes_refused():
    tau = np.array([[1.0, 2.0, 4.0], [0.0, 0.0, 0.0]])  # target 1: every prediction 0
    masks = np.array([[1, 1, 0], [0, 1, 1], [1, 0, 1]], bool)
    r = lds(tau, masks, np.array([[1.0, 1.0], [3.0, 2.0], [2.0, 3.0]]), n_boot=50)
    assert r["n_targets"] == 1 and r["n_targets_skipped"] == 1 and r["lds"] == pytest.approx(1.0)
    with pytest.raises(GmvError, match="agree on the number of train images"):
        lds(tau[:, :2], masks, np.zeros((3, 2)))
    with pytest.raises(GmvError, match="at least 3 retrained subsets"):
        lds(tau, masks[:2], np.zeros((2, 2)))


def test_the_lds_report_of_a_sweep_of_retrains(tmp_path):
    """A base study, four retrains on random halves of its X_v1 measuring outputs on its X̂, then gmv-report
    --base: an LDS row per method of the base study and for the random control."""
    import csv
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    gmv = Path(sys.executable).parent / "gmv"
    tiny = ["experiment=smoke", "logger.mode=disabled", "train.max_iterations=2", "generator=cfg_diffusion",
            "generator.batch_size=4", "data.image_size=8", "data.split.per_class_limit=2", "generate.m=10",
            "valuation.k=2", "valuation.tsne_cap=30", "valuation.ra3_n=2", "valuation.reference_size=0",
            f"cache_dir={tmp_path / 'c'}"]
    env = {**__import__("os").environ, "WANDB_MODE": "disabled"}
    r = subprocess.run([str(gmv), *tiny, f"hydra.run.dir={tmp_path / 'base'}"], capture_output=True, text=True,
                       env=env, cwd=root)
    assert r.returncode == 0, r.stderr[-2000:]
    control = f"+control={{kind: model_output, targets: {tmp_path / 'base' / 'samples.npz'}, n_targets: 6, timesteps: 2}}"
    r = subprocess.run([str(gmv), "-m", *tiny, control, "data.subset.rule=random", "data.subset.r=5",
                        "data.subset.seed=0,1,2,3", f"hydra.sweep.dir={tmp_path / 'sweep'}"],
                       capture_output=True, text=True, env=env, cwd=root)
    assert r.returncode == 0, r.stderr[-2000:]
    report = Path(sys.executable).parent / "gmv-report"
    r = subprocess.run([str(report), str(tmp_path / "sweep")], capture_output=True, text=True, env=env, cwd=root)
    assert r.returncode == 2 and "--base" in r.stderr
    r = subprocess.run([str(report), str(tmp_path / "sweep"), "--base", str(tmp_path / "base")], capture_output=True,
                       text=True, env=env, cwd=root)
    assert r.returncode == 0, r.stderr[-2000:]
    with open(tmp_path / "sweep" / "report" / "lds.csv") as f:
        rows = {row["method"]: row for row in csv.DictReader(f)}
    assert {"gmvaluator", "knn_count", "gan_leaks", "random (control)"} <= set(rows)
    assert all(row["n_subsets"] == "4" for row in rows.values())
    with open(tmp_path / "sweep" / "report" / "lds_pairs.csv") as f:
        pairs = list(csv.DictReader(f))
    n_methods = len(rows) - 1  # every method but the random control
    assert len(pairs) == n_methods * (n_methods - 1) // 2 and not any("random" in p["a"] + p["b"] for p in pairs)


def test_paired_differences_by_hand():
    """Three methods' per-target LDS; c did not score the last target. a − b = [0.4, 0.3, 0.5, 0.4] (mean 0.4), a − c
    over the three targets both scored = [0.1, −0.1, 0.2] (mean 0.0667); Wilcoxon as scipy's; Holm ≥ raw."""
    from scipy.stats import wilcoxon

    per_target = {"a": np.array([0.5, 0.6, 0.9, 0.8]), "b": np.array([0.1, 0.3, 0.4, 0.4]),
                  "c": np.array([0.4, 0.7, 0.7, np.nan])}
    rows = {(r["a"], r["b"]): r for r in paired_differences(per_target)}
    assert list(rows) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert rows["a", "b"]["difference"] == pytest.approx(0.4) and rows["a", "b"]["targets"] == 4
    assert rows["a", "c"]["difference"] == pytest.approx(0.2 / 3) and rows["a", "c"]["targets"] == 3
    assert rows["a", "b"]["ci_low"] <= 0.4 <= rows["a", "b"]["ci_high"]
    assert rows["a", "b"]["p_wilcoxon"] == pytest.approx(wilcoxon([0.4, 0.3, 0.5, 0.4]).pvalue)
    assert all(r["p_holm"] >= r["p_wilcoxon"] for r in rows.values())
