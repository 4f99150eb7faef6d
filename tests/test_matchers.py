"""FAISS matchers: exactness, recall against exact search, settings adapt or are validated."""

import numpy as np
import pytest
from conftest import clustered

from gmv.errors import GmvError
from gmv.valuation.matchers import MatcherConfig, exact_search, match, recall_at_k, resolve


@pytest.fixture(scope="module")
def data():
    pool = clustered(2000, 32, 20, seed=0)
    queries = clustered(200, 32, 20, seed=1)
    return pool, queries


def test_flat_equals_brute_force(data):
    pool, q = data
    r = match(pool, q[:50], 5, MatcherConfig("flat"))
    d2 = ((q[:50, None, :].astype(np.float64) - pool[None].astype(np.float64)) ** 2).sum(-1)
    want = np.argsort(d2, axis=1, kind="stable")[:, :5]
    assert (r.indices == want).mean() > 0.99  # float32 ties aside
    assert np.allclose(r.distances, np.sqrt(np.take_along_axis(d2, want, 1)), rtol=1e-4)
    assert r.recall_at_k == 1.0


def test_squared_distance_option(data):
    pool, q = data
    a = match(pool, q[:20], 3, MatcherConfig("flat"), distance="l2")
    b = match(pool, q[:20], 3, MatcherConfig("flat"), distance="sqeuclidean")
    assert np.allclose(a.distances ** 2, b.distances, rtol=1e-5)


@pytest.mark.parametrize("kind", ["pq", "ivfpq", "opq"])
def test_rerank_restores_recall(data, kind):
    pool, q = data
    bare = match(pool, q, 10, MatcherConfig(kind, recall_queries=200))
    reranked = match(pool, q, 10, MatcherConfig(kind, rerank=100, recall_queries=200))
    assert reranked.recall_at_k >= 0.95, (kind, bare.recall_at_k, reranked.recall_at_k)
    assert reranked.recall_at_k > bare.recall_at_k
    # The reported recall is the real one: recompute it against exact search.
    _, exact = exact_search(pool, q, 10)
    assert recall_at_k(reranked.indices, exact) >= 0.95
    assert np.all(np.diff(reranked.distances, axis=1) >= -1e-5)  # rows sorted ascending


def test_unset_settings_adapt():
    cfg = resolve(MatcherConfig("ivfpq"), n=5000, d=4096, k=50)
    assert 4096 % cfg.m == 0 and cfg.m == 64
    assert cfg.nbits == 7  # 5000 / 39 ≈ 128 = 2^7 points per centroid rule
    assert 1 <= cfg.nprobe <= cfg.nlist <= 5000 // 39
    assert resolve(MatcherConfig("pq"), n=300, d=30, k=5).m == 15
    small = resolve(MatcherConfig("pq"), n=12, d=8, k=2)
    assert 2 ** small.nbits <= 12


@pytest.mark.parametrize("cfg,k,msg", [
    (MatcherConfig("pq", m=7), 5, "does not divide the embedding dimension 64"),
    (MatcherConfig("pq", nbits=12), 5, "needs ≥ 4096 training points"),
    (MatcherConfig("ivfpq", nlist=10, nprobe=11), 5, "nprobe must be in 1..nlist"),
    (MatcherConfig("pq", rerank=3), 5, "must be ≥ k"),
    (MatcherConfig("flat", rerank=20), 5, "flat is already exact"),
    (MatcherConfig("hnsw"), 5, "unknown matcher"),
    (MatcherConfig("flat"), 0, "k must be ≥ 1"),
    (MatcherConfig("flat"), 1001, "larger than the training pool"),
])
def test_explicit_settings_are_validated_not_changed(cfg, k, msg):
    with pytest.raises(GmvError, match=msg):
        resolve(cfg, n=1000, d=64, k=k)


def test_explicit_settings_kept():
    cfg = resolve(MatcherConfig("ivfpq", m=16, nbits=5, nlist=7, nprobe=3), n=1000, d=64, k=5)
    assert (cfg.m, cfg.nbits, cfg.nlist, cfg.nprobe) == (16, 5, 7, 3)


def test_small_pools_get_one_note_instead_of_faiss_warnings_and_opq_is_refused(capfd):
    rng = np.random.default_rng(0)
    pool, queries = rng.normal(size=(200, 32)).astype(np.float32), rng.normal(size=(20, 32)).astype(np.float32)
    result = match(pool, queries, 5, MatcherConfig(kind="pq"))
    err = capfd.readouterr().err
    assert "WARNING clustering" not in err and err.count("[gmv] PQ:") == 1
    assert 0 < result.recall_at_k <= 1
    with pytest.raises(GmvError, match="opq needs a pool of ≥ 256"):
        match(pool, queries, 5, MatcherConfig(kind="opq"))
