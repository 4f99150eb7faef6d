"""Embedders: pixels, the CIFAR ResNet-20, VGG-16 (random weights offline), Hydra modules, the cache."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gmv.data.sources import load_npz
from gmv.errors import GmvError
from gmv.valuation.embedders import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Embedder,
    ModuleEmbedder,
    PixelEmbedder,
    VGG16Embedder,
    build_embedder,
    embed_cached,
)
from gmv.valuation.resnet20_embedder import ResNet20Embedder

RESNET = "cifar10_resnet20-12fca82f.th"
CIFAR = "cifar10_train_2000pc.npz"


class NaNNet(nn.Module):
    """A module embedder gone wrong: NaN features for every image."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 4), float("nan"))


# Hydra resolves `_target_` by importing; this module is importable under the name pytest gave it.
NAN_TARGET = f"{__name__}.NaNNet"


def rng_images(n: int, h: int = 8, w: int = 8, c: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8)


# --- pixels --------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(6, 5, 3), (7, 7, 1)])
def test_pixels_exact(shape):
    images = rng_images(9, *shape)
    emb = PixelEmbedder(batch_size=4, progress=False)  # three batches, the last one short
    feats = emb(images)
    h, w, c = shape
    assert feats.shape == (9, h * w * c) and feats.dtype == np.float32
    expect = images.transpose(0, 3, 1, 2).reshape(9, -1).astype(np.float32) / np.float32(255.0)
    np.testing.assert_array_equal(feats, expect)
    assert emb.dim(shape) == h * w * c
    assert feats.min() >= 0.0 and feats.max() <= 1.0


def test_pixels_rejects_non_uint8():
    emb = PixelEmbedder(progress=False)
    with pytest.raises(GmvError, match="uint8"):
        emb(np.zeros((2, 4, 4, 3), np.float32))
    with pytest.raises(GmvError, match="uint8"):
        emb(np.zeros((2, 4, 4), np.uint8))


# --- ResNet-20 with the shared weights -----------------------------------------------------------


@pytest.fixture(scope="module")
def cifar_sample(shared_data):
    s = load_npz(shared_data / CIFAR)
    rng = np.random.default_rng(0)
    idx = np.concatenate([rng.choice(np.flatnonzero(s.labels == c), 20, replace=False) for c in range(10)])
    return s.images[idx], s.labels[idx]


@pytest.fixture(scope="module")
def resnet(shared_data) -> ResNet20Embedder:
    return build_embedder("resnet20_cifar", weights=str(shared_data / RESNET), batch_size=64, progress=False)


def test_resnet20_features_classify_cifar(resnet, cifar_sample):
    images, labels = cifar_sample
    feats = resnet(images)
    assert feats.shape == (200, 64) and feats.dtype == np.float32
    assert np.isfinite(feats).all()
    assert (feats >= 0).all()  # pooled after a ReLU
    assert resnet.dim((32, 32, 3)) == 64
    with torch.inference_mode():
        logits = resnet.network.linear(torch.from_numpy(feats))
    accuracy = float((logits.argmax(1).numpy() == labels).mean())
    assert accuracy > 0.75, accuracy
    # the embedding is the network's own pooled features: forward() gives the same logits
    with torch.inference_mode():
        x = torch.from_numpy(images[:8]).permute(0, 3, 1, 2).float() / 255.0
        x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        direct = resnet.network(x)
    np.testing.assert_allclose(logits[:8].numpy(), direct.numpy(), rtol=1e-4, atol=1e-4)


def test_resnet20_grey_input(resnet, cifar_sample):
    images, _ = cifar_sample
    grey = np.rint(images[:6].astype(np.float32).mean(axis=-1, keepdims=True)).astype(np.uint8)
    feats = resnet(grey)
    assert feats.shape == (6, 64) and np.isfinite(feats).all()
    np.testing.assert_allclose(feats, resnet(np.repeat(grey, 3, axis=-1)), rtol=1e-5, atol=1e-5)
    assert resnet.dim((32, 32, 1)) == 64


