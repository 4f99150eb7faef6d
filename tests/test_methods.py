"""τ = auto, the paper preset, and the valuation-method objects (GMValuator, KNNCount, GAN-Leaks)."""

import math

import numpy as np
import pytest

from gmv.errors import GmvError
from gmv.valuation.api import valuate
from gmv.valuation.matchers import match
from gmv.valuation.methods import (METHODS, Evidence, GANLeaks, GMValuator, KNNCount, Valuator, build_method,
                                   default_baselines, register_method)
from gmv.valuation.value import auto_tau, credit, credit_sharpness, resolve_tau


def _evidence(pool, gen, k, distance="l2", reference=None, n_v1=None):
    pool, gen = np.asarray(pool, np.float32), np.asarray(gen, np.float32)
    n_v1 = len(pool) if n_v1 is None else n_v1
    split = np.array(["v1"] * n_v1 + ["v2"] * (len(pool) - n_v1))
    return Evidence(pool, gen, split, match(pool, gen, k, distance=distance), reference)


def test_auto_tau_hits_the_target_top_credit():
    rng = np.random.default_rng(0)
    d = np.sort(rng.uniform(1, 3, (200, 10)), axis=1)
    for target in (0.3, 0.6, 0.9):
        tau = auto_tau(d, target_top_credit=target)
        assert credit_sharpness(credit(d, tau))["top_credit_mean"] == pytest.approx(target, abs=1e-9)


def test_auto_tau_hand_computed_two_matches():
    # every row has gap 1 between its two matches: top credit = 1/(1 + e^{-1/τ}) = 0.9 → τ = 1/ln 9
    d = np.array([[0.0, 1.0], [2.0, 3.0], [5.0, 6.0]])
    assert auto_tau(d, target_top_credit=0.9) == pytest.approx(1 / math.log(9), rel=1e-9)


@pytest.mark.parametrize("distance", ["l2", "sqeuclidean"])
def test_auto_values_do_not_change_when_the_embedding_is_scaled(distance):
    rng = np.random.default_rng(1)
    pool, gen = rng.normal(size=(300, 16)), rng.normal(size=(120, 16))
    out = []
    for c in (1.0, 37.5, 0.01):
        ev = _evidence(pool * c, gen * c, 8, distance=distance, n_v1=150)
        out.append(GMValuator(k=8, tau="auto", distance=distance).value(ev))
    for r in out[1:]:
        np.testing.assert_allclose(r.values, out[0].values, rtol=1e-4, atol=1e-5)  # float32 search
    # a fixed τ is not scale-free: the same data scaled by 37.5 gives other values
    fixed = [GMValuator(k=8, tau=1.0, distance=distance).value(_evidence(pool * c, gen * c, 8, distance, n_v1=150))
             for c in (1.0, 37.5)]
    assert np.abs(fixed[0].values - fixed[1].values).max() > 0.1


def test_auto_tau_edge_cases():
    assert auto_tau(np.array([[1.0], [2.0]])) == 1.0  # K = 1: τ cannot matter
    assert auto_tau(np.array([[1.0, 1.0], [2.0, 2.0]])) == 1.0  # every row tied
    with pytest.raises(GmvError, match="uniform"):
        auto_tau(np.array([[0.0, 1.0]]), target_top_credit=0.4)  # K = 2: uniform is 0.5
    with pytest.raises(GmvError, match="tau"):
        resolve_tau(np.ones((1, 2)), "sharp")
    with pytest.raises(GmvError):
        GMValuator(k=0)
    with pytest.raises(GmvError):
        GMValuator(tau=-1)


def test_paper_setting_hand_computed():
    # pool points on a line, one query at 0.5: squared distances 0.25, 0.25, 2.25 (L2: 0.5, 0.5, 1.5)
    pool = np.array([[0.0], [1.0], [2.0]])
    gen = np.array([[0.5]])
    r = GMValuator(k=3, tau=1.0, distance="sqeuclidean").value(_evidence(pool, gen, 3, "sqeuclidean"))
    e = np.exp([-0.25, -0.25, -2.25])
    np.testing.assert_allclose(r.values, e / e.sum(), rtol=1e-6)
    r_l2 = GMValuator(k=3, tau=1.0, distance="l2").value(_evidence(pool, gen, 3, "l2"))
    e = np.exp([-0.5, -0.5, -1.5])
    np.testing.assert_allclose(r_l2.values, e / e.sum(), rtol=1e-6)


def test_paper_preset_composes_to_the_literal_setting():
    from hydra import compose, initialize_config_dir

    from gmv.cli.main import CONF_DIR
    from gmv.pipeline.stages import valuation_methods

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=["valuation=paper", "valuation.k=4"])
    method, baselines = valuation_methods(cfg.valuation)
    assert (method.tau, method.distance, method.k) == (1.0, "sqeuclidean", 4)
    assert [b.name for b in baselines] == default_baselines(has_reference=True)  # the config follows the registry
    assert baselines[0].k == 4


