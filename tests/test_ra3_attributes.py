"""RA3 attribute agreement: high-value faces share more attributes with their matched samples."""

import numpy as np
import pytest

from gmv.analysis.ra3_attributes import attribute_agreement
from gmv.errors import GmvError


def planted(seed=0):
    """Pool of 400 points in 6-d whose 5 binary attributes are the signs of coordinates 0–4;
    the generated set copies (with tiny noise) the first 100 points, which get all the value."""
    rng = np.random.default_rng(seed)
    pool = rng.normal(size=(400, 6)).astype(np.float32)
    attrs = (pool[:, :5] > 0).astype(np.uint8)
    gen = pool[:100] + rng.normal(scale=0.01, size=(100, 6)).astype(np.float32)
    values = np.zeros(400)
    values[:100] = 1.0 + rng.random(100)  # the copied points are the high-value ones
    return values, attrs, pool, gen


def test_copied_points_agree_with_their_matches_and_others_do_not():
    values, attrs, pool, gen = planted()
    out = attribute_agreement(values, attrs, pool, gen, n=40, top=1)
    # a linear probe recovers sign attributes almost perfectly
    assert out["attr_probe_accuracy"] > 0.9 > out["attr_probe_majority"] + 0.3
    # each high-value point's nearest generated point is its own copy: agreement ≈ probe accuracy
    assert out["attr_agreement_high"] > 0.9
    # low-value points were never copied: their nearest sample is another point (partial agreement)
    assert out["attr_agreement_low"] < out["attr_agreement_high"] - 0.1
    assert out["attr_agreement_p_value"] < 1e-4
    assert 0.35 < out["attr_agreement_random"] < 0.65  # random pairs agree on about half the signs
    assert out["attr_n"] == 40


def test_attribute_shape_is_checked():
    values, attrs, pool, gen = planted()
    with pytest.raises(GmvError, match="attributes"):
        attribute_agreement(values, attrs[:10], pool, gen)
