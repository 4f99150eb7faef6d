"""Training trajectories: the membership probe, its callback, resumes and post hoc evaluation (CPU, tiny).

A tiny BigGAN (16×16 grey digits, 3 classes, 24 + 24 images) trains 6 generator iterations; the
probe draws m = 20 samples and matches them with K = 3 in pixel space.
"""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from lightning.pytorch.loggers.logger import Logger
from torch import nn

from gmv.data.imageset import ImageSet
from gmv.data.sources import load_digits
from gmv.data.split import split_imageset, stratified_split
from gmv.errors import GmvError
from gmv.generators.biggan import BigGAN
from gmv.training.datamodule import ImageSetDataModule
from gmv.training.quality import frechet_distance
from gmv.training.train import train_generator
from gmv.training.trajectory import (COLUMNS, MembershipProbe, TrajectoryCallback, attach_callbacks,
                                     evaluate_checkpoints, format_table, read_trajectory,
                                     train_with_trajectory)

ROOT = Path(__file__).resolve().parents[1]
ITERS = 6
EVERY = 2
M, K = 20, 3
NUMBERS = [c for c in COLUMNS if c != "seconds"]  # the columns that depend on the weights only


class RecordingLogger(Logger):
    def __init__(self):
        super().__init__()
        self.calls: list[tuple[dict, int]] = []

    @property
    def name(self):
        return "recording"

    @property
    def version(self):
        return 0

    def log_hyperparams(self, params, *args, **kwargs):
        pass

    def log_metrics(self, metrics, step=None):
        self.calls.append((dict(metrics), step))


def halves() -> tuple[ImageSet, ImageSet]:
    data = load_digits(image_size=16, channels=1)
    split = stratified_split(data.labels, ratio=0.5, classes=[0, 1, 2], seed=0, per_class_limit=16)
    return split_imageset(data, split)


def datamodule(v1: ImageSet) -> ImageSetDataModule:
    return ImageSetDataModule(v1, batch_size=8, seed=1, hflip=False, conditional=True)


def make_module() -> BigGAN:
    torch.manual_seed(0)
    return BigGAN(n_classes=3, image_size=16, channels=1, preset="tiny", g_width=4, d_width=8, batch_size=8,
                  standing_stats=2)


def make_probe(v1, v2, dm) -> MembershipProbe:
    return MembershipProbe(v1, v2, "pixels", dm.labels, dm.class_ids, m=M, k=K, tau=1.0, seed=3)


def cpu_cfg() -> dict:
    from omegaconf import OmegaConf

    cfg = OmegaConf.to_container(OmegaConf.load(ROOT / "conf/trainer/cpu.yaml"))
    cfg["enable_model_summary"] = False
    return cfg


def train(module, dm, out_dir, max_iterations=ITERS, logger=None):
    return train_generator(module, dm, max_iterations, out_dir, trainer_cfg=cpu_cfg(), logger=logger,
                           checkpoint_every=EVERY, sample_every=0, seed=7)


def csv_rows(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames), list(reader)


