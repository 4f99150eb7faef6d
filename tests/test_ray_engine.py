"""The Ray engine: the exact shard merge by hand, and valuation on a local Ray instance equal to the
single-process run (values to 1e-6, the m×K tables index for index), through gmv-value end to end."""

import csv
import json
import socket
import sys

import numpy as np
import pytest

from gmv.cli.value import main
from gmv.data import ImageSet, load_images
from gmv.errors import GmvError
from gmv.valuation.matchers import MatcherConfig, exact_search
from gmv.valuation.ray_engine import merge_topk, plan_shards, shard_offsets

# ------------------------------------------------------------------ merge_topk, no Ray needed -------


def test_merge_topk_hand_computed():
    # two queries, three shards of 3, 3 and 2 points starting at pool indices 0, 3 and 6
    d = [np.array([[0.5, 2.0], [1.0, 1.5]]), np.array([[0.7, 3.0], [0.2, 9.0]]), np.array([[0.1, 0.6], [4.0, 5.0]])]
    i = [np.array([[2, 0], [1, 2]]), np.array([[1, 2], [0, 1]]), np.array([[1, 0], [0, 1]])]
    dist, idx = merge_topk(d, i, [0, 3, 6], k=3)
    # query 0: candidates 0.5→2, 2.0→0, 0.7→4, 3.0→5, 0.1→7, 0.6→6  → 7 (0.1), 2 (0.5), 6 (0.6)
    # query 1: candidates 1.0→1, 1.5→2, 0.2→3, 9.0→4, 4.0→6, 5.0→7  → 3 (0.2), 1 (1.0), 2 (1.5)
    np.testing.assert_array_equal(idx, [[7, 2, 6], [3, 1, 2]])
    np.testing.assert_array_equal(dist, [[0.1, 0.5, 0.6], [0.2, 1.0, 1.5]])


def test_merge_topk_ties_go_to_the_smaller_pool_index_and_missing_entries_sort_last():
    # three candidates at distance 1.0 (global ids 9, 4, 5) compete for the last two places
    d = [np.array([[1.0, 0.0]]), np.array([[1.0, 1.0]]), np.array([[2.0, np.inf]])]
    i = [np.array([[9, 1]]), np.array([[0, 1]]), np.array([[0, -1]])]
    dist, idx = merge_topk(d, i, [0, 4, 12], k=3)
    np.testing.assert_array_equal(idx, [[1, 4, 5]])
    np.testing.assert_array_equal(dist, [[0.0, 1.0, 1.0]])
    # fewer candidates than k: the valid ones first, then −1 with distance +inf (never an offset −1)
    dist, idx = merge_topk([np.array([[3.0, 1.0]])], [np.array([[0, -1]])], [100], k=3)
    np.testing.assert_array_equal(idx, [[100, -1, -1]])
    assert dist[0, 0] == 3.0 and np.isinf(dist[0, 1:]).all()


def test_merge_topk_equals_exact_search_of_the_whole_pool():
    """Per-shard FAISS exact top-K, merged, is the whole pool's exact top-K — ties (duplicate pool
    points in different shards) included — for shard sizes that do not divide the pool."""
    rng = np.random.default_rng(1)
    pool = rng.normal(size=(1037, 24)).astype(np.float32)
    pool[900:930] = pool[10:40]  # exact duplicates: equal distances, broken by pool index
    queries = np.concatenate([pool[10:40] + 0.01, rng.normal(size=(70, 24))]).astype(np.float32)
    want_d, want_i = exact_search(pool, queries, 8)
    for shard_size in (100, 333, 1036):
        offsets = shard_offsets(len(pool), shard_size)
        parts = [exact_search(pool[lo:lo + shard_size], queries, min(8, len(pool[lo:lo + shard_size])))
                 for lo in offsets]
        dist, idx = merge_topk([p[0] for p in parts], [p[1] for p in parts], offsets, 8)
        np.testing.assert_array_equal(idx, want_i)
        np.testing.assert_array_equal(dist, want_d)


