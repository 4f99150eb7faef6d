"""Training harness, data stream, sampling and sample-quality tests (fast, CPU).

The dummy generator is a tiny conditional GAN with manual optimisation (two optimiser steps per
generator iteration) that draws from torch's, NumPy's and Python's global RNGs (noise, dropout,
jitter), so bit-identical resumes are a real test of the checkpointed state.
"""

from __future__ import annotations

import copy
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from gmv.data.imageset import ImageSet
from gmv.errors import GmvError
from gmv.generators.base import GeneratorModule
from gmv.training import quality
from gmv.training.datamodule import ImageSetDataModule
from gmv.training.quality import embedding_fd, frechet_distance, inception_fid
from gmv.training.sample import class_counts, class_ids_from_counts, sample_imageset, save_grid
from gmv.training.train import train_generator

ROOT = Path(__file__).resolve().parents[1]
LABELS = (3, 7, 9)  # deliberately not contiguous


class TinyGAN(GeneratorModule):
    def __init__(self, n_classes: int = 3, image_size: int = 4, channels: int = 1, zdim: int = 8):
        super().__init__(n_classes, image_size, channels)
        self.automatic_optimization = False
        d = channels * image_size * image_size
        self.zdim = zdim
        self.emb = nn.Embedding(n_classes, zdim)
        self.G = nn.Sequential(nn.Linear(zdim, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, d), nn.Tanh())
        self.D = nn.Sequential(nn.Linear(d, 32), nn.LeakyReLU(0.2), nn.Dropout(0.2), nn.Linear(32, 1))
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False)
        self.emb_ema = copy.deepcopy(self.emb).requires_grad_(False)
        self.seen = []  # the labels of every batch trained on, for the DDP test

    def training_step(self, batch, batch_idx):
        x, y = batch
        opt_g, opt_d = self.optimizers()
        n = len(x)
        jitter = 1e-3 * (float(np.random.rand()) + random.random())  # NumPy + Python global RNGs
        z = torch.randn(n, self.zdim) + self.emb(y)
        loss_d = F.softplus(self.D(self.G(z).detach())).mean() + F.softplus(-self.D(x.flatten(1) + jitter)).mean()
        opt_d.zero_grad()
        self.manual_backward(loss_d)
        opt_d.step()
        z = torch.randn(n, self.zdim) + self.emb(y)
        loss_g = F.softplus(-self.D(self.G(z))).mean()
        opt_g.zero_grad()
        self.manual_backward(loss_g)
        opt_g.step()
        with torch.no_grad():
            for e, p in zip(list(self.G_ema.parameters()) + list(self.emb_ema.parameters()),
                            list(self.G.parameters()) + list(self.emb.parameters())):
                e.lerp_(p, 0.5)
        self._advance_iteration()
        self.seen.append(y.tolist())
        self.log("loss_g", loss_g, prog_bar=True)

    def configure_optimizers(self):
        g = torch.optim.Adam(list(self.G.parameters()) + list(self.emb.parameters()), lr=1e-2)
        d = torch.optim.Adam(self.D.parameters(), lr=1e-2)
        return [g, d]

    @torch.inference_mode()
    def generate(self, labels, generator):
        z = torch.randn(len(labels), self.zdim, generator=generator).to(self.device)
        out = self.G_ema(z + self.emb_ema(labels.to(self.device)))
        return out.view(-1, self.channels, self.image_size, self.image_size)


def tiny_set(n: int = 40, seed: int = 0) -> ImageSet:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 4, 4, 1), dtype=np.uint8)
    labels = np.asarray(LABELS)[np.arange(n) % 3]
    return ImageSet(images, labels, name="tiny")


def make_module(seed: int = 0) -> TinyGAN:
    torch.manual_seed(seed)
    return TinyGAN()


def cpu_cfg() -> dict:
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(OmegaConf.load(ROOT / "conf/trainer/cpu.yaml"))
    cfg["enable_model_summary"] = False
    return cfg