def same_numbers(a: dict, b: dict) -> None:
    for c in NUMBERS:
        x, y = a[c], b[c]
        if isinstance(x, float) and math.isnan(x):
            assert isinstance(y, float) and math.isnan(y), c
        else:
            assert x == pytest.approx(y, rel=1e-9, abs=1e-12), (c, x, y)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The same 6-iteration training with the trajectory callback (every 2) and without it."""
    v1, v2 = halves()
    base = tmp_path_factory.mktemp("runs")
    dm = datamodule(v1)
    probe = make_probe(v1, v2, dm)
    logger = RecordingLogger()
    with_cb = make_module()
    cb = TrajectoryCallback(probe, every=EVERY, out_dir=base / "with" / "trajectory")
    with attach_callbacks(with_cb, cb):
        train(with_cb, dm, base / "with", logger=logger)
    without = make_module()
    train(without, datamodule(v1), base / "without")
    return dict(v1=v1, v2=v2, probe=probe, base=base, cb=cb, logger=logger, with_cb=with_cb, without=without)


# --------------------------------------------------------------------------- the callback


def test_callback_writes_rows_every_two_iterations(runs):
    out = runs["base"] / "with" / "trajectory"
    header, rows = csv_rows(out / "trajectory.csv")
    assert header == COLUMNS
    assert [int(r["iteration"]) for r in rows] == [2, 4, 6]
    for r in rows:
        for c in COLUMNS:
            if c != "tau":
                assert math.isfinite(float(r[c])), (c, r[c])
        assert 0.0 <= float(r["auroc"]) <= 1.0 and 0.0 <= float(r["p_value"]) <= 1.0
        assert int(r["m"]) == M and int(r["k"]) == K and float(r["tau"]) == 1.0 == float(r["tau_used"])
        assert float(r["fd"]) > 0 and float(r["fd_floor"]) > 0
        assert float(r["fd_ratio"]) == pytest.approx(float(r["fd"]) / float(r["fd_floor"]))
        # the m values sum to m over the pool: mean_v1·n_v1 + mean_v2·n_v2 = m
        n1, n2 = len(runs["v1"]), len(runs["v2"])
        assert float(r["mean_value_v1"]) * n1 + float(r["mean_value_v2"]) * n2 == pytest.approx(M)
        assert float(r["t_critical"]) > 2.0  # one-sided 1% critical value
    assert runs["cb"].iterations == [2, 4, 6]
    png = out / "trajectory.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    w, h = Image.open(png).size
    assert w > 2 * h > 300  # three panels side by side


def test_callback_logs_to_the_trainers_loggers(runs):
    logged = [(m, s) for m, s in runs["logger"].calls if any(k.startswith("trajectory/") for k in m)]
    assert [s for _, s in logged] == [2, 4, 6]  # step = generator iteration
    metrics, _ = logged[-1]
    for name in ("t_statistic", "p_value", "auroc", "cohens_d", "fd", "fd_floor", "fd_ratio", "nn_dist_v1"):
        assert f"trajectory/{name}" in metrics and math.isfinite(metrics[f"trajectory/{name}"])
    rows = read_trajectory(runs["base"] / "with" / "trajectory")
    assert metrics["trajectory/auroc"] == rows[-1]["auroc"]


def test_probe_leaves_training_bit_identical(runs):
    a, b = runs["with_cb"], runs["without"]
    assert a.iteration == b.iteration == ITERS
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k
    ca = torch.load(runs["base"] / "with/checkpoints/last.ckpt", map_location="cpu", weights_only=False)
    cb = torch.load(runs["base"] / "without/checkpoints/last.ckpt", map_location="cpu", weights_only=False)
    for k in ca["state_dict"]:
        assert torch.equal(ca["state_dict"][k], cb["state_dict"][k]), k
    for oa, ob in zip(ca["optimizer_states"], cb["optimizer_states"]):
        for pid in oa["state"]:
            for key, val in oa["state"][pid].items():
                assert torch.equal(val, ob["state"][pid][key]), (pid, key)
    assert set(ca["callbacks"]) == set(cb["callbacks"])  # the callback adds no checkpoint state


def test_probe_restores_module_and_rngs(runs):
    module = runs["with_cb"]
    module.train()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    flags = [m.training for m in module.modules()]
    rng = (torch.get_rng_state(), np.random.get_state()[1].copy(), __import__("random").getstate())
    first = runs["probe"].evaluate(module)
    second = runs["probe"].evaluate(module)
    assert [m.training for m in module.modules()] == flags
    after = module.state_dict()
    for k in before:
        assert torch.equal(before[k], after[k]), k
    assert torch.equal(torch.get_rng_state(), rng[0])
    assert np.array_equal(np.random.get_state()[1], rng[1]) and __import__("random").getstate() == rng[2]
    same_numbers(first, second)  # the same weights give the same row


# --------------------------------------------------------------------------- resume, post hoc


def test_resume_keeps_earlier_rows_without_duplicates(runs, tmp_path):
    v1, v2 = runs["v1"], runs["v2"]
    probe = runs["probe"]
    first = make_module()
    res = train_with_trajectory(first, datamodule(v1), 4, tmp_path, probe, every=EVERY, trainer_cfg=cpu_cfg(),
                                checkpoint_every=EVERY, sample_every=0, seed=7)
    assert [r["iteration"] for r in res["trajectory"]] == [2, 4]
    early = read_trajectory(tmp_path)
    assert "configure_callbacks" not in vars(first)  # attach_callbacks cleaned up

    resumed = make_module()  # a fresh process would start like this
    res = train_with_trajectory(resumed, datamodule(v1), ITERS, tmp_path, probe, every=EVERY, trainer_cfg=cpu_cfg(),
                                checkpoint_every=EVERY, sample_every=0, seed=7)
    assert res["start_iteration"] == 4 and res["iterations"] == ITERS
    rows = read_trajectory(tmp_path)
    assert [r["iteration"] for r in rows] == [2, 4, 6]
    assert rows[:2] == early  # kept as they were (not evaluated again: even `seconds` is unchanged)
    # a bit-identical resume: the same numbers as the uninterrupted run with the callback
    straight = read_trajectory(runs["base"] / "with" / "trajectory")
    for a, b in zip(rows, straight):
        same_numbers(a, b)


def test_evaluate_checkpoints_matches_the_callback(runs, tmp_path):
    ckpts = sorted((runs["base"] / "with" / "checkpoints").glob("iter_*.ckpt"))
    assert [p.name for p in ckpts] == ["iter_000002.ckpt", "iter_000004.ckpt", "iter_000006.ckpt"]
    last = runs["base"] / "with" / "checkpoints" / "last.ckpt"
    module = make_module()
    rows = evaluate_checkpoints(module, ckpts + [last], runs["probe"], tmp_path, progress=False)
    assert [r["iteration"] for r in rows] == [2, 4, 6]  # last.ckpt (iteration 6) not repeated
    assert module.iteration == ITERS
    callback_rows = read_trajectory(runs["base"] / "with" / "trajectory")
    for a, b in zip(rows, callback_rows):
        same_numbers(a, b)
    header, written = csv_rows(tmp_path / "trajectory.csv")
    assert header == COLUMNS and len(written) == 3 and (tmp_path / "trajectory.png").is_file()
    # resume=True evaluates only new iterations; resume=False rewrites
    again = evaluate_checkpoints(make_module(), ckpts, runs["probe"], tmp_path, resume=True, progress=False)
    assert [r["seconds"] for r in again] == [r["seconds"] for r in read_trajectory(tmp_path)]
    table = format_table(rows)
    assert len(table.splitlines()) == 4 and "AUROC" in table


# --------------------------------------------------------------------------- planted cases


class CopyModule(nn.Module):
    """A stand-in generator that 'generates' exact copies of given images (each once per pass)."""

    def __init__(self, images: ImageSet):
        super().__init__()
        self.register_buffer("_iteration", torch.tensor(7))
        self.register_buffer("x", torch.from_numpy(images.to_float()))
        self.n_classes = 1

    @property
    def iteration(self) -> int:
        return int(self._iteration)

    @torch.inference_mode()
    def generate(self, labels, generator):
        n = len(self.x)
        order = torch.cat([torch.randperm(n, generator=generator) for _ in range(-(-len(labels) // n))])
        return self.x[order[: len(labels)]]


def test_planted_copies_of_v1_are_members():
    v1, v2 = halves()
    probe = MembershipProbe(v1, v2, "pixels", None, None, m=2 * len(v1), k=K, seed=0)
    row = probe.evaluate(CopyModule(v1))
    assert row["iteration"] == 7
    assert row["auroc"] > 0.9 and row["t_statistic"] > 3 and row["p_value"] < 0.01
    assert row["mean_value_v1"] > 3 * row["mean_value_v2"]
    assert row["nn_dist_v1"] == pytest.approx(0.0, abs=1e-3) and row["nn_dist_v2"] > 1.0
    # tau = "auto" is passed through to the valuation; the row records the τ it resolved to
    auto = MembershipProbe(v1, v2, "pixels", None, None, m=2 * len(v1), k=K, tau="auto", seed=0)
    row = auto.evaluate(CopyModule(v1))
    assert row["tau"] == "auto" and math.isfinite(row["tau_used"]) and row["tau_used"] > 0
    assert row["auroc"] > 0.9 and row["t_statistic"] > 3


def test_planted_copies_of_v2_are_not_members():
    v1, v2 = halves()
    probe = MembershipProbe(v1, v2, "pixels", None, None, m=2 * len(v2), k=K, seed=0)
    row = probe.evaluate(CopyModule(v2))
    assert row["auroc"] < 0.5 and row["t_statistic"] < 0 and row["p_value"] > 0.5
    assert row["nn_dist_v2"] == pytest.approx(0.0, abs=1e-3)
    # X̂ = copies of X_v2: its Fréchet distance to X_v1 is that of held-out data, the floor's scale
    assert 0.3 < row["fd_ratio"] < 3.0


# --------------------------------------------------------------------------- helpers


def test_frechet_distance_svd_route_agrees_with_sqrtm():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 12)) @ rng.normal(size=(12, 12))
    b = rng.normal(0.3, 1.2, size=(200, 12)) @ rng.normal(size=(12, 12))
    ref = frechet_distance(a, b, method="sqrtm")
    assert frechet_distance(a, b, method="svd") == pytest.approx(ref, rel=1e-8)
    assert frechet_distance(a, b) == ref  # the default, auto, with D ≤ N: the sqrtm route itself
    # D > N: the svd route (the default's), exact: the same value as the regularised sqrtm to its precision,
    # still ≥ 0, and 0 for identical sets
    c, d = rng.normal(size=(20, 64)), rng.normal(0.2, 1.1, size=(30, 64))
    assert frechet_distance(c, d) == frechet_distance(c, d, method="svd")
    assert frechet_distance(c, d) == pytest.approx(frechet_distance(c, d, method="sqrtm"), rel=1e-4)
    assert frechet_distance(c, c) == pytest.approx(0.0, abs=1e-9) and frechet_distance(c, d) > 0


def test_probe_rejects_bad_settings():
    v1, v2 = halves()
    with pytest.raises(GmvError, match="k must lie"):
        MembershipProbe(v1, v2, "pixels", None, None, m=10, k=1000)
    with pytest.raises(GmvError, match="m ≥ 2"):
        MembershipProbe(v1, v2, "pixels", None, None, m=1)
    with pytest.raises(GmvError, match="distance"):
        MembershipProbe(v1, v2, "pixels", None, None, distance="cosine")
    with pytest.raises(GmvError, match="every"):
        TrajectoryCallback(None, every=-1, out_dir=".")


def test_script_help():
    out = subprocess.run([str(Path(sys.executable).with_name("gmv-trajectory")), "--help"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0 and "RUN_DIR" in out.stdout and "--cache-dir" in out.stdout


def test_script_on_a_study_run(tmp_path, monkeypatch):
    """A tiny study with a checkpoint every iteration, started from tmp_path with a relative cache_dir;
    the script, started elsewhere, finds the cache beside the run folder."""
    from hydra import compose, initialize_config_dir

    from gmv.pipeline import run_study

    overrides = ["experiment=smoke", "logger.mode=disabled", "train.max_iterations=3", "train.checkpoint_every=1",
                 "generate.m=40", "data.split.per_class_limit=12", "valuation.tsne_cap=60", "valuation.ra3_n=2",
                 "valuation.k=3", "matcher=flat", "cache_dir=cache"]
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        cfg = compose("config", overrides=overrides)
    monkeypatch.chdir(tmp_path)
    metrics = run_study(cfg, tmp_path / "runs" / "tiny")
    run = tmp_path / "runs" / "tiny"
    env = {**__import__("os").environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    cmd = [str(Path(sys.executable).with_name("gmv-trajectory")), str(run), "--m", "40", "--every-nth", "2",
           "--out", str(tmp_path / "traj")]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = read_trajectory(tmp_path / "traj")
    assert [r["iteration"] for r in rows] == [1, 3]  # iter 1, (2 skipped), 3 = the newest
    assert all(r["k"] == 3 and r["m"] == 40 for r in rows)
    assert "AUROC" in out.stdout and (tmp_path / "traj" / "trajectory.png").is_file()
    # m, seed, K and the exact matcher as in the study: the final row is the study's RA2 result
    assert rows[-1]["t_statistic"] == pytest.approx(metrics["t_statistic"], rel=1e-6)
    assert rows[-1]["auroc"] == pytest.approx(metrics["auroc"], rel=1e-9)
    # an explicit --cache-dir, and a wrong one
    bad = subprocess.run(cmd[:3] + ["--cache-dir", str(tmp_path / "nowhere")], cwd=ROOT, capture_output=True,
                         text=True, timeout=600, env=env)
    assert bad.returncode == 2 and "--cache-dir" in bad.stderr
