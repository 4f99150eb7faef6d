"""RA3 attribute agreement: high-value faces share more attributes with their matched samples."""

import numpy as np
import pytest

from gmv.analysis.ra3_attributes import attribute_agreement, identity_agreement
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


def persons(seed=0):
    """40 people × 5 photos in 8-d: a person is a centre, a photo the centre plus small noise. The generated
    set holds a near-copy of every photo of people 0–9 (their photos get all the value); people 10–39
    were never generated."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, 8)) * 3.0
    ids = np.repeat(np.arange(40), 5)
    pool = centres[ids] + rng.normal(scale=0.3, size=(200, 8))
    gen = pool[:50] + rng.normal(scale=0.01, size=(50, 8))
    values = np.zeros(200)
    values[:50] = 1.0 + rng.random(50)
    return values, ids, pool, gen


def test_identity_agreement_finds_the_generated_persons_and_never_credits_the_face_itself():
    values, ids, pool, gen = persons()
    out = identity_agreement(values, ids, pool, gen, n=20, top=3)
    # well-separated people: each face's nearest other photo is the same person; chance is 4 of 199 others
    assert out["id_nn_accuracy"] == 1.0
    assert out["id_nn_chance"] == pytest.approx(4 / 199)
    # a high-value face's matches are near-copies of its person's photos (its own copy first): excluding the
    # face itself, each match's nearest other pool photo is still that person
    assert out["id_agreement_high"] == 1.0
    # low-value faces (people never generated) are matched to other people
    assert out["id_agreement_low"] == 0.0
    assert out["id_agreement_random"] < 0.2
    assert out["id_n"] == 20


def test_identity_agreement_does_not_count_the_face_as_its_own_person():
    """With one photo per person, the only pool face of the matched person is the face itself: excluded, so
    no agreement — a near-copy of a face alone is not evidence that the generator drew that person."""
    rng = np.random.default_rng(1)
    pool = rng.normal(size=(30, 4)) * 5.0
    ids = np.arange(30)
    values = np.r_[np.ones(10), np.zeros(20)]
    out = identity_agreement(values, ids, pool, pool[:10] + 0.01, n=5, top=1)
    assert out["id_agreement_high"] == 0.0
    assert out["id_nn_accuracy"] == 0.0 and out["id_nn_chance"] == 0.0


def test_identity_length_is_checked():
    values, ids, pool, gen = persons()
    with pytest.raises(GmvError, match="identities"):
        identity_agreement(values, ids[:10], pool, gen)


def test_agreements_rank_only_the_training_faces_when_told():
    """`among` = the training half: a held-out face, however high its value, is never in the high group, and the
    low group is the lowest *training* faces. Here the 50 copied faces are held out (they carry the highest
    values); among the other 150 the top 20 by value are people never generated → agreement 0."""
    values, ids, pool, gen = persons()
    training = np.arange(50, 200)
    values = values.copy()
    values[50:70] = 0.5  # the highest-value training faces: people 10–13, never generated
    out = identity_agreement(values, ids, pool, gen, n=20, top=3, among=training)
    assert out["id_agreement_high"] == 0.0 and out["id_n"] == 20
    everyone = identity_agreement(values, ids, pool, gen, n=20, top=3)
    assert everyone["id_agreement_high"] == 1.0  # over the whole pool the copied faces lead
    vals_a, attrs, pool_a, gen_a = planted()
    out = attribute_agreement(vals_a, attrs, pool_a, gen_a, n=40, top=1, among=np.arange(100, 400))
    assert out["attr_agreement_high"] < 0.9  # no copied face among those ranked
    with pytest.raises(GmvError, match="distinct indices"):
        identity_agreement(values, ids, pool, gen, among=[0, 0, 1])