def test_knn_count_and_gan_leaks_hand_computed():
    pool = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    gen = np.array([[1.0, 0.0], [0.0, 2.0], [9.0, 0.0]])
    ev = _evidence(pool, gen, 2, n_v1=2, reference=np.array([[0.0, 1.0], [20.0, 20.0]], np.float32))
    # nearest two of each generated point: g0 → 0, 1(9) vs 2(√101): {0, 1}; g1 → 0, 2: {0, 2}; g2 → 1, 0: {1, 0}
    np.testing.assert_array_equal(KNNCount(k=2).value(ev).values, [3, 2, 1, 0])
    np.testing.assert_array_equal(KNNCount(k=1).value(ev).values, [2, 1, 0, 0])
    leaks = GANLeaks().value(ev)
    # distance of each pool point to its nearest generated point: 1, 1, 8, √(1 + 100)
    np.testing.assert_allclose(-leaks.values, [1.0, 1.0, 8.0, math.sqrt(101)], rtol=1e-6)
    cal = GANLeaks(calibrated=True).value(ev)
    # to the nearest reference point: 1, √(100 + 1), 9, √(100 + 81) (to (0, 1), not (20, 20))
    ref = np.array([1.0, math.sqrt(101), 9.0, math.sqrt(181)])
    np.testing.assert_allclose(-cal.values, [1.0, 1.0, 8.0, math.sqrt(101)] - ref, rtol=1e-5, atol=1e-6)
    assert cal.name == "gan_leaks_calibrated"
    with pytest.raises(GmvError, match="reference"):
        GANLeaks(calibrated=True).value(_evidence(pool, gen, 2))


def test_methods_are_valuators_and_build_by_name_or_target():
    for m in (GMValuator(), KNNCount(), GANLeaks()):
        assert isinstance(m, Valuator)
    assert build_method("knn_count").name == "knn_count"
    assert build_method({"_target_": "gmv.valuation.methods.GANLeaks", "calibrated": True}).calibrated
    with pytest.raises(GmvError, match="unknown valuation method"):
        build_method("shapley")
    with pytest.raises(GmvError, match="not a valuation method"):
        build_method({"_target_": "collections.OrderedDict"})


def test_valuate_reports_every_method_on_the_same_tables():
    rng = np.random.default_rng(3)
    v1 = rng.integers(0, 256, (40, 4, 4, 1), dtype=np.uint8)
    v2 = rng.integers(0, 256, (40, 4, 4, 1), dtype=np.uint8)
    gen = np.clip(v1[rng.integers(0, 40, 60)].astype(int) + rng.integers(-3, 4, (60, 4, 4, 1)), 0, 255).astype(np.uint8)
    val = valuate(v1, gen, held_out=v2, k=5, baselines=["knn_count", "gan_leaks", "gan_leaks_calibrated"])
    assert list(val.methods) == ["gmvaluator", "knn_count", "gan_leaks"]
    assert "gan_leaks_calibrated" in val.skipped  # no reference given: skipped with the reason
    assert val.values.sum() == pytest.approx(60)
    assert val.main.extras["tau_rule"] == "auto"
    assert val.main.extras["top_credit_mean"] == pytest.approx(0.9, abs=1e-6)
    # near-copies of X_v1: every method ranks X_v1 above X_v2
    for r in val.methods.values():
        assert r.side("v1").mean() > r.side("v2").mean()


# ---- the baselines' reverse search (issue 21): through the matcher, once ----------------------------

def test_gan_leaks_and_its_calibrated_form_share_one_reverse_search(monkeypatch):
    import gmv.valuation.methods as methods

    rng = np.random.default_rng(11)
    pool, gen, ref = (rng.normal(size=(n, 16)).astype(np.float32) for n in (300, 120, 80))
    ev = _evidence(pool, gen, 5, reference=ref, n_v1=150)
    calls = []
    real = methods.match
    monkeypatch.setattr(methods, "match", lambda *a, **kw: calls.append(len(a[0])) or real(*a, **kw))
    plain, calibrated = GANLeaks().value(ev), GANLeaks(calibrated=True).value(ev)
    KNNCount(5).value(ev)  # reads the match tables: no search
    GMValuator(5).value(ev)
    assert calls == [120, 80]  # pool → generated once (shared), pool → reference once
    # exact here (a small job): bit for bit what the score was before it went through the matcher
    # (one exact search, sqrt in float64), and a brute-force nearest distance
    from gmv.valuation.matchers import exact_search

    before = np.sqrt(np.maximum(exact_search(gen, pool, 1)[0][:, 0].astype(np.float64), 0.0))
    assert np.array_equal(-plain.values, before)
    brute = np.sqrt(((pool[:, None, :].astype(np.float64) - gen[None].astype(np.float64)) ** 2).sum(-1)).min(1)
    assert np.allclose(-plain.values, brute, rtol=1e-5)
    assert np.array_equal(plain.arrays["distance_to_generated"], calibrated.arrays["distance_to_generated"])
    assert plain.extras["reverse_generated_matcher"] == "Flat" and plain.extras["reverse_generated_recall_at_1"] == 1.0
    assert calibrated.extras["reverse_reference_matcher"] == "Flat"


