"""The dose-response positive control: planting, the rising curve, the files, and the study app path."""

import numpy as np
import pytest

from gmv.analysis.dose_response import detection_threshold, dose_response, plant, summarise, write_dose_response
from gmv.data.imageset import ImageSet
from gmv.data.sources import load_images
from gmv.valuation.api import valuate


@pytest.fixture(scope="module")
def digits_halves():
    d = load_images("digits", image_size=8)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(d))
    v1, v2, unrelated = d.subset(order[:150]), d.subset(order[150:300]), d.subset(order[300:600])
    return v1, v2, ImageSet(unrelated.images, unrelated.labels, name="generated")


def test_plant_replaces_the_requested_fraction_with_copies_of_v1(digits_halves):
    v1, _, gen = digits_halves
    out = plant(gen, v1, 0.1, seed=4, flip=False)
    planted = out.extras["planted"]
    assert planted.sum() == 30 and len(out) == len(gen)
    np.testing.assert_array_equal(out.images[~planted], gen.images[~planted])  # the rest untouched
    src = out.extras["source_index"][planted]
    assert (src >= 0).all() and (out.extras["source_index"][~planted] == -1).all()
    np.testing.assert_array_equal(out.labels[planted], v1.labels[src])
    # near-copies: far closer to their source than to a random X_v1 image
    a = out.images[planted].astype(float).reshape(30, -1)
    own = np.linalg.norm(a - v1.images[src].astype(float).reshape(30, -1), axis=1)
    other = np.linalg.norm(a - v1.images[(src + 1) % len(v1)].astype(float).reshape(30, -1), axis=1)
    assert np.median(own) < 0.5 * np.median(other)
    np.testing.assert_array_equal(plant(gen, v1, 0.1, seed=4, flip=False).images, out.images)  # seeded
    assert plant(gen, v1, 0.0, seed=4).extras["planted"].sum() == 0


def test_curve_rises_with_the_planted_fraction(digits_halves, tmp_path):
    v1, v2, gen = digits_halves

    def value_fn(samples):
        val = valuate(v1, samples, held_out=v2, k=5, baselines=["knn_count", "gan_leaks"])
        return {n: (r.side("v1"), r.side("v2")) for n, r in val.methods.items()}

    rows = dose_response(v1, v2, gen, [0.0, 0.05, 0.2, 0.5], [0, 1], value_fn, flip=False, progress=False)
    assert len(rows) == 4 * 2 * 3
    summary = summarise(rows)
    for method in ("gmvaluator", "knn_count", "gan_leaks"):
        auroc = [r["auroc_mean"] for r in summary if r["method"] == method]
        assert auroc[0] < 0.6  # unrelated images: no membership signal at f = 0
        assert auroc[-1] > auroc[2] > auroc[0] + 0.01, (method, auroc)  # rises with the dose
        if method != "knn_count":  # the count spreads one copy's credit over K = 5 matches: a weaker rise
            assert auroc[-1] > 0.7, (method, auroc)
    threshold = detection_threshold(summary)
    assert threshold["gmvaluator"] is not None and threshold["gmvaluator"] <= 0.2
    written = write_dose_response(rows, tmp_path, title="test")
    for f in ("dose_response.csv", "dose_response.md", "dose_response.png"):
        assert (tmp_path / f).stat().st_size > 0
    assert "gmvaluator" in (tmp_path / "dose_response.md").read_text()
    assert written["threshold"] == threshold
