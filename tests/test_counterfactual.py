"""Counterfactual removal read out (gmv/analysis/counterfactual.py) on planted data: removing the images that
planted copies came from moves exactly those copies; removing random images moves nothing the report credits."""

import numpy as np
import pytest

from gmv.analysis.counterfactual import (affected_targets, near_copy_threshold, paired_shift, removal_effect,
                                         removed_reproduction)
from gmv.errors import GmvError
from gmv.valuation.matchers import MatcherConfig, match
from gmv.valuation.methods import Evidence, GMValuator


def planted(seed=0):
    """Pool 100 / 100; X̂ = 150 near-copies of 30 X_v1 images (5 each) + 150 fresh points."""
    rng = np.random.default_rng(seed)
    pool = rng.normal(size=(200, 6))
    sources = rng.choice(100, 30, replace=False)
    copies = pool[np.repeat(sources, 5)] + rng.normal(0, 0.02, (150, 6))
    gen = np.concatenate([copies, rng.normal(size=(150, 6))])
    return rng, pool, sources, gen


def test_removing_the_sources_moves_their_copies_and_random_removal_does_not():
    rng, pool, sources, gen = planted()
    ev = Evidence(pool.astype(np.float32), gen.astype(np.float32), np.array(["v1"] * 100 + ["v2"] * 100),
                  match(pool, gen, 5, MatcherConfig(kind="flat"), announce=False))
    attributions = GMValuator(k=5).attribute(ev)
    # the retrained generator: without 10 of the sources, their copies become fresh points; the rest unchanged
    gone = sources[:10]
    gen_cf = gen.copy()
    moved = np.isin(np.repeat(sources, 5), gone)
    gen_cf[:150][moved] = rng.normal(size=(int(moved.sum()), 6))
    removed = np.zeros(200, bool)
    removed[gone] = True
    shift = paired_shift(gen, gen_cf)
    hit = affected_targets(attributions, removed, top=1)
    assert np.array_equal(hit[:150], moved)  # every copy of a removed source, and no other copy
    assert hit[150:].mean() < 0.15  # fresh points credit some removed image only by chance (≈ 10 of 200)
    effect = removal_effect(shift, hit, n_boot=300)
    assert effect["auroc"] > 0.8 and effect["shift_diff_ci_low"] > 0 and effect["p_value"] < 1e-6
    # a random removal of 10 other X_v1 images: their copies (if any) did not move
    others = np.setdiff1d(np.arange(100), gone)
    random_removed = np.zeros(200, bool)
    random_removed[rng.choice(others, 10, replace=False)] = True
    effect_random = removal_effect(shift, affected_targets(attributions, random_removed, top=1), n_boot=300)
    assert effect_random.get("auroc", 0.0) < 0.6
    threshold = near_copy_threshold(gen, pool[100:], q=0.05)
    before, after = removed_reproduction(gen, pool[gone], threshold), removed_reproduction(gen_cf, pool[gone], threshold)
    assert before["near_copies"] == 10 and after["near_copies"] <= 2  # only chance neighbours left
    assert after["nn_distance_mean"] > before["nn_distance_mean"]


def test_bad_inputs_are_refused():
    with pytest.raises(GmvError, match="one shape"):
        paired_shift(np.zeros((3, 2)), np.zeros((4, 2)))
    with pytest.raises(GmvError, match="removal mask"):
        affected_targets(np.zeros((3, 5)), np.zeros(4, bool))
    assert "note" in removal_effect(np.ones(3), np.array([True, False, False]))