def flat_colours(n: int, size: int) -> np.ndarray:
    """n images, each one random colour everywhere (resizing them changes nothing but the size)."""
    colours = np.random.default_rng(5).integers(0, 256, (n, 1, 1, 3), dtype=np.uint8)
    return np.broadcast_to(colours, (n, size, size, 3)).copy()


def test_resnet20_resizes_to_its_image_size(resnet, shared_data):
    small, big = flat_colours(4, 32), flat_colours(4, 64)
    feats = resnet(big)
    assert feats.shape == (4, 64)
    np.testing.assert_allclose(feats, resnet(small), rtol=1e-4, atol=1e-5)
    # without resizing, 64×64 input gives other features (the check above is not vacuous)
    native = ResNet20Embedder(weights=str(shared_data / RESNET), image_size=None, progress=False)
    assert np.abs(native(big) - feats).max() > 1e-3


def test_resnet20_missing_weights(tmp_path):
    missing = tmp_path / "no_such_weights.th"
    with pytest.raises(GmvError, match="no_such_weights.th"):
        build_embedder("resnet20_cifar", weights=str(missing))
    with pytest.raises(GmvError, match="weights"):
        ResNet20Embedder()


# --- VGG-16 (random weights: no download) --------------------------------------------------------


def test_vgg16_missing_pretrained_weights(tmp_path):
    missing = tmp_path / "vgg16.pth"
    with pytest.raises(GmvError) as e:
        build_embedder("vgg16", weights=str(missing), pretrained=True)
    msg = str(e.value)
    assert str(missing) in msg
    assert "torch hub cache" in msg and "embedder.weights" in msg and "vgg16-397923af.pth" in msg


def test_vgg16_unknown_layer():
    with pytest.raises(GmvError, match="fc7, fc6, pool5"):
        VGG16Embedder(layer="conv3", pretrained=False)


@pytest.fixture(scope="module")
def vgg_pool5():
    torch.manual_seed(123)
    before = torch.get_rng_state()
    emb = VGG16Embedder(layer="pool5", image_size=32, pretrained=False, batch_size=4, progress=False)
    after = torch.get_rng_state()
    yield emb, before, after
    del emb


def test_vgg16_random_keeps_global_rng(vgg_pool5):
    _, before, after = vgg_pool5
    assert torch.equal(before, after)


def test_vgg16_pool5_and_fc7(vgg_pool5):
    pool5, _, _ = vgg_pool5
    images = rng_images(3, 32, 32, 3)
    f5 = pool5(images)
    assert f5.shape == (3, 512) and np.isfinite(f5).all()
    assert pool5.dim((32, 32, 3)) == 512
    assert pool5.fingerprint()["weights"] == "random-seed0"

    fc7 = VGG16Embedder(layer="fc7", image_size=32, pretrained=False, batch_size=4, progress=False)
    f7 = fc7(images)
    assert f7.shape == (3, 4096) and np.isfinite(f7).all()
    assert (f7 >= 0).all()  # after fc7's ReLU
    # random weights are seeded: two builds have the same network
    assert torch.equal(pool5.network.features[0].weight, fc7.network.features[0].weight)
    assert torch.equal(pool5.network.classifier[3].weight, fc7.network.classifier[3].weight)
    assert pool5.fingerprint() != fc7.fingerprint()
    # images of another size are resized to image_size first
    flat = pool5(flat_colours(2, 32))
    assert np.abs(flat).max() > 1e-3
    np.testing.assert_allclose(pool5(flat_colours(2, 48)), flat, rtol=1e-4, atol=1e-5)


# --- Hydra `_target_` modules --------------------------------------------------------------------