def test_the_reverse_search_goes_through_ivf_at_scale(monkeypatch):
    from gmv.valuation import auto_index
    from gmv.valuation.matchers import MatcherConfig

    monkeypatch.setattr(auto_index, "SMALL_POOL", 0)  # make this small job look large …
    monkeypatch.setattr(auto_index, "TRIVIAL_WORK", 0)
    monkeypatch.setattr("gmv.valuation.index_search.probe",  # … and exact search slow
                        lambda *a: auto_index.ExactRate(1e-6, 1e-9, 1e-9, 2048, 16384, 2, 1))
    rng = np.random.default_rng(12)
    centres = rng.normal(0, 6, (40, 16))
    pool = (centres[rng.integers(0, 40, 6000)] + rng.normal(size=(6000, 16))).astype(np.float32)
    gen = (centres[rng.integers(0, 40, 3000)] + rng.normal(size=(3000, 16))).astype(np.float32)
    split = np.array(["v1"] * 3000 + ["v2"] * 3000)
    ev = Evidence(pool, gen, split, match(pool, gen, 5, MatcherConfig("flat")),
                  reverse_matcher=MatcherConfig(recall_queries=500))
    r = GANLeaks().value(ev)
    assert r.extras["reverse_generated_matcher"].startswith("IVF") and r.extras["reverse_generated_recall_at_1"] >= 0.95
    brute = np.sqrt(((pool[:, None, :].astype(np.float64) - gen[None].astype(np.float64)) ** 2).sum(-1)).min(1)
    found = np.isclose(-r.values, brute, rtol=1e-4)
    assert found.mean() >= 0.95 and np.all(-r.values >= brute * (1 - 1e-4))  # never nearer than the truth


def test_the_method_registry_builds_by_name_and_lists_the_default_baselines(monkeypatch):
    assert default_baselines(has_reference=False) == ["knn_count", "gan_leaks"]
    assert default_baselines(has_reference=True) == ["knn_count", "gan_leaks", "gan_leaks_calibrated"]
    assert build_method("knn_count", k=3).k == 3 and build_method("gan_leaks", k=3).name == "gan_leaks"
    assert build_method("gan_leaks_calibrated").needs_reference

    class Farthest(KNNCount):  # a new method: one class and one line
        name = "farthest"

    monkeypatch.setattr("gmv.valuation.methods.METHODS", dict(METHODS))
    register_method("farthest", Farthest, baseline=True)
    assert default_baselines(has_reference=False)[-1] == "farthest" and build_method("farthest", k=2).k == 2
    with pytest.raises(GmvError, match="unknown valuation method 'nearest'; choose one of .*farthest"):
        build_method("nearest")


def test_per_target_attributions_sum_to_each_method_s_values():
    """attribute(evidence) is the per-target form of each method: GMValuator's rows are Eq. 5 (summing over
    targets gives φ), K-NN count's are match indicators (summing gives the count), GAN-Leaks' maximum over
    targets is its score."""
    from gmv.valuation.matchers import MatcherConfig, match
    from gmv.valuation.methods import Evidence, GANLeaks, GMValuator, KNNCount

    rng = np.random.default_rng(0)
    pool, gen = rng.normal(size=(30, 4)).astype(np.float32), rng.normal(size=(12, 4)).astype(np.float32)
    ev = Evidence(pool, gen, np.array(["v1"] * 15 + ["v2"] * 15), match(pool, gen, 3, MatcherConfig(kind="flat"),
                                                                       announce=False))
    g = GMValuator(k=3)
    a = g.attribute(ev)
    assert a.shape == (12, 30) and a.sum(axis=0) == pytest.approx(g.value(ev).values)
    assert a.sum(axis=1) == pytest.approx(np.ones(12)) and ((a > 0).sum(axis=1) <= 3).all()
    c = KNNCount(k=3)
    assert c.attribute(ev).sum(axis=0) == pytest.approx(c.value(ev).values)
    gl = GANLeaks()
    assert gl.attribute(ev).max(axis=0) == pytest.approx(gl.value(ev).values, rel=1e-5)
