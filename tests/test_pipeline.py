"""The study pipeline (gmv/pipeline, the `gmv` app): stage caching, early errors, multirun + report."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from gmv.errors import GmvError
from gmv.pipeline import run_study
from gmv.cache import array_digest, key_of

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
GMV = Path(sys.executable).parent / "gmv"
GMV_REPORT = Path(sys.executable).parent / "gmv-report"

#: the smallest study that exercises every stage (≈ 15 s on one core)
TINY = ["experiment=smoke", "logger.mode=disabled", "train.max_iterations=3", "generate.m=40",
        "data.split.per_class_limit=12", "valuation.tsne_cap=60", "valuation.ra3_n=2", "valuation.k=3"]


def cfg_of(*overrides: str):
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return compose("config", overrides=list(overrides))


def env() -> dict:
    return {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}


def test_cache_keys_follow_content_not_identity():
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    assert array_digest(a) == array_digest(a.copy())
    b = a.copy()
    b[0, 0] = 1
    assert array_digest(a) != array_digest(b)
    assert key_of({"x": 1, "y": [1, 2]}) == key_of({"y": [1, 2], "x": 1})  # order-free
    assert key_of({"x": 1}) != key_of({"x": 2})


def test_default_study_config_is_the_documented_one():
    cfg = cfg_of()
    assert cfg.data.source == "digits" and cfg.generator._target_.endswith("CFGDiffusion")
    assert cfg.train.max_iterations == 1000 and cfg.valuation.tau == "auto" and cfg.valuation.k == 5
    assert cfg.valuation.held_out and cfg.study == "default" and cfg.logger.mode == "offline"


def test_changed_k_reuses_training_samples_and_embeddings(tmp_path, monkeypatch, capsys):
    cache = tmp_path / "cache"
    first = run_study(cfg_of(*TINY, f"cache_dir={cache}"), tmp_path / "run1")
    stages1 = json.loads((tmp_path / "run1" / "stages.json").read_text())
    assert stages1["train"]["reused"] is False and stages1["embed"]["reused"] is False
    ckpt = cache / "train" / stages1["train"]["key"] / "checkpoints" / "last.ckpt"
    stamp = ckpt.stat().st_mtime_ns

    # the second run must neither train nor embed: make both impossible
    import gmv.training.train as harness
    from gmv.valuation.embedders import Embedder

    def no_training(*a, **k):
        raise AssertionError("the generator was retrained")

    def no_embedding(*a, **k):
        raise AssertionError("images were re-embedded")

    monkeypatch.setattr(harness.L.Trainer, "fit", no_training)
    monkeypatch.setattr(Embedder, "__call__", no_embedding)
    second = run_study(cfg_of(*TINY, f"cache_dir={cache}", "valuation.k=5"), tmp_path / "run2")
    stages2 = json.loads((tmp_path / "run2" / "stages.json").read_text())
    assert [stages2[s]["reused"] for s in ("train", "generate", "embed")] == [True, True, True]
    assert stages2["train"]["key"] == stages1["train"]["key"]
    assert ckpt.stat().st_mtime_ns == stamp
    assert first["k"] == 3 and second["k"] == 5
    # same samples, same pool, different K → different values
    s1, s2 = np.load(tmp_path / "run1" / "samples.npz"), np.load(tmp_path / "run2" / "samples.npz")
    assert np.array_equal(s1["images"], s2["images"])
    assert second["train_seconds"] == first["train_seconds"]  # the training run's time, reported again
    for name in ("config.yaml", "metrics.json", "values.csv", "ra2_table.md", "ra1_tsne.png", "ra3_high.png",
                 "samples.npz", "samples.png", "manifest.json", "split.npz"):
        assert (tmp_path / "run2" / name).is_file(), name
    manifest = json.loads((tmp_path / "run2" / "manifest.json").read_text())
    assert manifest["packages"]["torch"] and manifest["seeds"]["seed"] == 0
    kept = (tmp_path / "run2" / "summary.txt").read_text(encoding="utf-8")  # the closing block, as printed
    assert "RA2" in kept and f"results in {tmp_path / 'run2'}/" in kept and kept.strip() in capsys.readouterr().out


def test_changed_split_retrains(tmp_path):
    cache = tmp_path / "cache"
    run_study(cfg_of(*TINY, f"cache_dir={cache}"), tmp_path / "a")
    run_study(cfg_of(*TINY, f"cache_dir={cache}", "data.split.seed=1"), tmp_path / "b")
    a = json.loads((tmp_path / "a" / "stages.json").read_text())
    b = json.loads((tmp_path / "b" / "stages.json").read_text())
    assert b["train"]["reused"] is False and a["train"]["key"] != b["train"]["key"]
    assert len(list((cache / "train").iterdir())) == 2


def test_a_longer_run_continues_the_finished_shorter_one(tmp_path, capfd):
    """Only train.max_iterations changed: the longer run trains just the iterations it adds, from the shorter
    entry's last checkpoint, and ends where a cold run of that length ends; a shorter run trains from the start."""
    cache = tmp_path / "cache"

    def train_info(run):
        key = json.loads((tmp_path / run / "stages.json").read_text())["train"]["key"]
        return key, json.loads((cache / "train" / key / "done.json").read_text())["info"]

    run_study(cfg_of(*TINY, "train.max_iterations=2", f"cache_dir={cache}"), tmp_path / "short")
    run_study(cfg_of(*TINY, f"cache_dir={cache}"), tmp_path / "long")  # 3 iterations
    printed = capfd.readouterr()
    assert "continuing train" in printed.err
    short_key, short = train_info("short")
    _, long = train_info("long")
    assert long["continued_from"] == {"key": short_key, "iterations": 2} and long["iterations"] == 3
    assert short["continued_from"] is None and long["lineage"] == short["lineage"]
    # its time covers the iteration it added (the summary says so), the shorter run's all of its own
    assert (long["train_seconds_from_iteration"], short["train_seconds_from_iteration"]) == (2, 0)
    assert "trained in" in printed.out and "(the time of iterations 2–3)" in printed.out
    run_study(cfg_of(*TINY, f"cache_dir={tmp_path / 'cold'}"), tmp_path / "cold")
    samples = [np.load(tmp_path / run / "samples.npz")["images"] for run in ("long", "cold")]
    assert np.array_equal(*samples)  # bit-identical to training 3 iterations from the start
    run_study(cfg_of(*TINY, "train.max_iterations=1", f"cache_dir={cache}"), tmp_path / "shorter")
    assert train_info("shorter")[1]["continued_from"] is None