def test_module_embedder_flatten():
    emb = build_embedder({"_target_": "torch.nn.Flatten", "image_size": 4, "progress": False})
    assert isinstance(emb, ModuleEmbedder) and emb.image_size == 4
    images = np.zeros((2, 12, 12, 1), np.uint8)
    images[0] = 51
    images[1] = 204
    feats = emb(images)
    assert feats.shape == (2, 3 * 4 * 4)  # grey repeated to 3 channels, resized to 4×4
    assert emb.dim((12, 12, 1)) == 48
    per_channel = feats.reshape(2, 3, 16)
    for i, v in enumerate((51, 204)):
        expect = (v / 255.0 - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
        np.testing.assert_allclose(per_channel[i], np.repeat(expect[:, None], 16, 1), rtol=1e-5, atol=1e-5)
    assert emb.fingerprint()["_target_"] == "torch.nn.Flatten"


def test_device_option_places_the_network():
    """`device: auto` is the CPU on a machine without CUDA (same features); `cuda` there is refused."""
    images = rng_images(3)
    on_cpu = build_embedder({"_target_": "torch.nn.Flatten", "image_size": 4, "progress": False})
    auto = build_embedder({"_target_": "torch.nn.Flatten", "image_size": 4, "progress": False, "device": "auto"})
    want = "cuda" if torch.cuda.is_available() else "cpu"
    assert auto.device.type == want and on_cpu.device.type == "cpu"
    np.testing.assert_allclose(auto(images), on_cpu(images), rtol=1e-5, atol=1e-6)
    assert auto.dim((12, 12, 3)) == 48
    if not torch.cuda.is_available():
        with pytest.raises(GmvError, match="sees no CUDA device"):
            build_embedder({"_target_": "torch.nn.Flatten", "device": "cuda"})


def test_module_embedder_non_finite_output():
    emb = build_embedder({"_target_": NAN_TARGET, "progress": False})
    assert isinstance(emb.network, NaNNet)
    with pytest.raises(GmvError, match="non-finite embeddings for 3 of 3 images"):
        emb(rng_images(3))


def test_non_finite_partial(monkeypatch):
    emb = build_embedder({"_target_": "torch.nn.Flatten", "progress": False})
    real = emb._features

    def some_inf(x):
        out = real(x).clone()
        out[1, 0] = float("inf")
        return out

    monkeypatch.setattr(emb, "_features", some_inf)
    with pytest.raises(GmvError, match="1 of 4 images"):
        emb(rng_images(4))


def test_module_target_errors():
    with pytest.raises(GmvError, match="not a torch.nn.Module"):
        build_embedder({"_target_": "builtins.dict"})
    with pytest.raises(GmvError, match="no_such_module"):
        build_embedder({"_target_": "no_such_module.Net"})
    with pytest.raises(GmvError, match="torch.nn.Linear"):
        build_embedder({"_target_": "torch.nn.Linear"})  # missing required arguments


# --- build_embedder ------------------------------------------------------------------------------


def test_build_embedder_names_and_configs():
    with pytest.raises(GmvError) as e:
        build_embedder("clip")
    assert "'clip'" in str(e.value)
    for choice in ("pixels", "vgg16", "resnet20_cifar"):
        assert choice in str(e.value)

    emb = build_embedder({"name": "pixels", "batch_size": 7, "progress": False})
    assert isinstance(emb, PixelEmbedder) and emb.batch_size == 7 and emb.progress is False
    # options passed beside a mapping override it
    assert build_embedder({"name": "pixels", "batch_size": 7}, batch_size=3).batch_size == 3
    assert isinstance(build_embedder(), PixelEmbedder)
    assert build_embedder(emb) is emb
    with pytest.raises(GmvError, match="name"):
        build_embedder({"batch_size": 7})
    with pytest.raises(GmvError, match="unknown vgg16 layer"):
        build_embedder({"name": "vgg16", "layer": "fc9", "pretrained": False})


# --- embed_cached --------------------------------------------------------------------------------


class Counting(PixelEmbedder):
    def __init__(self):
        super().__init__(progress=False)
        self.calls = 0

    def _forward(self, x):
        self.calls += 1
        return super()._forward(x)


def test_embed_cached_reuses(tmp_path, monkeypatch):
    images = rng_images(5)
    emb = PixelEmbedder(progress=False)
    f1, reused1 = embed_cached(emb, images, tmp_path)
    assert reused1 is False
    (entry,) = (tmp_path / "embeddings").iterdir()  # one cache entry: the features and their completion record
    assert entry.name.startswith("pixels-")
    assert sorted(p.name for p in entry.iterdir() if p.is_file()) == ["done.json", "embeddings.npy"]
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name or "chunk" in p.name]  # chunks joined, removed

    def boom(x):
        raise AssertionError("the network ran although the features were cached")

    monkeypatch.setattr(emb, "_forward", boom)
    f2, reused2 = embed_cached(emb, images.copy(), tmp_path)
    assert reused2 is True
    np.testing.assert_array_equal(f1, f2)
    assert f2.dtype == np.float32

    # a fresh embedder of the same kind (same fingerprint, same code) also hits the cache
    fresh, calls = PixelEmbedder(progress=False), []
    monkeypatch.setattr(fresh, "_forward", lambda x: calls.append(1) or x.flatten(1))
    f3, reused3 = embed_cached(fresh, images, tmp_path)
    assert reused3 is True and not calls
    np.testing.assert_array_equal(f1, f3)
    # a subclass defined elsewhere is other code: its own cache entry (gmv.code_fingerprint)
    other = Counting()
    f4, reused4 = embed_cached(other, images, tmp_path)
    assert reused4 is False and other.calls > 0
    np.testing.assert_array_equal(f1, f4)


