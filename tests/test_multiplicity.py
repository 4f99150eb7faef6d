"""Holm and Benjamini–Hochberg against hand-computed adjustments."""

import numpy as np
import pytest

from gmv.analysis.multiplicity import benjamini_hochberg, bh_reject, holm
from gmv.errors import GmvError


def test_holm_hand_computed():
    # sorted p: 0.01, 0.02, 0.03, 0.04 (n = 4) → 0.04, 0.06, 0.06 (monotone), 0.06
    p = [0.03, 0.01, 0.04, 0.02]
    np.testing.assert_allclose(holm(p), [0.06, 0.04, 0.06, 0.06])


def test_holm_caps_at_one_and_keeps_nan():
    out = holm([0.5, np.nan, 0.6])
    assert np.isnan(out[1])
    np.testing.assert_allclose(out[[0, 2]], [1.0, 1.0])


def test_bh_hand_computed():
    # n = 5, sorted p: 0.005, 0.01, 0.03, 0.04, 0.2 → n·p/i = 0.025, 0.025, 0.05, 0.05, 0.2
    p = [0.04, 0.005, 0.2, 0.03, 0.01]
    np.testing.assert_allclose(benjamini_hochberg(p), [0.05, 0.025, 0.2, 0.05, 0.025])
    assert bh_reject(p, 0.05).tolist() == [True, True, False, True, True]
    assert bh_reject(p, 0.03).tolist() == [False, True, False, False, True]


def test_bh_step_up_rescues_a_larger_p():
    # the 3rd smallest passes (0.03 ≤ 3/3·0.05) so the 2nd (0.04·3/2 = 0.06 alone) is rejected too
    p = [0.04, 0.045, 0.01]
    assert bh_reject(p, 0.05).tolist() == [True, True, True]


def test_bad_p_values_are_refused():
    with pytest.raises(GmvError):
        holm([1.5])
    with pytest.raises(GmvError):
        bh_reject([0.1], q=0)