def test_the_header_says_whether_the_generator_is_conditional(tmp_path, capfd):
    """An unconditional generator trained on a labelled split (CelebA's identities) is not "1 class(es)"."""
    run_study(cfg_of(*TINY, "train.max_iterations=1", f"cache_dir={tmp_path / 'c'}"), tmp_path / "cond")
    assert "generator BigGAN, 10 class(es)" in capfd.readouterr().out
    run_study(cfg_of(*TINY, "train.max_iterations=1", "train.conditional=false", f"cache_dir={tmp_path / 'c'}"),
              tmp_path / "uncond")
    header = next(line for line in capfd.readouterr().out.splitlines() if "→ X_v1" in line)
    assert "generator BigGAN, unconditional (" in header and "class(es)" not in header


def test_sampling_only_settings_do_not_retrain(tmp_path):
    cache = tmp_path / "cache"
    tiny = [*TINY, "generator=cfg_diffusion", "generator.sampling_steps=2", f"cache_dir={cache}"]
    run_study(cfg_of(*tiny), tmp_path / "a")
    run_study(cfg_of(*tiny, "generator.guidance_w=2.0"), tmp_path / "b")
    a = json.loads((tmp_path / "a" / "stages.json").read_text())
    b = json.loads((tmp_path / "b" / "stages.json").read_text())
    assert b["train"]["reused"] is True and b["generate"]["reused"] is False
    assert a["generate"]["key"] != b["generate"]["key"]


