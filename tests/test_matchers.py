"""FAISS matchers: exactness, recall against exact search, settings adapt or are validated."""

from dataclasses import replace

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
    from gmv.valuation.index_search import say_small_pool

    rng = np.random.default_rng(0)
    pool, queries = rng.normal(size=(200, 32)).astype(np.float32), rng.normal(size=(20, 32)).astype(np.float32)
    say_small_pool.cache_clear()  # another test may have matched a pool of this size already
    result = match(pool, queries, 5, MatcherConfig(kind="pq"))
    err = capfd.readouterr().err
    assert "WARNING clustering" not in err and err.count("[gmv] PQ:") == 1
    assert 0 < result.recall_at_k <= 1
    match(pool, queries[:10], 5, MatcherConfig(kind="pq"))  # the same pool again (a control's next planted set)
    assert "[gmv] PQ:" not in capfd.readouterr().err
    with pytest.raises(GmvError, match="opq needs a pool of ≥ 256"):
        match(pool, queries, 5, MatcherConfig(kind="opq"))


# ---- large-pool matchers: ivfflat, ivfsq8, auto, chunking, memory-mapped tables ----------------------

from gmv.valuation import auto_index  # noqa: E402
from gmv.valuation.auto_index import choose  # noqa: E402
from gmv.valuation.matchers import MatchResult  # noqa: E402
from gmv.valuation.value import values_from_matches  # noqa: E402


@pytest.fixture(scope="module")
def blobs():
    """5,000 × 32 pool in 50 clusters, 600 queries from the same clusters."""
    return clustered(5000, 32, 50, seed=3), clustered(600, 32, 50, seed=4)


@pytest.mark.parametrize("cfg", [MatcherConfig("ivfflat"), MatcherConfig("ivfsq8"), MatcherConfig("ivfsq8", rerank=20)],
                         ids=["ivfflat", "ivfsq8", "ivfsq8+rerank"])
def test_ivf_kinds_tune_nprobe_to_the_recall_target(blobs, cfg):
    pool, q = blobs
    r = match(pool, q, 10, replace(cfg, recall_queries=300))
    _, exact = exact_search(pool, q, 10)
    assert recall_at_k(r.indices, exact) >= 0.95  # over all queries, not only the sampled ones
    assert r.recall_at_k >= 0.95 and 1 <= r.settings["nprobe"] <= r.settings["nlist"]
    assert r.settings["nprobe"] < r.settings["nlist"]  # it did not just search everything
    assert r.settings["nprobe_tried"][-1] == [r.settings["nprobe"], pytest.approx(r.settings["nprobe_tried"][-1][1])]
    assert r.factory == f"IVF{r.settings['nlist']},{'Flat' if cfg.kind == 'ivfflat' else 'SQ8'}"
    assert np.all(np.diff(r.distances, axis=1) >= -1e-5)
    if cfg.kind == "ivfflat" or cfg.rerank:  # exact distances for the neighbours found
        d2 = ((q[:, None, :].astype(np.float64) - pool[r.indices].astype(np.float64)) ** 2).sum(-1)
        assert np.allclose(r.distances, np.sqrt(d2), rtol=1e-4)


def test_fixed_nprobe_is_kept_and_low_recall_is_announced(blobs, capfd):
    pool, q = blobs
    r = match(pool, q, 10, MatcherConfig("ivfflat", nlist=100, nprobe=1, recall_queries=200))
    assert r.settings["nprobe"] == 1 and "nprobe_rule" not in r.settings
    err = capfd.readouterr().err
    assert r.recall_at_k < 0.95 and "WARNING: recall@10" in err and "below the target 0.95" in err


def rate(exact_pairs_per_s: float, k1_pairs_per_s: float = 3e8, codes_per_s: float = 1.5e7) -> auto_index.ExactRate:
    """A probe result as if measured (mocked): exact-search pairs/s at the job's K and at K = 1, IVF codes/s."""
    return auto_index.ExactRate(1 / exact_pairs_per_s, 1 / k1_pairs_per_s, 1 / codes_per_s, 2048, 16384, 2, 50)


def never_probed():
    raise AssertionError("the probe ran for a job whose choice needs none")