def run(module, out_dir, max_iterations, **kw):
    dm = ImageSetDataModule(tiny_set(), batch_size=8, seed=1, hflip=True)
    kw.setdefault("checkpoint_every", 2)
    kw.setdefault("sample_every", 3)
    return train_generator(module, dm, max_iterations, out_dir, trainer_cfg=cpu_cfg(), seed=5, **kw), dm


def assert_same(a, b, path="ckpt"):
    """Recursive bit-identity of checkpoint contents (tensors with torch.equal)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), path
    elif isinstance(a, dict):
        assert set(a) == set(b), (path, set(a) ^ set(b))
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    else:
        assert a == b, (path, a, b)


def load(path):
    return torch.load(path, map_location="cpu", weights_only=False)


# --------------------------------------------------------------------------- training harness


def test_counter_counts_generator_iterations(tmp_path):
    m = make_module()
    res, dm = run(m, tmp_path, 5, checkpoint_every=0, sample_every=0)
    assert m.iteration == 5 and res["iterations"] == 5 and res["iterations_run"] == 5
    ckpt = load(tmp_path / "checkpoints/last.ckpt")
    assert ckpt["global_step"] == 10  # two optimiser steps per iteration: Lightning counts both
    assert ckpt["gmv"]["iteration"] == 5 and ckpt["state_dict"]["_iteration"] == 5
    assert ckpt["ImageSetDataModule"]["batches_consumed"] == 5 == dm.batches_consumed
    assert res["images"] == 40 and res["images_per_s"] > 0 and res["wall_time_s"] > 0
    assert res["checkpoint"] == str(tmp_path / "checkpoints/last.ckpt")
    assert not list((tmp_path / "checkpoints").glob("iter_*")) and not (tmp_path / "samples").exists()


def test_resume_equals_uninterrupted(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    straight = make_module()
    res_a, _ = run(straight, a, 6)
    assert straight.iteration == 6
    first = make_module()
    run(first, b, 3)
    assert first.iteration == 3 and (b / "checkpoints/last.ckpt").exists()
    resumed = make_module()  # a fresh process's module: everything comes from last.ckpt
    res_b, dm_b = run(resumed, b, 6)
    assert res_b["resumed_from"] and res_b["start_iteration"] == 3 and res_b["iterations_run"] == 3
    assert dm_b.batches_consumed == 6

    for name, p in straight.state_dict().items():
        assert torch.equal(p, resumed.state_dict()[name]), name
    ca, cb = load(a / "checkpoints/last.ckpt"), load(b / "checkpoints/last.ckpt")
    for key in ("state_dict", "optimizer_states", "ImageSetDataModule", "callbacks", "gmv", "global_step"):
        assert_same(ca[key], cb[key], key)
    assert sorted(p.name for p in (a / "checkpoints").glob("iter_*")) == [
        "iter_000002.ckpt", "iter_000004.ckpt", "iter_000006.ckpt"]
    assert_same(load(a / "checkpoints/iter_000004.ckpt")["state_dict"], load(b / "checkpoints/iter_000004.ckpt")["state_dict"])
    assert sorted(p.name for p in (a / "samples").glob("*.png")) == ["iter_000003.png", "iter_000006.png"]
    assert (a / "samples/iter_000006.png").read_bytes() == (b / "samples/iter_000006.png").read_bytes()

    # the same call again: nothing left to do, nothing rewritten, trained weights handed back
    before = (b / "checkpoints/last.ckpt").stat().st_mtime_ns
    again = make_module()
    res_c, _ = run(again, b, 6)
    assert res_c["iterations_run"] == 0 and res_c["iterations"] == 6 and again.iteration == 6
    assert (b / "checkpoints/last.ckpt").stat().st_mtime_ns == before
    assert torch.equal(again.G_ema[0].weight, straight.G_ema[0].weight)


def test_trainer_config_rejects_harness_keys(tmp_path):
    dm = ImageSetDataModule(tiny_set(), batch_size=8)
    with pytest.raises(GmvError, match="max_steps"):
        train_generator(make_module(), dm, 2, tmp_path, trainer_cfg={"accelerator": "cpu", "max_steps": 3})
    with pytest.raises(GmvError, match="max_iterations"):
        train_generator(make_module(), dm, 0, tmp_path)


def test_trainer_configs_are_hardware_only():
    from omegaconf import OmegaConf

    for name in ("cpu", "gpu", "ddp", "ddp_sim"):
        cfg = OmegaConf.to_container(OmegaConf.load(ROOT / f"conf/trainer/{name}.yaml"))
        assert {"accelerator", "devices", "strategy", "precision", "num_nodes"} <= set(cfg), name
        assert "max_iterations" not in cfg and "max_steps" not in cfg
    sim = OmegaConf.load(ROOT / "conf/trainer/ddp_sim.yaml")
    assert (sim.accelerator, sim.devices, sim.strategy, sim.process_group_backend) == ("cpu", 2, "ddp", "gloo")


# --------------------------------------------------------------------------- datamodule


def test_datamodule_class_mapping():
    data = tiny_set()
    dm = ImageSetDataModule(data, batch_size=8)
    assert dm.class_ids.tolist() == list(LABELS) and dm.n_classes == 3
    assert np.array_equal(dm.class_ids[dm.labels], data.labels)
    assert dm.to_original_labels(np.array([2, 0, 1])).tolist() == [9, 3, 7]
    fixed = ImageSetDataModule(data, batch_size=8, classes=[9, 7, 3, 11])
    assert fixed.n_classes == 4 and np.array_equal(fixed.class_ids[fixed.labels], data.labels)
    unc = ImageSetDataModule(data, batch_size=8, conditional=False)
    assert unc.n_classes == 1 and unc.class_ids.tolist() == [-1] and (unc.labels == 0).all()
    with pytest.raises(GmvError, match="not among classes"):
        ImageSetDataModule(data, batch_size=8, classes=[3, 7])
    partial = ImageSet(data.images, np.where(np.arange(40) < 5, -1, data.labels))
    with pytest.raises(GmvError, match="unknown label"):
        ImageSetDataModule(partial, batch_size=8)
    with pytest.raises(GmvError, match="fewer than one batch"):
        ImageSetDataModule(data, batch_size=64)


def test_datamodule_stream_deterministic_and_resumable():
    data = tiny_set()
    dm = ImageSetDataModule(data, batch_size=16, seed=3)
    assert dm.batches_per_epoch == 2  # 40 // 16, tail dropped
    again = ImageSetDataModule(data, batch_size=16, seed=3)
    other = ImageSetDataModule(data, batch_size=16, seed=4)
    for b in range(5):
        x, y = dm.batch(b)
        assert x.dtype == torch.float32 and x.shape == (16, 1, 4, 4) and y.dtype == torch.int64
        assert -1 <= x.min() and x.max() <= 1
        assert torch.equal(x, again.batch(b)[0]) and torch.equal(y, again.batch(b)[1])
    assert not torch.equal(dm.batch(0)[0], other.batch(0)[0])
    # within an epoch: disjoint batches; every batch is a pure function of (seed, b)
    idx0, _ = dm.stream.indices(0)
    idx1, _ = dm.stream.indices(1)
    assert len(set(idx0) | set(idx1)) == 32
    ref = torch.from_numpy(data.to_float())
    assert torch.equal(dm.batch(3)[0], ref[torch.from_numpy(dm.stream.indices(3)[0])])

    stream = iter(dm.train_dataloader())
    for b in range(4):
        assert torch.equal(next(stream)[0], dm.batch(b)[0])
    state = dict(dm.state_dict(), batches_consumed=5)
    fresh = ImageSetDataModule(data, batch_size=16, seed=3)
    fresh.load_state_dict(state)
    assert torch.equal(next(iter(fresh.train_dataloader()))[0], dm.batch(5)[0])
    with pytest.raises(GmvError, match="cannot resume"):
        other.load_state_dict(state)


def test_datamodule_workers_and_flips():
    data = tiny_set()
    dm = ImageSetDataModule(data, batch_size=8, seed=2, hflip=True, num_workers=2)
    it = iter(dm.train_dataloader())
    for b in range(5):
        assert torch.equal(next(it)[0], dm.batch(b)[0])
    ref = torch.from_numpy(data.to_float())
    n_flipped = 0
    for b in range(4):
        x, _ = dm.batch(b)
        idx, flips = dm.stream.indices(b)
        n_flipped += int(flips.sum())
        for i, k in enumerate(idx):
            assert torch.equal(x[i], ref[k].flip(-1) if flips[i] else ref[k])
    assert 0 < n_flipped < 32
    assert ImageSetDataModule(data, batch_size=8, seed=2).stream.indices(0)[1] is None


# --------------------------------------------------------------------------- sampling


def test_class_counts_largest_remainder():
    labels = np.array([0] * 5 + [1] * 3 + [2] * 2)
    assert class_counts(labels, 7).tolist() == [4, 2, 1]  # quotas 3.5, 2.1, 1.4
    assert class_counts(labels, 10).tolist() == [5, 3, 2]
    assert class_counts(np.array([1.0, 1.0, 1.0]), 4).tolist() == [2, 1, 1]  # tie → lower id
    assert class_counts(np.array([0.5, 0.25, 0.25]), 0).tolist() == [0, 0, 0]
    for m in (1, 13, 997):
        c = class_counts(np.array([0.123, 0.5, 0.377]), m)
        assert c.sum() == m and np.all(np.abs(c - m * np.array([0.123, 0.5, 0.377])) < 1)
    assert class_counts(labels, 9, only=[1]).tolist() == [0, 9, 0]
    assert class_counts(labels, 8, only=[0, 2]).tolist() == [6, 0, 2]  # 5:2 → 5.71, 2.29
    assert class_counts(np.array([0, 0, 1]), 4, n_classes=4).tolist() == [3, 1, 0, 0]
    assert class_counts(np.array([0, 0, 1]), 4, n_classes=4, only=[3]).tolist() == [0, 0, 0, 4]
    assert class_ids_from_counts([2, 0, 1]).tolist() == [0, 0, 2]
    with pytest.raises(GmvError):
        class_counts(np.array([0.5, -0.1]), 3)
    with pytest.raises(GmvError):
        class_counts(labels, -1)


def test_sample_imageset_deterministic_and_labelled(tmp_path):
    m = make_module()
    m.train()
    ids = class_ids_from_counts([3, 2, 2])
    a = sample_imageset(m, 7, ids, seed=11, batch_size=3, label_values=np.array(LABELS), progress=False)
    b = sample_imageset(m, 7, ids, seed=11, batch_size=3, label_values=np.array(LABELS), progress=False)
    c = sample_imageset(m, 7, ids, seed=12, batch_size=3, label_values=np.array(LABELS), progress=False)
    assert a.images.dtype == np.uint8 and a.images.shape == (7, 4, 4, 1)
    assert np.array_equal(a.images, b.images) and not np.array_equal(a.images, c.images)
    assert a.labels.tolist() == [3, 3, 3, 7, 7, 9, 9]
    assert m.training and m.G.training  # mode restored
    plain = sample_imageset(m, 7, ids, seed=11, batch_size=3, progress=False)
    assert plain.labels.tolist() == ids.tolist()
    with pytest.raises(GmvError, match="class ids"):
        sample_imageset(m, 2, np.array([0, 5]), seed=0, progress=False)
    with pytest.raises(GmvError, match="2 class ids"):
        sample_imageset(m, 3, np.array([0, 1]), seed=0, progress=False)

    from PIL import Image

    path = save_grid(a.images[:6], tmp_path / "grid.png", nrow=3)
    with Image.open(path) as im:
        assert im.size == (3 * 6 + 2, 2 * 6 + 2) and im.mode == "RGB"
    assert not list(tmp_path.glob(".*tmp*"))


def test_generate_joins_parts_into_a_streamed_samples_file(tmp_path, monkeypatch):
    """X̂ is written in parts, joined one part at a time and returned streamed from samples.npz: the
    pixels equal one uninterrupted `sample_imageset` call and the file reads with plain np.load."""
    from types import SimpleNamespace

    from gmv.cache import CacheEntry
    from gmv.data.stream import LazyImageSet
    from gmv.pipeline import sample_stage as sampling

    monkeypatch.setattr(sampling, "PART_BATCHES", 2)  # parts of 2 batches of 3: 6 + 6 + 1 images
    m = make_module()
    datamodule = SimpleNamespace(labels=np.array([0, 0, 1, 2]), n_classes=3, class_ids=np.array(LABELS))
    entry = CacheEntry(tmp_path, "samples", "k")
    entry.folder.mkdir(parents=True)
    cfg = {"m": 13, "batch_size": 3, "seed": 5, "classes": None}
    got = sampling.generate(m, datamodule, cfg, entry, progress=False)
    ids = sampling.sample_class_ids(datamodule, cfg, 13)
    want = sample_imageset(m, 13, ids, seed=5, batch_size=3, label_values=np.array(LABELS), progress=False)
    assert isinstance(got, LazyImageSet) and got.name == "generated" and len(got) == 13
    assert np.array_equal(got.images.read_range(0, 13), want.images)
    assert np.array_equal(got[np.array([12, 0, 7])], want.images[[12, 0, 7]])
    assert got.labels.tolist() == want.labels.tolist()
    with np.load(entry.folder / "samples.npz") as z:
        assert np.array_equal(z["images"], want.images) and sorted(z.files) == ["images", "labels"]
    assert not list(entry.folder.glob("part_*")) and (entry.folder / "samples.png").is_file()
    reloaded = sampling.load(entry)
    assert np.array_equal(reloaded.images.read_range(0, 13), want.images)


def test_streamed_npz_refuses_pieces_that_do_not_fit(tmp_path):
    from gmv.io import save_npz_streamed

    with pytest.raises(ValueError, match="4 rows"):
        save_npz_streamed(tmp_path / "a.npz", "x", (5, 2), np.uint8, iter([np.zeros((4, 2))]))
    with pytest.raises(ValueError, match="does not fit"):
        save_npz_streamed(tmp_path / "a.npz", "x", (5, 2), np.uint8, iter([np.zeros((5, 3))]))
    assert not list(tmp_path.iterdir())  # nothing left behind


# --------------------------------------------------------------------------- quality


def _standardised(n, d, rng):
    """n×d samples with sample mean exactly 0 and sample covariance (ddof 1) exactly I."""
    z = rng.standard_normal((n, d))
    z -= z.mean(axis=0)
    chol = np.linalg.cholesky(np.cov(z, rowvar=False).reshape(d, d))
    return z @ np.linalg.inv(chol).T


def test_frechet_distance_closed_forms():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((500, 6))
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    # 1-D Gaussians: (μ1 − μ2)² + (σ1 − σ2)², exact with standardised features
    z1, z2 = _standardised(200, 1, rng), _standardised(300, 1, rng)
    assert frechet_distance(1.5 + 2.0 * z1[:, 0], -0.5 + 0.5 * z2[:, 0]) == pytest.approx(4.0 + 2.25, rel=1e-10)
    # diagonal Gaussians: ‖μa − μb‖² + Σ (σa − σb)²
    mu_a, mu_b = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.0])
    sa, sb = np.array([1.0, 2.0, 0.5]), np.array([3.0, 1.0, 0.5])
    fa, fb = mu_a + _standardised(400, 3, rng) * sa, mu_b + _standardised(400, 3, rng) * sb
    want = ((mu_a - mu_b) ** 2).sum() + ((sa - sb) ** 2).sum()
    assert frechet_distance(fa, fb) == pytest.approx(want, rel=1e-9)
    # large random samples approach the population value
    big = frechet_distance(rng.normal(1.0, 2.0, (200_000, 1)), rng.normal(0.0, 1.0, (200_000, 1)))
    assert big == pytest.approx(2.0, abs=0.05)
    # full covariances: tr (ΣaΣb)^½ = Σ √eig(ΣaΣb)
    x, y = rng.standard_normal((300, 4)) @ rng.standard_normal((4, 4)), rng.standard_normal((300, 4))
    ca, cb = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    tr = np.sqrt(np.linalg.eigvals(ca @ cb).real.clip(0)).sum()
    ref = ((x.mean(0) - y.mean(0)) ** 2).sum() + np.trace(ca) + np.trace(cb) - 2 * tr
    assert frechet_distance(torch.from_numpy(x), y) == pytest.approx(ref, rel=1e-8)
    # fewer samples than dimensions: singular covariances still give a finite number
    assert np.isfinite(frechet_distance(rng.standard_normal((5, 20)), rng.standard_normal((6, 20))))
    with pytest.raises(GmvError, match="dimensions differ"):
        frechet_distance(a, a[:, :3])
    assert embedding_fd(a, a, "dino v2") == {"fd_dino_v2": pytest.approx(0.0, abs=1e-8)}


def test_inception_fid_skips_cleanly(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "hub"))
    real, fake = tiny_set(), tiny_set(seed=1)
    if not quality._fidelity_available():
        assert inception_fid(real, fake) is None
        assert "torch-fidelity is not installed" in capsys.readouterr().err
    monkeypatch.setattr(quality, "_fidelity_available", lambda: True)
    assert inception_fid(real, fake) is None
    err = capsys.readouterr().err.strip()
    assert err.startswith("Inception weights not found at ") and err.endswith("skipping FID/KID")
    assert str(tmp_path / "hub") in err and "\n" not in err
    assert not (tmp_path / "hub").exists()  # the check creates and downloads nothing


# --------------------------------------------------------------------------- DDP (2 CPU processes)

_DDP_SCRIPT = """
import json, os, sys
sys.path.insert(0, {tests!r})
from omegaconf import OmegaConf
from test_training import make_module, tiny_set
from gmv.training.datamodule import ImageSetDataModule
from gmv.training.train import train_generator