def test_bad_shard_tables_and_plans_are_refused():
    with pytest.raises(GmvError, match="m×k_s"):
        merge_topk([np.zeros((2, 3)), np.zeros((3, 3))], [np.zeros((2, 3), int), np.zeros((3, 3), int)], [0, 5], 3)
    with pytest.raises(GmvError, match="shard_size must be"):
        plan_shards(MatcherConfig(), 100, 8, 5, 0)
    # PQ with 8-bit codes needs ≥ 256 points in every shard: 1,100 in shards of 500 leaves 100
    with pytest.raises(GmvError, match="pool shard of 100 points"):
        plan_shards(MatcherConfig(kind="pq", nbits=8), 1100, 8, 5, 500)
    size, cfgs = plan_shards(MatcherConfig(kind="pq"), 1100, 8, 5, 500)
    assert size == 500 and len(cfgs) == 3 and all(c.m and c.nbits for c in cfgs)
    assert plan_shards(MatcherConfig(), 5000, 8, 5, None, n_slots=4)[0] == 1250  # one shard per CPU slot


def test_without_ray_installed_the_error_says_how_to_install_it(monkeypatch, capsys, tmp_path):
    from gmv.valuation import valuate

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    images = np.zeros((20, 8, 8, 3), np.uint8)
    with pytest.raises(GmvError, match=r"pip install 'gmv\[distributed\]'"):
        valuate(images, images[:5], engine="ray")
    with pytest.raises(GmvError, match="unknown valuation engine"):
        valuate(images, images[:5], engine="spark")
    ImageSet(images, None).save_npz(tmp_path / "x.npz")
    assert main(["--train", str(tmp_path / "x.npz"), "--generated", str(tmp_path / "x.npz"), "--out",
                 str(tmp_path / "out"), "--engine", "ray", "--wandb", "disabled"]) == 2
    assert "gmv[distributed]" in capsys.readouterr().err


def test_an_unreachable_ray_address_is_a_clear_error(capsys, tmp_path):
    pytest.importorskip("ray", reason="the Ray engine needs pip install 'gmv[distributed]'")
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    images = np.zeros((20, 8, 8, 3), np.uint8)
    ImageSet(images, None).save_npz(tmp_path / "x.npz")
    assert main(["--train", str(tmp_path / "x.npz"), "--generated", str(tmp_path / "x.npz"), "--out",
                 str(tmp_path / "out"), "--engine", "ray", "--ray-address", f"127.0.0.1:{port}",
                 "--wandb", "disabled"]) == 2
    err = capsys.readouterr().err
    assert f"cannot reach the Ray cluster at 127.0.0.1:{port}" in err and "ray start --head" in err
    assert not (tmp_path / "out").exists()  # nothing computed


# ------------------------------------------------------------------ on a local Ray instance ---------


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray", reason="the Ray engine needs pip install 'gmv[distributed]'")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """digits (16 px): X_v1 300, X_v2 299 (its first 20 exact copies of X_v1's: exact ties in other
    shards), X̂ 150 noisy copies of X_v1 images, a reference set of 60 other digits."""
    d = tmp_path_factory.mktemp("tiny")
    data = load_images("digits", image_size=16)
    v1, v2 = data.images[:300], data.images[300:599].copy()
    v2[:20] = v1[:20]
    rng = np.random.default_rng(0)
    gen = np.clip(v1[rng.integers(0, 300, 150)] + rng.normal(0, 12, (150, *v1.shape[1:])), 0, 255)
    ImageSet(v1, data.labels[:300]).save_npz(d / "v1.npz")
    ImageSet(v2, data.labels[300:599]).save_npz(d / "v2.npz")
    ImageSet(gen.astype(np.uint8), None).save_npz(d / "gen.npz")
    ImageSet(data.images[700:760], data.labels[700:760]).save_npz(d / "ref.npz")
    return d


def _value(tiny, out, *extra):
    return main(["--train", str(tiny / "v1.npz"), "--held-out", str(tiny / "v2.npz"), "--generated",
                 str(tiny / "gen.npz"), "--reference", str(tiny / "ref.npz"), "--out", str(out), "--k", "5",
                 "--wandb", "disabled", "--tsne-cap", "100", "--ra3-n", "3", *extra])


def _columns(path):
    with open(path) as f:
        rows = list(csv.DictReader(f))
    return {c: np.array([float(r[c]) for r in rows]) for c in rows[0] if c not in ("split",)}


def test_gmv_value_on_ray_equals_the_single_process_run(ray_local, tiny, tmp_path, capfd):
    """599 pool points in shards of 200 (200, 200, 199): every method's values to 1e-6, the tables equal."""
    assert _value(tiny, tmp_path / "local", "--cache-dir", str(tmp_path / "cache_local")) == 0
    assert _value(tiny, tmp_path / "ray", "--cache-dir", str(tmp_path / "cache_ray"), "--engine", "ray",
                  "--shard-size", "200") == 0
    local, ray = _columns(tmp_path / "local" / "values.csv"), _columns(tmp_path / "ray" / "values.csv")
    assert set(ray) >= {"value", "knn_count", "gan_leaks", "gan_leaks_calibrated"}
    for name in ray:
        np.testing.assert_allclose(ray[name], local[name], rtol=0, atol=1e-6, err_msg=name)
    t_local, t_ray = np.load(tmp_path / "local" / "match_tables.npz"), np.load(tmp_path / "ray" / "match_tables.npz")
    np.testing.assert_array_equal(t_ray["indices"], t_local["indices"])
    np.testing.assert_array_equal(t_ray["distances"], t_local["distances"])
    assert (t_local["distances"][:, 0] == t_local["distances"][:, 1]).any()  # the planted exact ties are there
    m_local = json.loads((tmp_path / "local" / "metrics.json").read_text())
    m_ray = json.loads((tmp_path / "ray" / "metrics.json").read_text())
    assert m_ray["engine"] == "ray" and m_ray["n_shards"] == 3 and m_local["engine"] == "local"
    assert m_ray["p_value"] == pytest.approx(m_local["p_value"], rel=1e-6)
    assert m_ray["sum_values"] == pytest.approx(150)
    # the Ray engine writes gmv's embedding cache under the single-process keys: either reuses the other's
    assert sorted(p.name for p in (tmp_path / "cache_ray" / "embeddings").iterdir()) == \
        sorted(p.name for p in (tmp_path / "cache_local" / "embeddings").iterdir())
    out = capfd.readouterr()  # file-descriptor level: Ray's C++ core worker writes to fd 2 directly
    assert "Average value v1" in out.out
    assert "logging_progress" not in out.err and "core_worker" not in out.err  # Ray's chatter stays out