def test_auto_picks_exact_search_for_small_jobs_without_a_probe():
    assert choose(200, 256, 5, 1000, 8, probe=never_probed).kind == "flat"  # the default study's size
    assert choose(15_000, 4096, 50, 1_000_000, 8, probe=never_probed).kind == "flat"  # small pool, any M
    assert choose(50_000, 512, 50, 1_000, 8, probe=never_probed).kind == "flat"  # N·M·D = 2.6e10 ≤ 1e11
    c = resolve(MatcherConfig("auto", m=8), n=1000, d=64, k=5)
    assert c.kind == "flat" and "exact search is cheap" in c.auto_reason and "m=8 not used" in c.auto_reason


def test_auto_without_data_is_decided_at_match_time():
    assert choose(50_000, 512, 50, 10_000, 8).kind == "auto"  # N·M·D = 2.6e11: needs the probe
    cfg = resolve(MatcherConfig("auto", rerank=60), n=300_000, d=256, k=50, n_queries=30_000)
    assert cfg.kind == "auto" and cfg.auto_reason == "" and cfg.rerank == 60  # checked, left for match()
    with pytest.raises(GmvError, match="must be ≥ k"):  # settings are still checked up front
        resolve(MatcherConfig("auto", rerank=3), n=300_000, d=256, k=50, n_queries=30_000)


