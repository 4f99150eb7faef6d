"""Eq. 5–6 against hand computation; numerical stability; conservation of value."""

import math

import numpy as np
import pytest

from gmv.errors import GmvError
from gmv.valuation.value import credit, values_from_matches


def test_eq5_eq6_hand_computed():
    # Two generated points, K = 2, pool of 4 training points.
    distances = np.array([[1.0, 2.0], [0.5, 0.5]])
    indices = np.array([[0, 2], [2, 3]])
    values, n_matches, w = values_from_matches(distances, indices, n=4)
    e1, e2 = math.exp(-1.0), math.exp(-2.0)
    assert w[0, 0] == pytest.approx(e1 / (e1 + e2))  # 0.7310585786
    assert w[0, 1] == pytest.approx(e2 / (e1 + e2))  # 0.2689414214
    assert w[1].tolist() == pytest.approx([0.5, 0.5])
    assert values.tolist() == pytest.approx([0.7310585786, 0.0, 0.2689414214 + 0.5, 0.5])
    assert n_matches.tolist() == [1, 0, 2, 1]


def test_temperature_scales_distances():
    d = np.array([[2.0, 4.0]])
    w = credit(d, tau=2.0)
    assert w[0, 0] == pytest.approx(1 / (1 + math.exp(-1.0)))


def test_large_distances_do_not_underflow():
    # Raw 4096-d feature distances of several hundred: exp(-d) underflows to 0 in float64.
    d = np.array([[812.0, 813.0, 900.0], [1500.0, 1500.0, 1500.0]])
    assert np.exp(-d).sum() == 0.0
    w = credit(d)
    assert np.isfinite(w).all()
    assert w[0, 0] == pytest.approx(1 / (1 + math.exp(-1) + math.exp(-88)))
    assert w[1].tolist() == pytest.approx([1 / 3] * 3)


def test_values_sum_to_m_and_missing_entries_get_nothing():
    rng = np.random.default_rng(0)
    m, k, n = 300, 7, 50
    d = np.sort(rng.uniform(0, 30, (m, k)), axis=1)
    idx = np.stack([rng.choice(n, k, replace=False) for _ in range(m)])
    idx[:5, -2:] = -1  # an IVF index may return fewer than K
    d[:5, -2:] = np.inf
    values, n_matches, w = values_from_matches(d, idx, n)
    assert values.sum() == pytest.approx(m)
    assert np.allclose(w.sum(axis=1), 1.0)
    assert (w[:5, -2:] == 0).all()
    assert n_matches.sum() == m * k - 10


def test_errors():
    with pytest.raises(GmvError, match="tau"):
        credit(np.ones((1, 2)), tau=0)
    with pytest.raises(GmvError, match="no match"):
        values_from_matches(np.full((1, 2), np.inf), np.full((1, 2), -1), 3)