def test_embed_cached_recomputes_on_other_images(tmp_path):
    images = rng_images(5)
    emb = Counting()
    embed_cached(emb, images, tmp_path)
    assert emb.calls == 1
    changed = images.copy()
    changed[2, 3, 3, 0] ^= 1  # one pixel differs
    f, reused = embed_cached(emb, changed, tmp_path)
    assert reused is False and emb.calls == 2
    np.testing.assert_array_equal(f, emb(changed))
    f, reused = embed_cached(emb, images[:4], tmp_path)  # fewer images
    assert reused is False
    assert len(list((tmp_path / "embeddings").glob("*/embeddings.npy"))) == 3
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]


def test_embed_cached_recomputes_on_other_fingerprint(tmp_path, monkeypatch):
    images = rng_images(4)
    emb = Counting()
    embed_cached(emb, images, tmp_path)
    monkeypatch.setattr(emb, "fingerprint", lambda: {"name": "pixels", "variant": 2})
    _, reused = embed_cached(emb, images, tmp_path)
    assert reused is False and emb.calls == 2
    _, reused = embed_cached(emb, images, tmp_path)
    assert reused is True and emb.calls == 2


def test_embed_cached_module_image_size_in_key(tmp_path):
    """Two Hydra module embedders that differ only in image_size give different features."""
    images = rng_images(3, 16, 16, 3)
    small = build_embedder({"_target_": "torch.nn.Flatten", "image_size": 4, "progress": False})
    large = build_embedder({"_target_": "torch.nn.Flatten", "image_size": 8, "progress": False})
    fs, _ = embed_cached(small, images, tmp_path)
    fl, reused = embed_cached(large, images, tmp_path)
    assert reused is False
    assert fs.shape == (3, 48) and fl.shape == (3, 192)


def test_embed_cached_wrong_length_file_is_recomputed(tmp_path):
    images = rng_images(4)
    emb = Counting()
    f1, _ = embed_cached(emb, images, tmp_path)
    (path,) = (tmp_path / "embeddings").glob("*/embeddings.npy")
    np.save(path, np.zeros((2, f1.shape[1]), np.float32))  # a stale file with the wrong row count
    f2, reused = embed_cached(emb, images, tmp_path)
    assert reused is False and emb.calls == 2
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(np.load(path), f1)


def test_embed_cached_without_cache_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    emb = Counting()
    f, reused = embed_cached(emb, rng_images(2), None)
    assert reused is False and emb.calls == 1 and f.shape == (2, 192)
    f, reused = embed_cached(emb, rng_images(2), None)
    assert reused is False and emb.calls == 2
    assert list(tmp_path.iterdir()) == []