def test_auto_chooses_by_the_measured_rates():
    # the same job: exact search fast → exact; 100× slower (a top-K selection that dominates, as in
    # issue 21) → IVF
    fast = choose(50_000, 512, 50, 10_000, 8, probe=lambda: rate(3e9))
    slow = choose(50_000, 512, 50, 10_000, 8, probe=lambda: rate(3e7))
    assert fast.kind == "flat" and "exact search 3e+09 pairs/s at K = 50" in fast.reason
    assert "→ exact search" in fast.reason
    assert slow.kind == "ivfsq8" and slow.settings["rerank"] == 100 and "→ ivfsq8" in slow.reason
    # both estimates are in the reason line: exact ≈ N·M / rate, IVF ≈ its centroid searches, scans, checks
    assert "exact search of 50,000 × 10,000 ≈ 17 s" in slow.reason
    nl, ts = slow.settings["nlist"], slow.settings["train_size"]
    ivf_s = auto_index.ivf_seconds(rate(3e7), 50_000, 10_000, nl, ts)
    assert f"≈ {ivf_s:.0f} s" in slow.reason and ivf_s < 17
    # nlist: the cheapest of √N … 8√N by the estimate; training on 39 points per list (at least 10,000)
    candidates = {int(f * 50_000 ** 0.5) for f in (1, 2, 4)} | {50_000 // 39}
    best = min(candidates, key=lambda c: auto_index.ivf_seconds(rate(3e7), 50_000, 10_000, c,
                                                                 auto_index.auto_train_size(50_000, c)))
    assert nl == best and ts == max(39 * nl, 10_000)
    # a slow IVF scan makes more, smaller lists worth their training
    scan_bound = choose(1_000_000, 512, 50, 100_000, 8, probe=lambda: rate(1e7, 3e8, 1e7))
    cheap_scan = choose(1_000_000, 512, 50, 100_000, 8, probe=lambda: rate(1e7, 3e8, 1e9))
    assert scan_bound.settings["nlist"] > cheap_scan.settings["nlist"]
    # an explicit nlist / train_size is kept
    kept = choose(300_000, 256, 50, 30_000, 8, nlist=500, train_size=60_000, probe=lambda: rate(3e7))
    assert (kept.settings["nlist"], kept.settings["train_size"]) == (500, 60_000)


def test_auto_picks_ivf_for_large_pools_and_compresses_to_fit_memory():
    probe = lambda: rate(3e8)  # noqa: E731
    big = choose(1_000_000, 512, 50, 100_000, 8, probe=probe)
    assert big.kind == "ivfsq8" and big.settings["rerank"] == 100 and big.settings["nprobe"] is None
    assert big.settings["nlist"] in (1000, 2000, 4000, 8000) and big.index_bytes <= 8 * 2 ** 30
    assert choose(200_000, 512, 50, 100_000, 8, probe=probe).kind == "ivfsq8"
    no_copy = choose(1_000_000, 512, 50, 100_000, 1.0, probe=probe)  # 2.5 GB of re-rank copy does not fit 1 GB
    assert no_copy.kind == "ivfsq8" and no_copy.settings["rerank"] == 0 and "no re-rank" in no_copy.reason
    tight = choose(1_000_000, 512, 50, 100_000, 0.45, probe=probe)  # SQ8 needs 0.5 GB: PQ codes
    assert tight.kind == "ivfpq" and tight.index_bytes <= 0.45 * 2 ** 30 and 512 % tight.settings["m"] == 0
    assert tight.settings["m"] >= 64
    with pytest.raises(GmvError, match="too small for a pool of 1,000,000"):
        choose(1_000_000, 512, 50, 100_000, 0.01)
    cfg = resolve(MatcherConfig("auto", memory_gb=0.45), n=1_000_000, d=512, k=50, n_queries=100_000, probe=probe)
    assert cfg.kind == "ivfpq" and cfg.nprobe is None and cfg.auto_reason  # nprobe tuned at match time


def test_an_explicit_kind_is_never_probed(blobs, monkeypatch):
    from gmv.valuation import index_search

    monkeypatch.setattr(index_search, "probe", lambda *a: never_probed())
    monkeypatch.setattr(auto_index, "SMALL_POOL", 0)
    monkeypatch.setattr(auto_index, "TRIVIAL_WORK", 0)
    pool, q = blobs
    assert match(pool, q, 10, MatcherConfig("ivfsq8", recall_queries=100)).settings["kind"] == "ivfsq8"
    assert match(pool, q, 10, MatcherConfig("flat")).settings["kind"] == "flat"


def test_auto_end_to_end_times_the_data_and_follows_the_probe(blobs, monkeypatch, capsys):
    from gmv.valuation import index_search

    monkeypatch.setattr(auto_index, "SMALL_POOL", 0)  # make this small job look large
    monkeypatch.setattr(auto_index, "TRIVIAL_WORK", 0)
    pool, q = blobs
    measured = index_search.probe(pool, q, 10)  # the real probe: positive rates, the job's shapes
    assert measured.queries == 600 and measured.points == 5000 and measured.k == 10
    assert all(0 < x < 1e-3 for x in (measured.seconds_per_pair, measured.seconds_per_pair_k1,
                                      measured.seconds_per_code))
    monkeypatch.setattr(index_search, "probe", lambda *a: rate(1e6, 1e12, 1e12))  # exact search made slow
    r = match(pool, q, 10, MatcherConfig(recall_queries=50))  # kind = auto is the default
    assert r.settings["kind"] == "ivfsq8" and r.settings["rerank"] == 20 and r.recall_at_k >= 0.9
    assert r.settings["auto_reason"].startswith("measured on 2,048 queries × 16,384 pool points (2 threads): "
                                                "exact search 1e+06 pairs/s at K = 50")
    assert "choose" in r.seconds
    out = capsys.readouterr().out
    assert out.count("[gmv] matcher auto → ivfsq8") == 1
    monkeypatch.setattr(index_search, "probe", lambda *a: rate(1e12, 1e6, 1e6))  # exact search made fast
    assert match(pool, q, 10, MatcherConfig(recall_queries=50)).settings["kind"] == "flat"


@pytest.mark.parametrize("cfg", [MatcherConfig("flat"), MatcherConfig("ivfsq8", rerank=20, nprobe=4),
                                 MatcherConfig("pq", m=8)], ids=["flat", "ivfsq8+rerank", "pq"])
def test_chunked_add_and_search_give_the_one_shot_tables(blobs, cfg):
    pool, q = blobs
    one = match(pool, q, 10, cfg)
    chunked = match(pool, q, 10, replace(cfg, chunk_size=250))  # 20 add chunks, 3 search chunks
    assert np.array_equal(one.indices, chunked.indices) and np.array_equal(one.distances, chunked.distances)
    assert one.recall_at_k == chunked.recall_at_k


def test_tables_round_trip_through_memory_mapped_npy(blobs, tmp_path):
    pool, q = blobs
    r = match(pool, q, 7, MatcherConfig("ivfflat", recall_queries=100), out_dir=tmp_path / "tables")
    assert isinstance(r.distances, np.memmap) and isinstance(r.indices, np.memmap)
    assert sorted(p.name for p in (tmp_path / "tables").iterdir()) == ["distances.npy", "indices.npy", "match.json"]
    back = MatchResult.load(tmp_path / "tables")
    assert isinstance(back.indices, np.memmap) and back.indices.shape == (600, 7)
    assert np.array_equal(back.indices, r.indices) and np.array_equal(back.distances, r.distances)
    assert back.settings == r.settings and back.recall_at_k == r.recall_at_k and back.factory == r.factory
    in_ram = match(pool, q, 7, MatcherConfig("flat"))
    in_ram.save(tmp_path / "flat")
    again = MatchResult.load(tmp_path / "flat", mmap_mode=None)
    assert np.array_equal(again.distances, in_ram.distances) and again.settings["kind"] == "flat"
    with pytest.raises(GmvError, match="holds no match tables"):
        MatchResult.load(tmp_path / "nothing")


def test_values_summed_in_chunks_equal_one_piece(blobs, monkeypatch):
    import gmv.valuation.value as value

    pool, q = blobs
    r = match(pool, q, 10, MatcherConfig("flat"))
    whole = values_from_matches(r.distances, r.indices, len(pool), tau="auto")
    monkeypatch.setattr(value, "CHUNK_ENTRIES", 64)  # 6 rows per chunk
    parts = values_from_matches(r.distances, r.indices, len(pool), tau="auto")
    assert np.array_equal(whole[2], parts[2]) and np.array_equal(whole[1], parts[1])  # credits, counts
    assert np.allclose(whole[0], parts[0], rtol=1e-12) and abs(parts[0].sum() - len(q)) < 1e-9


@pytest.mark.parametrize("cfg,msg", [
    (MatcherConfig("ivfflat", nlist=1001), "nlist must be in 1..1000"),
    (MatcherConfig("ivfsq8", nlist=16, nprobe=17), "nprobe must be in 1..nlist"),
    (MatcherConfig("ivfsq8", nprobe=500), r"nprobe must be in 1..nlist \(25\)"),
    (MatcherConfig("ivfsq8", rerank=4), "must be ≥ k"),
    (MatcherConfig("ivfflat", rerank=20), "ivfflat is already exact"),
    (MatcherConfig("ivfsq8", m=8), "m/nbits apply to the PQ matchers"),
    (MatcherConfig("pq", nlist=8), "nlist/nprobe apply to the IVF matchers"),
    (MatcherConfig("ivfflat", nlist=64, train_size=50), "train_size = 50 is below nlist = 64"),
    (MatcherConfig("auto", memory_gb=0), "memory_gb must be a number > 0"),
    (MatcherConfig("ivfsq8", memory_gb=-1), "memory_gb must be a number > 0"),
    (MatcherConfig("auto", target_recall=1.5), "target_recall must lie in"),
    (MatcherConfig("auto", chunk_size=0), "chunk_size must be an integer ≥ 1"),
    (MatcherConfig("auto", rerank=3), "must be ≥ k"),
])
def test_bad_large_pool_settings_fail_clearly(cfg, msg):
    with pytest.raises(GmvError, match=msg):
        resolve(cfg, n=1000, d=64, k=5)


def test_faiss_keeps_its_threads_when_torch_was_imported_first():
    """torch imported before FAISS shares its OpenMP runtime: pausing torch's pool must not shrink FAISS's
    (gmv-value searched on one core of two that way), and a torch set to one thread (the studies'
    num_threads = 1) keeps FAISS at one, as the committed results were made."""
    import os
    import subprocess
    import sys

    if (os.cpu_count() or 1) < 2:
        pytest.skip("needs 2 cores")
    code = ("import torch, faiss\n"
            "from gmv.valuation.matchers import torch_threads_paused\n"
            "n = faiss.omp_get_max_threads()\n"
            "with torch_threads_paused(): inside = faiss.omp_get_max_threads()\n"
            "torch.set_num_threads(1)\n"
            "with torch_threads_paused(): one = faiss.omp_get_max_threads()\n"
            "print(n, inside, one, torch.get_num_threads())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}).stdout.split()
    n, inside, one, after = map(int, out)
    assert n >= 2 and inside == n and one == 1 and after == 1  # torch's own setting restored after


def test_ivfsq8_in_pca_dimensions_keeps_exact_distances_and_the_recall_target(blobs):
    rng = np.random.default_rng(8)  # low-rank structure: 8 latent dimensions in 32, plus a little noise
    basis = np.linalg.qr(rng.normal(size=(32, 8)))[0].T
    centres = rng.normal(0, 4, (50, 8))
    pool = ((centres[rng.integers(0, 50, 5000)] + rng.normal(size=(5000, 8))) @ basis
            + 0.05 * rng.normal(size=(5000, 32))).astype(np.float32)
    q = ((centres[rng.integers(0, 50, 600)] + rng.normal(size=(600, 8))) @ basis
         + 0.05 * rng.normal(size=(600, 32))).astype(np.float32)
    r = match(pool, q, 10, MatcherConfig("ivfsq8", pca=12, rerank=40, recall_queries=300))
    assert r.factory.startswith("PCA12,IVF") and r.settings["pca"] == 12 and r.settings["pca_check"] >= 0.96
    _, exact = exact_search(pool, q, 10)
    assert recall_at_k(r.indices, exact) >= 0.95 and r.recall_at_k >= 0.95
    d2 = ((q[:, None, :].astype(np.float64) - pool[r.indices].astype(np.float64)) ** 2).sum(-1)
    assert np.allclose(r.distances, np.sqrt(d2), rtol=1e-4)  # re-ranked by the full distance
    # isotropic clusters have no such structure: the reduced scan would lose the neighbours, so it is dropped
    pool, q = blobs
    iso = match(pool, q, 10, MatcherConfig("ivfsq8", pca=12, rerank=40, recall_queries=300))
    assert iso.factory.startswith("IVF") and iso.settings["pca"] is None and "scanned in full" in iso.settings["pca_dropped"]
    assert iso.recall_at_k >= 0.95


@pytest.mark.parametrize("cfg,msg", [
    (MatcherConfig("ivfsq8", pca=8), "pca applies to ivfsq8 with rerank > 0"),
    (MatcherConfig("ivfflat", pca=8), "pca applies to ivfsq8 with rerank > 0 .* not to ivfflat"),
    (MatcherConfig("ivfsq8", pca=64, rerank=10), r"pca must be an integer in 1\.\.63"),
])
def test_bad_pca_settings_fail_clearly(cfg, msg):
    with pytest.raises(GmvError, match=msg):
        resolve(cfg, n=1000, d=64, k=5)


def test_the_reverse_search_scans_high_dimensional_codes_in_pca_dimensions():
    from gmv.valuation.methods import reverse_matcher

    wide, narrow = reverse_matcher(MatcherConfig(), 512), reverse_matcher(MatcherConfig(), 64)
    assert (wide.kind, wide.pca, wide.rerank) == ("auto", 128, 8) and (narrow.pca, narrow.rerank) == (None, 0)
    assert reverse_matcher(MatcherConfig("flat"), 512).kind == "flat"  # an exact main search: an exact reverse one
    probe = lambda: rate(1e6)  # noqa: E731  (exact search slow: an IVF choice)
    c = choose(1_000_000, 512, 1, 100_000, 8, rerank=8, pca=128, probe=probe)
    assert c.kind == "ivfsq8" and c.settings["pca"] == 128 and c.reason.split(" → ")[1].count("PCA128,IVF") == 1
    tight = choose(1_000_000, 512, 1, 100_000, 1.0, rerank=8, pca=128, probe=probe)  # no room for the re-rank copy
    assert "pca" not in tight.settings  # no re-rank, so no reduced scan


def test_matcher_settings_are_declared_once():
    """Hydra's matcher=<kind> options and gmv-value's matching flags are both made from MatcherConfig."""
    from hydra import compose, initialize_config_dir

    from gmv.cli.main import CONF_DIR
    from gmv.cli.value import MATCHER_FLAGS, parser
    from gmv.valuation.matchers import KINDS, SETTINGS, MatcherConfig

    for kind in KINDS:
        with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
            cfg = compose("config", overrides=[f"matcher={kind}", "seed=7"])
        assert list(cfg.matcher) == list(SETTINGS) and cfg.matcher.kind == kind and cfg.matcher.seed == 7
        assert {k: v for k, v in cfg.matcher.items() if k not in ("kind", "seed")} == \
            {k: MatcherConfig.__dataclass_fields__[k].default for k in SETTINGS if k not in ("kind", "seed")}
    assert set(MATCHER_FLAGS) == set(SETTINGS) - {"seed"}
    args = parser().parse_args(["--train", "a.npz", "--generated", "b.npz", "--out", "o", "--index", "ivfsq8",
                                "--pca", "16", "--search-chunk-size", "512"])
    assert (args.matcher_kind, args.matcher_pca, args.matcher_chunk_size, args.matcher_rerank) == ("ivfsq8", 16, 512, 0)