@pytest.mark.parametrize("override, message", [
    ("valuation.k=0", "valuation.k"),
    ("valuation.k=-3", "valuation.k"),
    ("matcher.kind=hnsw", "unknown matcher kind"),
    ("train.max_iterations=0", "train.max_iterations"),
    ("generator.preset=huge", "unknown BigGAN preset"),
    ("generator.n_dis=0", "n_dis"),
    ("data.split.classes=[42]", "absent"),
    ("generate.classes=[42]", "not classes the generator was trained on"),
    ("valuation.k=100000", "larger than the training pool"),
    ("matcher.m=7", "divide"),
    ("valuation.tau=0", "tau"),
    ("valuation.tau=sharp", "tau"),
    ("valuation.target_top_credit=1.5", "target_top_credit"),
    ("valuation.report_class=cat", "valuation.report_class"),
    ("valuation.engine=spark", "unknown valuation engine"),
    ("valuation.baselines.knn_count._target_=gmv.nothing.Here", "cannot build valuation method"),
    ("+control.kind=blend", "control.kind"),
    ("+control={kind:dose_response,fractions:[0,2],seeds:[0]}", "control.fractions"),
])
def test_bad_settings_fail_before_training(tmp_path, override, message):
    cache = tmp_path / "cache"
    with pytest.raises(GmvError, match=message):
        run_study(cfg_of(*TINY, f"cache_dir={cache}", override), tmp_path / "run")
    assert not (cache / "train").exists()  # nothing was trained
    assert not (tmp_path / "run").exists()  # and no run folder was started


def test_missing_required_path_names_the_setting(tmp_path):
    with pytest.raises(GmvError, match="embedder.weights"):
        run_study(cfg_of("experiment=paper/cifar10_biggan_cpu", "logger.mode=disabled"), tmp_path / "run")


def test_missing_dataset_files_stop_before_training(tmp_path):
    cfg = cfg_of("experiment=paper/cifar10_biggan_cpu", "logger.mode=disabled", "embedder.weights=w.th",
                 f"data.root={tmp_path}/data", f"cache_dir={tmp_path}/cache")
    with pytest.raises(GmvError, match="(?i)cifar"):
        run_study(cfg, tmp_path / "run")
    assert not (tmp_path / "cache").exists() and not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, message", [
    (["experiment=no_such_study"], "experiment/no_such_study"),
    (["matcher=no_such_matcher"], "matcher/no_such_matcher"),
    (["valuation.k=0"], "gmv: error: valuation.k must be an integer ≥ 1"),
    # the generator configs are typed (a misspelt setting is Hydra's error; wrong types: test_generator_contract)
    (["generator=biggan", "generator.g_widht=8"], "Key 'g_widht' not in 'BigGANConfig'"),
])
def test_cli_rejects_bad_overrides_early(tmp_path, args, message):
    out = subprocess.run([str(GMV), *args, f"cache_dir={tmp_path}/cache", f"hydra.run.dir={tmp_path}/run",
                          "logger.mode=disabled"], capture_output=True, text=True, env=env(), timeout=120)
    assert out.returncode != 0
    assert message in out.stderr
    assert not (tmp_path / "cache" / "train").exists()


