"""Perceptual re-rank (gmv/valuation/rerank.py): candidates from one embedding, the K nearest by another's
exact distance; recall against the second embedding's exact search; end to end through valuate and gmv-value."""

import json

import numpy as np
import pytest

from gmv.errors import GmvError
from gmv.valuation.matchers import MatcherConfig, exact_search, match
from gmv.valuation.rerank import rerank


def test_rerank_orders_candidates_by_the_second_embedding():
    # pool in the second embedding: 1-D points 0..9; generated point at 3.2. The first search offered candidates
    # [9, 3, 4, 2, −1] (−1: a missing one); the re-rank must give 3 (0.2), 4 (0.8), 2 (1.2).
    pool_b = np.arange(10, dtype=np.float32)[:, None]
    gen_b = np.array([[3.2]], np.float32)
    cand = match(np.zeros((10, 1), np.float32), np.zeros((1, 1), np.float32), 5, MatcherConfig(kind="flat"),
                 announce=False)
    cand.indices = np.array([[9, 3, 4, 2, -1]])
    out = rerank(cand, pool_b, gen_b, 3, "l2", recall_queries=0, name="b")
    assert out.indices.tolist() == [[3, 4, 2]]
    assert out.distances[0] == pytest.approx([0.2, 0.8, 1.2], abs=1e-6)
    assert out.settings["rerank_candidates"] == 5 and "re-rank 5 by b" in out.factory
    with pytest.raises(GmvError, match="at least K = 6 candidates"):
        rerank(cand, pool_b, gen_b, 6)


def test_with_every_candidate_the_rerank_is_the_second_embedding_s_exact_search():
    rng = np.random.default_rng(0)
    pool_b, gen_b = rng.normal(size=(300, 8)).astype(np.float32), rng.normal(size=(40, 8)).astype(np.float32)
    pool_a = pool_b + rng.normal(0, 3, pool_b.shape).astype(np.float32)  # a poor first embedding
    gen_a = gen_b + rng.normal(0, 3, gen_b.shape).astype(np.float32)
    few = rerank(match(pool_a, gen_a, 20, MatcherConfig(kind="flat"), announce=False), pool_b, gen_b, 5)
    every = rerank(match(pool_a, gen_a, 300, MatcherConfig(kind="flat"), announce=False), pool_b, gen_b, 5)
    sq, idx = exact_search(pool_b, gen_b, 5)
    assert every.recall_at_k == 1.0 and np.array_equal(every.indices, idx)
    assert every.distances == pytest.approx(np.sqrt(sq), rel=1e-5)
    assert few.recall_at_k < 1.0  # 20 candidates from the poor embedding miss some true neighbours


def test_valuate_with_a_rerank_embedder_and_gmv_value(tmp_path, capsys):
    from gmv.cli.value import main
    from gmv.data import ImageSet, load_images, split_imageset, stratified_split
    from gmv.valuation.api import valuate

    data = load_images("digits", image_size=8)
    v1, v2 = split_imageset(data, stratified_split(data.labels, per_class_limit=20, seed=0))
    rng = np.random.default_rng(0)
    gen = ImageSet(np.clip(v1.images[rng.integers(0, len(v1), 150)] + rng.normal(0, 10, (150, 8, 8, 1)), 0,
                           255).astype(np.uint8), None)
    plain = valuate(v1, gen, matcher="pq", k=5, held_out=v2)
    reranked = valuate(v1, gen, matcher="pq", k=5, held_out=v2, rerank_embedder="whitened_pixels",
                       rerank_candidates=40)
    assert "re-rank 40 by whitened_pixels" in reranked.matches.factory
    assert reranked.values.sum() == pytest.approx(150) and reranked.matches.indices.shape == (150, 5)
    assert not np.array_equal(plain.matches.indices, reranked.matches.indices)
    with pytest.raises(GmvError, match="integer ≥ K = 5"):
        valuate(v1, gen, k=5, held_out=v2, rerank_embedder="pixels", rerank_candidates=3)
    v1.save_npz(tmp_path / "v1.npz")
    v2.save_npz(tmp_path / "v2.npz")
    gen.save_npz(tmp_path / "gen.npz")
    out = tmp_path / "run"
    assert main(["--train", str(tmp_path / "v1.npz"), "--held-out", str(tmp_path / "v2.npz"), "--generated",
                 str(tmp_path / "gen.npz"), "--out", str(out), "--wandb", "disabled", "--k", "5", "--index", "pq",
                 "--rerank-embedder", "pixels", "--rerank-candidates", "30", "--cache-dir", ""]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert "re-rank 30 by pixels" in m["matcher"] and 0 < m["recall_at_k"] <= 1


def test_a_study_with_a_rerank_embedder(tmp_path):
    from tests.test_pipeline import TINY, cfg_of
    from gmv.pipeline import run_study

    metrics = run_study(cfg_of(*TINY, "valuation.rerank.embedder={name: whitened_pixels}",
                               "valuation.rerank.candidates=12", f"cache_dir={tmp_path / 'c'}"), tmp_path / "run")
    assert "re-rank 12 by whitened_pixels" in metrics["matcher"]
    assert np.load(tmp_path / "run" / "match_tables.npz")["indices"].shape[1] == 3  # K of the study
