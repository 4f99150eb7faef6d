"""The linear datamodeling score (gmv/analysis/lds.py) against hand-computed cases."""

import numpy as np
import pytest
from scipy.stats import spearmanr

from gmv.analysis.lds import lds, predictions, random_half_masks
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
