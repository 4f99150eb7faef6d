"""scripts/bench_copies.py, the copy-detection map: its perturbations by hand, and a whole map on tiny data."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bench_copies", ROOT / "scripts" / "bench_copies.py")
bench_copies = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench_copies)


def test_perturbations_by_hand():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    assert np.array_equal(bench_copies.perturb(images, "flip", 1, seed=0), images[:, :, ::-1])
    assert np.array_equal(bench_copies.perturb(images, "exact", 0, seed=0), images)
    shifted = bench_copies.perturb(images, "shift", 2, seed=0)
    for img, out in zip(images, shifted):  # the interior moved by 2 pixels in one of the 8 directions
        assert any(np.array_equal(out[4:12, 4:12], img[4 - 2 * dy:12 - 2 * dy, 4 - 2 * dx:12 - 2 * dx])
                   for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx)
    flat = np.full((200, 8, 8, 3), 128, np.uint8)
    noisy = bench_copies.perturb(flat, "noise", 8, seed=0).astype(float) - 128
    assert abs(noisy.std() - 8) < 0.2 and abs(noisy.mean()) < 0.2
    assert np.array_equal(bench_copies.perturb(flat, "blur", 1.0, seed=0), flat)  # a flat image stays flat
    smooth = np.broadcast_to((np.arange(16) * 12)[None, :, None, None], (2, 16, 16, 3)).astype(np.uint8).copy()
    err = np.abs(bench_copies.perturb(smooth, "jpeg", 90, seed=0).astype(int) - smooth).mean()
    assert 0 < err < 3 < np.abs(bench_copies.perturb(smooth, "jpeg", 5, seed=0).astype(int) - smooth).mean()
    assert bench_copies.perturb(images, "crop", 0.7, seed=0).shape == images.shape
    bright = bench_copies.perturb(flat, "jitter", 0.2, seed=0)
    assert set(np.unique(bright)) <= {102, 154}  # 128 × (1 ± 0.2), contrast and saturation leave a flat image


def test_a_whole_map_on_digits(tmp_path):
    out = tmp_path / "map"
    assert bench_copies.main(["--data", "digits", "--n", "200", "--copies", "50", "--out", str(out)]) == 0
    rows = json.loads((out / "copies.json").read_text())["rows"]
    cells = sum(len(v) for v in bench_copies.GRID.values())
    assert len(rows) == 2 * cells  # pixels and whitened pixels (no ResNet-20 on grey digits)
    exact = [r for r in rows if r["perturbation"] == "exact"]
    assert all(r["recall_at_1"] == 1.0 for r in exact)  # the positive control: every unperturbed copy is found
    tiny_noise = next(r for r in rows if r["embedder"] == "pixels" and r["perturbation"] == "noise" and r["strength"] == 2)
    assert tiny_noise["recall_at_1"] == 1.0 and tiny_noise["auroc"] > 0.7  # near-exact copies: all found
    assert (out / "copies.png").stat().st_size > 10_000 and "## TPR@1%FPR" in (out / "copies.md").read_text()


def test_the_rerank_column_finds_exact_copies():
    """The re-rank cell (PQ candidates in one embedding, re-ordered in another): unperturbed copies are all found."""
    from gmv.data import load_images
    from gmv.valuation.embedders import build_embedder

    images = load_images("digits").images[:200]
    sources = np.arange(0, 100, 2)
    px, wp = build_embedder("pixels", progress=False), build_embedder("whitened_pixels", progress=False, dims=32)
    wp.fit(images)
    r = bench_copies.rerank_cell((px(images), px(images[sources])), (wp(images), wp(images[sources])), 100, sources,
                                 0, candidates=20)
    assert r["recall_at_1"] == 1.0 and r["auroc"] > 0.7


def test_an_embedder_by_weights_path_joins_the_map(tmp_path):
    """--embedder CONFIG=WEIGHTS: a conf/embedder/ config that takes its weights by path (here SSCD's TorchScript
    format, a tiny random network in its place) becomes a column of the map; a missing file stops it in one line."""
    import pytest
    import torch

    net = torch.jit.script(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(2),
                                               torch.nn.Flatten()))
    net.save(str(tmp_path / "net.pt"))
    out = tmp_path / "map"
    assert bench_copies.main(["--data", "digits", "--n", "120", "--copies", "30", "--out", str(out),
                              "--embedder", f"sscd={tmp_path / 'net.pt'}", "--embedders", "pixels,sscd"]) == 0
    rows = json.loads((out / "copies.json").read_text())["rows"]
    assert {r["embedder"] for r in rows} == {"pixels", "sscd"}
    assert all(r["recall_at_1"] == 1.0 for r in rows if r["perturbation"] == "exact")
    with pytest.raises(SystemExit, match="weights file .* not found"):
        bench_copies.main(["--data", "digits", "--out", str(out), "--embedder", "sscd=/nowhere.pt"])