def test_multirun_of_two_jobs_and_its_report(tmp_path):
    sweep = tmp_path / "sweep"
    out = subprocess.run([str(GMV), "-m", *TINY, f"cache_dir={tmp_path}/cache", f"hydra.sweep.dir={sweep}",
                          "valuation.k=2,4"], capture_output=True, text=True, env=env(), timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    jobs = sorted(p.parent for p in sweep.rglob("metrics.json"))
    assert len(jobs) == 2
    ks = sorted(json.loads((j / "metrics.json").read_text())["k"] for j in jobs)
    assert ks == [2, 4]
    stages = [json.loads((j / "stages.json").read_text()) for j in jobs]
    assert sorted(s["train"]["reused"] for s in stages) == [False, True]  # the 2nd job reused the 1st's training

    rep = subprocess.run([str(GMV_REPORT), str(sweep)], capture_output=True, text=True, env=env(), timeout=300)
    assert rep.returncode == 0, rep.stderr
    rows = (sweep / "report" / "report.csv").read_text().splitlines()
    assert len(rows) == 3 and "valuation.k" in rows[0]
    assert (sweep / "report" / "sweep_valuation_k.png").is_file()


def test_parallel_launcher_runs_two_jobs_at_once(tmp_path):
    """hydra/launcher=parallel (hydra-joblib-launcher): a 2-job multirun in two processes at the same time."""
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    sweep = tmp_path / "sweep"
    out = subprocess.run([str(GMV), "-m", *TINY, f"cache_dir={tmp_path}/cache", f"hydra.sweep.dir={sweep}",
                          "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", "num_threads=1", "seed=0,1"],
                         capture_output=True, text=True, env=env(), timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-2000:]
    jobs = sorted(p.parent for p in sweep.rglob("metrics.json"))
    assert len(jobs) == 2
    assert sorted(json.loads((j / "manifest.json").read_text())["seeds"]["seed"] for j in jobs) == [0, 1]
    assert all(not json.loads((j / "stages.json").read_text())["train"]["reused"] for j in jobs)  # two trainings
    # each job started (its config.yaml) before the other finished (its metrics.json): they ran at once
    start = [(j / "config.yaml").stat().st_mtime for j in jobs]
    end = [(j / "metrics.json").stat().st_mtime for j in jobs]
    assert start[0] < end[1] and start[1] < end[0]


def test_slurm_launcher_config_composes():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        cfg = compose("config", overrides=["hydra/launcher=slurm", "hydra.launcher.partition=gpu"],
                      return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.partition == "gpu" and cfg.hydra.launcher.gpus_per_node == 1


EXPERIMENTS = [
    ("paper/cifar10_biggan", "BigGAN"), ("paper/cifar10_biggan_cpu", "BigGAN"),
    ("paper/cifar10_cfg_diffusion", "CFGDiffusion"), ("paper/cifar10_cfg_diffusion_cpu", "CFGDiffusion"),
    ("paper/celeba_stylegan2", "StyleGAN2"), ("paper/celeba_stylegan2_cpu", "StyleGAN2"),
    ("paper/mnist_biggan", "BigGAN"), ("paper/mnist_biggan_cpu", "BigGAN"), ("compare/cifar10_cpu", "BigGAN"),
    ("default", "CFGDiffusion"), ("smoke", "BigGAN"), ("gan/digits_biggan", "BigGAN"), ("gan/digits_biggan_long", "BigGAN"),
    ("gan/cifar10_biggan16", "BigGAN"), ("gan/cifar10_stylegan2_16", "StyleGAN2"),
    ("gan/celeba_stylegan2_16", "StyleGAN2"), ("counterfactual/digits", "CFGDiffusion"),
    ("control/dose_response", "CFGDiffusion"), ("control/dose_response_cifar10", "CFGDiffusion"),
    ("control/dose_response_cifar10_biggan16", "BigGAN"),
    ("control/quality", "CFGDiffusion"), ("addition/digits", "CFGDiffusion"), ("addition/cifar10", "CFGDiffusion"),
    ("lds/digits", "CFGDiffusion"), ("lds/digits_base", "CFGDiffusion"),
]


def test_every_experiment_file_is_in_the_compose_test():
    root = Path(__file__).resolve().parents[1] / "conf" / "experiment"
    files = {str(p.relative_to(root).with_suffix("")) for p in root.rglob("*.yaml")}
    assert files == {name for name, _ in EXPERIMENTS}


@pytest.mark.parametrize("name, generator", EXPERIMENTS)
def test_every_experiment_composes_with_its_generator(name, generator):
    cfg = cfg_of(f"experiment={name}")
    assert cfg.study == name
    assert cfg.generator._target_.endswith(generator)
    own = [k for k, v in cfg.generator.items() if k not in ("_target_", "preset") and v is not None]
    other, other_class = ("biggan", "BigGAN") if generator == "StyleGAN2" else ("stylegan2", "StyleGAN2")
    if not own:  # a generator chosen on the command line wins over the experiment's
        assert cfg_of(f"experiment={name}", f"generator={other}").generator._target_.endswith(other_class)
    else:  # an experiment that sets its generator's own settings names them when another generator lacks them
        with pytest.raises(Exception, match=f"Key '{own[0]}' not in '{other_class}Config'"):
            cfg_of(f"experiment={name}", f"generator={other}")


def test_a_study_is_reproducible_from_its_config(tmp_path):
    """Two cold runs of the same config (separate caches) give bit-identical samples and values."""
    run_study(cfg_of(*TINY, f"cache_dir={tmp_path}/c1"), tmp_path / "a")
    run_study(cfg_of(*TINY, f"cache_dir={tmp_path}/c2"), tmp_path / "b")
    sa, sb = np.load(tmp_path / "a" / "samples.npz"), np.load(tmp_path / "b" / "samples.npz")
    assert np.array_equal(sa["images"], sb["images"])
    assert (tmp_path / "a" / "values.csv").read_text() == (tmp_path / "b" / "values.csv").read_text()


def test_study_reports_baselines_tau_audit_and_c1(tmp_path):
    m = run_study(cfg_of(*TINY, f"cache_dir={tmp_path}/c", "valuation.reference_size=30"), tmp_path / "run")
    assert m["tau_rule"] == "auto" and m["top_credit_mean"] == pytest.approx(0.9, abs=1e-6)
    for name in ("gmvaluator", "knn_count", "gan_leaks", "gan_leaks_calibrated"):
        assert np.isfinite(m[f"method/{name}/auroc"]), name
        assert 0 <= m[f"method/{name}/tpr_at_1fpr"] <= 1
    assert "control_shuffled_p_value" in m and "audit_n_flagged_v1" in m and "c1_at_1" in m
    header = (tmp_path / "run" / "values.csv").read_text().splitlines()[0]
    assert header.endswith("p_value,bh_flag,knn_count,gan_leaks,gan_leaks_calibrated")
    assert (tmp_path / "run" / "methods.md").is_file() and (tmp_path / "run" / "c1_per_class.csv").is_file()
    # valuation=paper: squared L2 and τ = 1 on the same cached samples and embeddings
    p = run_study(cfg_of(*TINY, f"cache_dir={tmp_path}/c", "valuation=paper", "valuation.k=3"), tmp_path / "paper")
    assert p["tau"] == 1.0 and p["distance"] == "sqeuclidean" and p["tau_rule"] == "given"
    assert json.loads((tmp_path / "paper" / "stages.json").read_text())["train"]["reused"] is True


def test_trajectory_during_training_and_dose_response_on_the_cached_samples(tmp_path):
    cache = tmp_path / "c"
    run_study(cfg_of(*TINY, f"cache_dir={cache}", "train.trajectory_every=1", "trajectory.m=20"), tmp_path / "run")
    rows = (tmp_path / "run" / "trajectory.csv").read_text().splitlines()
    assert rows[0].startswith("iteration,") and [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3"]
    assert (tmp_path / "run" / "trajectory.png").stat().st_size > 0
    m = run_study(cfg_of(*TINY, f"cache_dir={cache}", "+control.kind=dose_response", "+control.fractions=[0,0.5]",
                         "+control.seeds=[0]"), tmp_path / "dose")
    stages = json.loads((tmp_path / "dose" / "stages.json").read_text())
    assert stages["train"]["reused"] is True and stages["generate"]["reused"] is True  # nothing retrained
    assert m["gmvaluator/f0.5/auroc_mean"] > m["gmvaluator/f0/auroc_mean"]
    lines = (tmp_path / "dose" / "dose_response.csv").read_text().splitlines()
    assert len(lines) - 1 == 2 * 4  # 2 fractions × 1 seed × 4 methods (reference images exist for digits)
    assert (tmp_path / "dose" / "dose_response.png").stat().st_size > 0


def test_dose_response_experiment_composes():
    cfg = cfg_of("experiment=control/dose_response")
    assert cfg.control.kind == "dose_response" and list(cfg.control.fractions)[0] == 0
    assert cfg.data.split.per_class_limit == cfg_of().data.split.per_class_limit  # the default study's X̂


def test_the_stage_loop_checks_what_a_stage_needs_and_gives(tmp_path):
    from gmv.pipeline.manifest import StageClock
    from gmv.pipeline.stage_loop import Stage, run_stage
    from gmv.pipeline.study import Study

    study = Study(cfg_of(*TINY), tmp_path)
    with pytest.raises(RuntimeError, match=r"stage lazy should have set \['val'\], and did not"):
        run_stage(Stage("lazy", needs=(), gives=("val",), run=lambda s, e: None), study, StageClock())
    with pytest.raises(RuntimeError, match=r"stage early needs \['val'\]"):
        run_stage(Stage("early", needs=("val",), gives=(), run=lambda s, e: None), study, StageClock())
    clock = StageClock()
    run_stage(Stage("fine", needs=(), gives=("quality", "reference"), may_be_none=("reference",),
                    run=lambda s, e: setattr(s, "quality", {"fd": 1.0})), study, clock)
    assert study.quality == {"fd": 1.0} and "fine" in clock.stages