def test_base_embedder_is_abstract():
    with pytest.raises(NotImplementedError):
        Embedder(progress=False)(rng_images(1))


# --- instance-level embedders (issue 20): ResNet-20 stages, whitened pixels ------------------------


@pytest.fixture(scope="module")
def random_resnet_file(tmp_path_factory):
    from gmv.models.resnet20_cifar import ResNet20

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("w") / "resnet20_random.th"
    torch.save({"state_dict": ResNet20().state_dict()}, path)
    return str(path)


@pytest.mark.parametrize("layer, grid, dim", [("pooled", 4, 64), ("layer1", 8, 16 * 64), ("layer2", 4, 32 * 16),
                                              ("layer3", 2, 64 * 4), ("layer2", 0, 32 * 16 * 16)])
def test_resnet20_stage_features_shapes_and_determinism(random_resnet_file, layer, grid, dim):
    images = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3), dtype=np.uint8)
    emb = build_embedder("resnet20_cifar", weights=random_resnet_file, layer=layer, grid=grid, progress=False)
    a, b = emb(images), emb(images)
    assert a.shape == (6, dim) and emb.dim((32, 32, 3)) == dim and np.array_equal(a, b)
    fp = emb.fingerprint()
    assert ("layer" in fp) == (layer != "pooled")  # the pooled features keep their cache key