def test_approximate_matchers_per_shard_report_recall_against_the_merged_exact_search(ray_local):
    from gmv.valuation.ray_engine import search_on_ray

    rng = np.random.default_rng(0)
    centres = rng.normal(0, 3, (20, 16))
    pool = (centres[rng.integers(0, 20, 1500)] + rng.normal(size=(1500, 16))).astype(np.float32)
    queries = (pool[rng.integers(0, 1500, 200)] + 0.1 * rng.normal(size=(200, 16))).astype(np.float32)
    flat = search_on_ray(ray_local, pool, queries, 10, MatcherConfig(), "l2", shard_size=400, progress=False)
    sq, idx = exact_search(pool, queries, 10)
    np.testing.assert_array_equal(flat.indices, idx)
    np.testing.assert_array_equal(flat.distances, np.sqrt(sq))
    assert flat.recall_at_k == 1.0 and flat.settings["n_shards"] == 4
    pq = search_on_ray(ray_local, pool, queries, 10, MatcherConfig(kind="pq", rerank=40, recall_queries=100),
                       "sqeuclidean", shard_size=400, progress=False)
    hits = np.mean([len(np.intersect1d(a, e)) for a, e in zip(pq.indices, idx)]) / 10
    assert 0.5 < pq.recall_at_k <= 1.0 and abs(pq.recall_at_k - hits) < 0.1  # measured on 100 of the 200
    assert pq.indices.min() >= 0 and pq.indices.max() < 1500 and (np.diff(pq.distances, axis=1) >= 0).all()


def test_a_gmv_error_inside_a_ray_task_reaches_the_caller_as_itself(ray_local):
    from gmv.valuation.ray_cluster import user_error

    @ray_local.remote
    def refuse():
        raise GmvError("the pixels are wrong")

    with pytest.raises(Exception) as caught:
        ray_local.get(refuse.remote())
    err = user_error(caught.value)
    assert type(err) is GmvError and str(err) == "the pixels are wrong"


def test_a_study_on_the_ray_engine_equals_the_local_study(ray_local, tmp_path):
    """`valuation.engine=ray` in the study app: the same values as the local engine, on the same cache."""
    from test_pipeline import TINY, cfg_of

    from gmv.pipeline import run_study

    cache = tmp_path / "cache"
    local = run_study(cfg_of(*TINY, f"cache_dir={cache}"), tmp_path / "local")
    ray = run_study(cfg_of(*TINY, f"cache_dir={cache}", "valuation.engine=ray", "valuation.ray.shard_size=50"),
                    tmp_path / "ray")
    assert (tmp_path / "local" / "values.csv").read_text() == (tmp_path / "ray" / "values.csv").read_text()
    assert ray["p_value"] == local["p_value"]
