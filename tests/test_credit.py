"""How the credit is spread (gmv/analysis/credit.py), against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from gmv.analysis.credit import credit_spread
from gmv.errors import GmvError


def test_a_replicated_subset():
    values = [6, 3, 1, 0, 0] + [0] * 5  # total 10 over 10 images: "almost nothing" is < 0.1
    out = credit_spread(values, ["v1"] * 5 + ["v2"] * 5)
    assert out["credit_share_v1"] == 1.0
    assert out["credit_half_count_v1"] == 1 and out["credit_half_share_v1"] == 0.2  # 6 ≥ half of 10
    assert out["credit_none_share_v1"] == 0.4 and out["credit_none_share_v2"] == 1.0
    assert out["credit_sentence"].startswith("1 of 5 X_v1 images hold half of X_v1's credit; 40% of X_v1 get almost none")
    assert "replicates part of its training set" in out["credit_sentence"]


def test_broad_coverage_and_the_middle():
    broad = credit_spread([2, 2, 2, 2, 2, 1, 1, 1, 1, 1], ["v1"] * 5 + ["v2"] * 5)
    assert broad["credit_half_count_v1"] == 3 and broad["credit_share_v1"] == pytest.approx(10 / 15)
    assert broad["credit_none_share_v1"] == 0.0 and "nearly all of its training images" in broad["credit_sentence"]
    middle = credit_spread([5, 5, 5, 5, 0, 0, 0, 0, 0, 0], ["v1"] * 5 + ["v2"] * 5)  # floor 0.2: one v1 image
    assert middle["credit_none_share_v1"] == 0.2 and "between" in middle["credit_sentence"]
    exact = credit_spread([3, 3], ["v1", "v1"])  # one image holds exactly half
    assert exact["credit_half_count_v1"] == 1 and np.isnan(exact["credit_none_share_v2"])


def test_bad_input():
    with pytest.raises(GmvError, match="one entry per image"):
        credit_spread([1, 2], ["v1"])
    with pytest.raises(GmvError, match="training"):
        credit_spread([1, 2], ["v2", "v2"])