def test_resnet20_stage_features_pool_the_stage_map(random_resnet_file):
    images = np.random.default_rng(1).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    full = build_embedder("resnet20_cifar", weights=random_resnet_file, layer="layer3", grid=0, progress=False)(images)
    one = build_embedder("resnet20_cifar", weights=random_resnet_file, layer="layer3", grid=1, progress=False)(images)
    pooled = build_embedder("resnet20_cifar", weights=random_resnet_file, progress=False)(images)
    np.testing.assert_allclose(one, full.reshape(3, 64, 8 * 8).mean(-1), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(one, pooled, rtol=1e-5, atol=1e-6)  # a 1×1 grid of layer3 is the pooled feature
    with pytest.raises(GmvError, match="layer must be one of pooled, layer1, layer2, layer3"):
        build_embedder("resnet20_cifar", weights=random_resnet_file, layer="layer4")
    with pytest.raises(GmvError, match="grid must be an integer"):
        build_embedder("resnet20_cifar", weights=random_resnet_file, layer="layer2", grid=-1)


def test_whitened_pixels_whiten_the_set_they_were_fitted_on():
    rng = np.random.default_rng(2)
    base = rng.normal(size=(300, 8))
    mix = rng.normal(size=(8, 4 * 4 * 3)) * np.linspace(0.2, 5, 8)[:, None]  # 8 directions of very unequal spread
    images = np.clip(np.rint(128 + 4 * base @ mix), 0, 255).astype(np.uint8).reshape(300, 4, 4, 3)
    emb = build_embedder("whitened_pixels", dims=6, eps=1e-6, progress=False)
    with pytest.raises(GmvError, match="not fitted"):
        emb(images)
    assert emb.dim((4, 4, 3)) == 6
    feats = emb.fit(images)(images)
    assert feats.shape == (300, 6) and emb.dim((4, 4, 3)) == 6
    np.testing.assert_allclose(feats.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(feats.std(0, ddof=1), 1, rtol=1e-3)  # unit variance in every kept direction
    np.testing.assert_allclose(np.cov(feats, rowvar=False), np.eye(6), atol=1e-3)  # and uncorrelated
    again = build_embedder("whitened_pixels", dims=6, eps=1e-6, progress=False).fit(images)
    assert again.fingerprint() == emb.fingerprint() and np.array_equal(again(images), feats)
    other = build_embedder("whitened_pixels", dims=6, eps=1e-6, progress=False).fit(images[:150])
    assert other.fingerprint()["whitening"] != emb.fingerprint()["whitening"]  # another fit, another cache key
    with pytest.raises(GmvError, match="dims must be an integer"):
        build_embedder("whitened_pixels", dims=0)


def test_valuate_fits_whitened_pixels_on_the_pool_before_embedding(tmp_path):
    from gmv.valuation.api import valuate

    rng = np.random.default_rng(3)
    v1 = rng.integers(0, 256, (40, 8, 8, 1), dtype=np.uint8)
    v2 = rng.integers(0, 256, (40, 8, 8, 1), dtype=np.uint8)
    gen = np.clip(v1[:20].astype(int) + rng.integers(-3, 4, v1[:20].shape), 0, 255).astype(np.uint8)  # near-copies
    val = valuate(v1, gen, held_out=v2, embedder="whitened_pixels", embedder_options={"dims": 32}, k=3,
                  matcher="flat", baselines=[], cache_dir=tmp_path)
    assert val.embedder["whitening"] is not None and val.pool_emb.shape == (80, 32)
    assert np.mean(val.matches.indices[:, 0] == np.arange(20)) == 1.0  # each near-copy finds its source


def test_library_embedders_by_weights_path(tmp_path):
    """timm (DINOv2), OpenCLIP and TorchScript (SSCD's format) embedders: a missing weights file is one line that
    names it; random weights give features of the right shape; a saved file loads back to the same features."""
    import torch

    from gmv.valuation.embedders import build_embedder

    pytest.importorskip("timm")
    pytest.importorskip("open_clip")
    images = np.random.default_rng(0).integers(0, 256, (3, 28, 28, 3), dtype=np.uint8)
    for name, extra in (("timm", {"image_size": 28}), ("open_clip", {}), ("torchscript", {})):
        with pytest.raises(GmvError, match="needs its weights file .* not found: '/nowhere.pt'"):
            build_embedder(name, weights="/nowhere.pt", **extra)
    dino = build_embedder("timm", pretrained=False, image_size=28, progress=False)
    feats = dino(images)
    assert feats.shape == (3, 384) and np.isfinite(feats).all()
    assert np.array_equal(build_embedder("timm", pretrained=False, image_size=28, progress=False)(images), feats)
    torch.save(dino.network.state_dict(), tmp_path / "dino.pth")
    again = build_embedder("timm", weights=str(tmp_path / "dino.pth"), image_size=28, progress=False)
    assert np.allclose(again(images), feats, atol=1e-5)
    assert again.fingerprint()["weights"] != "random-seed0"
    clip = build_embedder("open_clip", pretrained=False, progress=False)
    assert clip(images[:1]).shape == (1, 512)
    assert np.array_equal(build_embedder("open_clip", pretrained=False, progress=False)(images[:1]), clip(images[:1]))
    net = torch.jit.script(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(1),
                                               torch.nn.Flatten()))
    net.save(str(tmp_path / "sscd.torchscript.pt"))
    ts = build_embedder({"name": "torchscript", "weights": str(tmp_path / "sscd.torchscript.pt"), "image_size": 32},
                        progress=False)
    assert ts(images).shape == (3, 4)


@pytest.mark.parametrize("embedder", ["dinov2_vits14", "clip_vitb32", "sscd"])
def test_a_library_embedder_without_its_weights_stops_the_study_in_one_line(tmp_path, embedder):
    import os
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("timm")
    pytest.importorskip("open_clip")
    gmv = Path(sys.executable).parent / "gmv"
    r = subprocess.run([str(gmv), "experiment=smoke", f"embedder={embedder}", "embedder.weights=/nowhere/w.pt",
                        "logger.mode=disabled", f"hydra.run.dir={tmp_path / 'run'}", f"cache_dir={tmp_path / 'c'}"],
                       capture_output=True, text=True, env={**os.environ, "WANDB_MODE": "disabled"},
                       cwd=Path(__file__).resolve().parents[1])
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert r.returncode == 2 and len(lines) == 1 and "/nowhere/w.pt" in lines[0], r.stderr
    assert not (tmp_path / "c" / "train").exists()  # stopped before any training