out, n = sys.argv[1], int(sys.argv[2])
cfg = OmegaConf.to_container(OmegaConf.load({cfg!r}))
cfg["enable_model_summary"] = False
m = make_module()
dm = ImageSetDataModule(tiny_set(), batch_size=8, seed=1, hflip=True)
res = train_generator(m, dm, n, out, trainer_cfg=cfg, checkpoint_every=2, sample_every=2, seed=5)
rank = os.environ.get("LOCAL_RANK", "0")
res["seen"] = m.seen
with open(os.path.join(out, f"result_{{rank}}_{{n}}.json"), "w") as f:
    json.dump(res, f)
"""


@pytest.mark.slow
def test_ddp_sim_two_cpu_processes(tmp_path):
    script = tmp_path / "ddp_run.py"
    script.write_text(_DDP_SCRIPT.format(tests=str(ROOT / "tests"), cfg=str(ROOT / "conf/trainer/ddp_sim.yaml")))
    env = dict(os.environ, WANDB_MODE="disabled", PYTHONPATH=str(ROOT))

    def launch(out, n):
        out.mkdir(exist_ok=True)
        p = subprocess.run([sys.executable, str(script), str(out), str(n)], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]

    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    launch(straight, 4)
    r0 = json.loads((straight / "result_0_4.json").read_text())
    r1 = json.loads((straight / "result_1_4.json").read_text())
    assert r0["world_size"] == 2 and r0["iterations"] == r1["iterations"] == 4
    assert r0["images"] == 4 * 8  # global batch 8 = 2 ranks × 4
    dm = ImageSetDataModule(tiny_set(), batch_size=8, seed=1, hflip=True)
    for b in range(4):  # rank r trained on slice r of global batch b
        y = dm.batch(b)[1].tolist()
        assert r0["seen"][b] == y[:4] and r1["seen"][b] == y[4:]
    ckpt = load(straight / "checkpoints/last.ckpt")
    states = ckpt["callbacks"]["RNGStateCallback"]["states"]
    assert len(states) == 2 and not torch.equal(states[0]["torch"], states[1]["torch"])
    assert (straight / "samples/iter_000004.png").exists()

    launch(resumed, 2)
    launch(resumed, 4)
    assert_same(ckpt["state_dict"], load(resumed / "checkpoints/last.ckpt")["state_dict"])
    assert_same(ckpt["optimizer_states"], load(resumed / "checkpoints/last.ckpt")["optimizer_states"])
