"""Precomputed embeddings (.npy float32 N×D, memory-mapped) through valuate() and gmv-value."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from gmv.cli.value import main
from gmv.data.imageset import ImageSet
from gmv.errors import GmvError
from gmv.valuation.api import valuate
from gmv.valuation.embedders import PixelEmbedder
from gmv.valuation.precomputed import EmbeddingSet, load_embeddings


@pytest.fixture()
def sets(tmp_path):
    """Planted members: generated images are noisy copies of the first 30 of 60 training images."""
    rng = np.random.default_rng(0)
    v1 = rng.integers(0, 256, (60, 6, 6, 3), dtype=np.uint8)
    v2 = rng.integers(0, 256, (60, 6, 6, 3), dtype=np.uint8)
    src = np.repeat(np.arange(30), 2)
    gen = np.clip(v1[src].astype(int) + rng.integers(-6, 7, (60, 6, 6, 3)), 0, 255).astype(np.uint8)
    paths = {}
    emb = PixelEmbedder(progress=False)
    for name, images in (("v1", v1), ("v2", v2), ("gen", gen)):
        ImageSet(images, None).save_npz(tmp_path / f"{name}.npz")
        np.save(tmp_path / f"{name}.npy", emb(images))
        paths[name] = tmp_path / name
    (tmp_path / "v1_ids.txt").write_text("\n".join(f"img_{i:03d}.png" for i in range(60)) + "\n")
    return paths


def test_valuate_precomputed_equals_embedding_the_images(sets):
    direct = valuate(str(sets["v1"]) + ".npz", str(sets["gen"]) + ".npz", held_out=str(sets["v2"]) + ".npz",
                     embedder="pixels", matcher="flat", k=5)
    by_path = valuate(str(sets["v1"]) + ".npy", str(sets["gen"]) + ".npy", held_out=str(sets["v2"]) + ".npy",
                      embedder="precomputed", matcher="flat", k=5)
    train = load_embeddings(str(sets["v1"]) + ".npy", ids=sets["v1"].parent / "v1_ids.txt")
    assert isinstance(train.vectors, np.memmap)  # memory-mapped, not loaded
    by_set = valuate(train, load_embeddings(str(sets["gen"]) + ".npy"),
                     held_out=load_embeddings(str(sets["v2"]) + ".npy"), matcher="flat", k=5)
    for v in (by_path, by_set):
        np.testing.assert_array_equal(v.values, direct.values)
        np.testing.assert_array_equal(v.matches.indices, direct.matches.indices)
        np.testing.assert_allclose(v.matches.distances, direct.matches.distances)
        assert not v.has_pixels and v.embedder == {"name": "precomputed"}
    assert direct.values[:30].mean() > direct.values[60:].mean()  # the planted members carry the value
    assert list(by_set.ids[:2]) == ["img_000.png", "img_001.png"] and list(by_set.ids[60:62]) == ["0", "1"]
    assert list(by_path.ids[:2]) == ["0", "1"]  # no ids file: the row number within its file


def test_precomputed_input_errors(sets, tmp_path):
    with pytest.raises(GmvError, match="cannot be mixed"):
        valuate(load_embeddings(str(sets["v1"]) + ".npy"), str(sets["gen"]) + ".npz")
    np.save(tmp_path / "f64.npy", np.zeros((4, 3)))
    with pytest.raises(GmvError, match="must be float32"):
        load_embeddings(tmp_path / "f64.npy")
    bad = np.ones((70_000, 2), np.float32)
    bad[66_000, 1] = np.nan
    np.save(tmp_path / "nan.npy", bad)
    with pytest.raises(GmvError, match="non-finite values .*row 66000"):
        load_embeddings(tmp_path / "nan.npy")
    (tmp_path / "short.txt").write_text("a\nb\n")
    with pytest.raises(GmvError, match="2 ids for 60 embeddings"):
        load_embeddings(str(sets["v1"]) + ".npy", ids=tmp_path / "short.txt")
    np.save(tmp_path / "gen8.npy", np.zeros((5, 8), np.float32))
    with pytest.raises(GmvError, match="8-d but the training embeddings are 108-d"):
        valuate(str(sets["v1"]) + ".npy", tmp_path / "gen8.npy", embedder="precomputed")
    with pytest.raises(GmvError, match="non-empty"):
        EmbeddingSet(np.zeros((0, 3), np.float32), np.arange(0))


def run_cli(out, *args):
    return main([*args, "--out", str(out), "--wandb", "disabled", "--tsne-cap", "100", "--cache-dir", ""])


def test_gmv_value_precomputed_equals_images_and_carries_ids(sets, tmp_path, capsys):
    s = {k: str(v) for k, v in sets.items()}
    assert run_cli(tmp_path / "img", "--train", s["v1"] + ".npz", "--generated", s["gen"] + ".npz",
                   "--held-out", s["v2"] + ".npz", "--k", "5") == 0
    capsys.readouterr()
    assert run_cli(tmp_path / "emb", "--train-embeddings", s["v1"] + ".npy", "--train-ids",
                   str(tmp_path / "v1_ids.txt"), "--generated-embeddings", s["gen"] + ".npy",
                   "--held-out-embeddings", s["v2"] + ".npy", "--k", "5") == 0
    out = capsys.readouterr().out
    assert out.count("RA3 galleries skipped: only embeddings were given") == 1
    assert "stages: load and check" in out
    with open(tmp_path / "img" / "values.csv") as f:
        img_rows = list(csv.DictReader(f))
    with open(tmp_path / "emb" / "values.csv") as f:
        emb_rows = list(csv.DictReader(f))
    assert list(emb_rows[0])[:3] == ["index", "id", "split"] and "id" not in img_rows[0]
    assert [r["value"] for r in emb_rows] == [r["value"] for r in img_rows]
    assert [r["id"] for r in emb_rows[:2]] == ["img_000.png", "img_001.png"] and emb_rows[60]["id"] == "0"
    m = json.loads((tmp_path / "emb" / "metrics.json").read_text())
    m_img = json.loads((tmp_path / "img" / "metrics.json").read_text())
    assert m["embedder"] == "precomputed" and "ra3_mean_dist_high" not in m and "ra3_mean_dist_high" in m_img
    assert m["auroc"] == m_img["auroc"] > 0.75 and m["t_statistic"] == m_img["t_statistic"]
    assert not (tmp_path / "emb" / "ra3_high.png").exists() and (tmp_path / "emb" / "ra1_tsne.png").is_file()


def test_gmv_value_refuses_mixed_inputs(sets, tmp_path, capsys):
    s = {k: str(v) for k, v in sets.items()}
    assert run_cli(tmp_path / "x", "--train-embeddings", s["v1"] + ".npy", "--generated", s["gen"] + ".npz") == 2
    assert "cannot be mixed" in capsys.readouterr().err
    assert run_cli(tmp_path / "x", "--train", s["v1"] + ".npz", "--train-ids", "a.txt",
                   "--generated", s["gen"] + ".npz") == 2
    assert "--train-ids names the rows of --train-embeddings" in capsys.readouterr().err
    assert run_cli(tmp_path / "x", "--generated", s["gen"] + ".npz") == 2
    assert "--train (images) or --train-embeddings is required" in capsys.readouterr().err
