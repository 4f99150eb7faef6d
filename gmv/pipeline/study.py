"""`run_study(cfg, run_dir)`: one study, from the data to the run folder.

Order: every check first (config, data, split, generator, embedder, matcher — no training has
started when a bad setting is reported), then train → generate → valuate → quality → analyse →
report. The run folder gets:

    config.yaml      the resolved config            metrics.json   every number (flat keys)
    values.csv       φ per pool image               ra2_table.md/.csv, ra2_per_class.md/.csv (RA2)
    ra1_tsne.png, ra2_hist.png, ra3_high.png, ra3_low.png            the paper's figures
    samples.npz      X̂ (images, labels)            samples.png    a preview grid
    split.npz        X_v1 / X_v2 indices            stages.json    per-stage time, reused or not, cache key
    manifest.json    git commit, package versions, seeds, command line
"""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from gmv.errors import GmvError
from gmv.io import link_or_copy, write_json, write_text
from gmv.pipeline import stages
from gmv.pipeline.cache import stage_dir

PACKAGES = ("gmv", "torch", "torchvision", "lightning", "hydra-core", "omegaconf", "faiss-cpu", "numpy", "scipy",
            "scikit-learn", "diffusers", "wandb", "torchmetrics")


# --------------------------------------------------------------------------- checks


def check_config(cfg) -> None:
    """Settings that can be judged without data: fail before anything is loaded."""
    from omegaconf import OmegaConf

    from gmv.tracking import MODES
    from gmv.valuation.matchers import DISTANCES, KINDS

    missing = sorted(OmegaConf.missing_keys(cfg))
    if missing:
        raise GmvError(f"required setting(s) {', '.join(missing)} not given; pass them as overrides, e.g. "
                       f"`{missing[0]}=…`" + (" (the npz path for data.source)" if "data.source" in missing else ""))
    v = cfg.valuation
    if not isinstance(v.k, int) or v.k < 1:
        raise GmvError(f"valuation.k must be an integer ≥ 1, got {v.k!r}")
    from gmv.valuation.value import check_target, check_tau

    try:
        check_tau(v.tau)
        check_target(v.target_top_credit)
    except GmvError as e:
        raise GmvError(f"valuation: {e}") from None
    if not isinstance(v.reference_size, int) or v.reference_size < 0:
        raise GmvError(f"valuation.reference_size must be an integer ≥ 0, got {v.reference_size!r}")
    if v.distance not in DISTANCES:
        raise GmvError(f"valuation.distance must be one of {', '.join(DISTANCES)}, got {v.distance!r}")
    if cfg.matcher.kind not in KINDS:
        raise GmvError(f"unknown matcher kind {cfg.matcher.kind!r}; choose matcher=flat|pq|ivfpq|opq")
    if cfg.logger.mode not in MODES:
        raise GmvError(f"logger.mode must be one of {', '.join(MODES)}, got {cfg.logger.mode!r}")
    if cfg.get("control"):
        from gmv.pipeline.controls import check_control

        check_control(cfg.control)
    t, g = cfg.train, cfg.generate
    if not isinstance(t.max_iterations, int) or t.max_iterations < 1:
        raise GmvError(f"train.max_iterations must be an integer ≥ 1, got {t.max_iterations!r}")
    if t.checkpoint_every < 0 or t.sample_every < 0:
        raise GmvError("train.checkpoint_every and train.sample_every must be ≥ 0 (0 = off)")
    if not isinstance(g.m, int) or g.m < 1:
        raise GmvError(f"generate.m must be an integer ≥ 1, got {g.m!r}")


# --------------------------------------------------------------------------- manifest


def _git(*args: str) -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def git_state() -> dict[str, Any]:
    """The code a run starts with: HEAD and whether tracked files differ from it."""
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"git_commit": _git("rev-parse", "HEAD"), "git_dirty": bool(status) if status is not None else None}


def manifest(cfg, clock: stages.StageClock, keys: dict[str, str], git: dict[str, Any]) -> dict[str, Any]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "command": " ".join(["gmv", *sys.argv[1:]]),
        **git,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
        "seeds": {"seed": cfg.seed, "split": cfg.data.split.seed, "generate": cfg.generate.seed,
                  "matcher": cfg.matcher.seed},
        "cache_dir": str(cfg.cache_dir),
        "cache_keys": keys,
        "stages": clock.stages,
    }


# --------------------------------------------------------------------------- the study


def write_run_files(run_dir: Path, metrics: dict[str, Any], clock: stages.StageClock, manifest_: dict[str, Any],
                    t_total: float) -> None:
    """metrics.json (with the per-stage and total seconds), stages.json and manifest.json."""
    metrics.update(clock.metrics())
    metrics["seconds_total"] = round(time.perf_counter() - t_total, 3)
    write_json(run_dir / "metrics.json", metrics)
    write_json(run_dir / "stages.json", clock.stages)
    write_json(run_dir / "manifest.json", manifest_)


def _lightning_logger(tracker, folder: Path):
    from lightning.pytorch.loggers import CSVLogger

    loggers = [CSVLogger(str(folder), name="logs")]
    if tracker is not None and tracker.enabled:
        from lightning.pytorch.loggers import WandbLogger

        loggers.append(WandbLogger(experiment=tracker.run))
    return loggers


def _label(cfg, v1) -> str:
    return f"{cfg.study}: {cfg.generator._target_.rsplit('.', 1)[-1]} on {v1.name}"


def run_study(cfg, run_dir: str | Path, group: str | None = None, generator_name: str | None = None) -> dict[str, Any]:
    """Run the study `cfg` (a composed Hydra config) into `run_dir`; returns metrics.json's content.

    `group`: the W&B group (a sweep's name); `generator_name`: the generator config's name (Hydra's
    choice, e.g. cfg_diffusion) for the reports — the class name, lower-cased, when None."""
    import torch
    from omegaconf import OmegaConf

    from gmv.analysis.report import summary, write_report
    from gmv.tracking import Tracker
    from gmv.training.datamodule import ImageSetDataModule
    from gmv.valuation.api import valuate
    from gmv.valuation.embedders import build_embedder
    from gmv.valuation.matchers import MatcherConfig, resolve
    from gmv.valuation.methods import tables_k

    t_total = time.perf_counter()
    git = git_state()
    run_dir = Path(run_dir)
    check_config(cfg)
    if cfg.num_threads:
        torch.set_num_threads(int(cfg.num_threads))
    clock = stages.StageClock()
    keys: dict[str, str] = {}
    cache = Path(cfg.cache_dir)

    # ---- data, split, and every check that needs them (before any training)
    clock.start()
    data = stages.load_data(cfg.data)
    split, v1, v2 = stages.split_data(data, cfg.data.split)
    dm = ImageSetDataModule(v1, batch_size=1, seed=cfg.seed, hflip=cfg.train.hflip,
                            conditional=cfg.train.conditional)
    module = stages.build_generator(cfg.generator, dm.n_classes, v1.shape[0], v1.shape[2], seed=int(cfg.seed))
    dm = ImageSetDataModule(v1, batch_size=int(module.config.batch_size), seed=cfg.seed, hflip=cfg.train.hflip,
                            conditional=cfg.train.conditional)
    embedder = build_embedder(stages.plain(cfg.embedder))
    n_pool = len(v1) + (len(v2) if cfg.valuation.held_out else 0)
    method, baselines = stages.valuation_methods(cfg.valuation)
    matcher = MatcherConfig(**stages.plain(cfg.matcher))
    resolve(matcher, n_pool, embedder.dim(v1.shape), tables_k([method, *baselines]))
    reference = stages.reference_set(data, split, int(cfg.valuation.reference_size), seed=int(cfg.seed))
    stages.sample_class_ids(dm, cfg.generate, int(cfg.generate.m))
    clock.stop("data")
    print(f"[gmv] {cfg.study}: {len(data)} images {data.shape} → X_v1 {len(v1)} / X_v2 {len(v2)}, "
          f"{dm.n_classes} class(es); generator {type(module).__name__} "
          f"({sum(p.numel() for p in module.parameters()) / 1e6:.2f}M parameters)", flush=True)

    run_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    split.save(run_dir / "split.npz")
    tracker = Tracker(mode=cfg.logger.mode, project=cfg.logger.project, dir=run_dir, name=str(cfg.study),
                      group=cfg.logger.group or group, config=OmegaConf.to_container(cfg, resolve=True),
                      job_type="study", tags=list(cfg.logger.tags or []))
    with tracker:
        # ---- train
        keys["train"] = stages.train_key(v1, cfg.generator, cfg.train, cfg.seed)
        train_dir = stage_dir(cache, "train", keys["train"])
        with stages.trajectory(cfg, module, dm, v1, v2, embedder, run_dir):
            trained = stages.train(module, dm, cfg.train, stages.plain(cfg.trainer), train_dir, seed=int(cfg.seed),
                                   logger=_lightning_logger(tracker, train_dir))
        if trained["reused"] and int(cfg.train.trajectory_every):
            print(f"[gmv] training reused from the cache: no new trajectory (post hoc from its checkpoints: "
                  f"python scripts/trajectory.py {run_dir})")
        clock.stop("train", trained["reused"], keys["train"])

        # ---- generate
        keys["samples"] = stages.samples_key(keys["train"], cfg.generator, cfg.generate)
        samples_dir = stage_dir(cache, "samples", keys["samples"])
        samples, reused = stages.generate(module, dm, cfg.generate, samples_dir)
        link_or_copy(samples_dir / "samples.npz", run_dir / "samples.npz")
        link_or_copy(samples_dir / "samples.png", run_dir / "samples.png")
        clock.stop("generate", reused, keys["samples"])

        if cfg.get("control"):  # a control study on the cached X̂ instead of the plain valuation
            from gmv.pipeline.controls import run_control

            metrics = run_control(cfg, v1, v2, samples, embedder, matcher, method, baselines, reference, run_dir,
                                  tracker, label=_label(cfg, v1))
            clock.stop("control")
            write_run_files(run_dir, metrics, clock, manifest(cfg, clock, keys, git), t_total)
            print("stages:\n" + clock.table())
            print(f"results in {run_dir}/")
            return metrics

        # ---- embed, match, value
        held_out = v2 if cfg.valuation.held_out else None
        val = valuate(v1, samples, embedder=embedder, matcher=matcher, held_out=held_out, cache_dir=cache,
                      method=method, baselines=baselines, reference=reference)
        embeddings_reused = all(val.reused.values())
        clock.stages["embed"] = {"seconds": round(val.seconds.get("embed", 0.0), 3), "reused": embeddings_reused,
                                 "key": None}
        clock.stages["match"] = {"seconds": round(val.seconds.get("match", 0.0) + val.seconds.get("value", 0.0), 3),
                                 "reused": False, "key": None}
        clock.start()

        # ---- sample quality
        i1, i2 = val.side("v1"), val.side("v2")
        q = stages.quality(v1, held_out, samples, val.pool_emb[i1], val.pool_emb[i2] if len(i2) else None,
                           val.gen_emb, val.embedder["name"], bool(cfg.quality.inception))
        clock.stop("quality")

        # ---- analyses and report
        label = _label(cfg, v1)
        target, settings = stages.generator_settings(cfg.generator)
        extra = {
            "study": str(cfg.study), "generator": generator_name or target.rsplit(".", 1)[-1].lower(),
            "generator_preset": settings.get("preset"), "generator_parameters": int(sum(
                p.numel() for p in module.parameters())),
            "train_iterations": trained["iterations"], "train_seconds": trained["train_seconds"],
            "train_images_per_s": trained.get("images_per_s"),
            **q,
        }
        # write_report also writes RA2 per class (ra2_per_class.*, class_{report_class}_…) and, with
        # attributes, the RA3 attribute agreement (n = 4 × ra3_n, seeded with cfg.seed)
        metrics = write_report(val, run_dir, label=label, tracker=tracker, ra3_n=int(cfg.valuation.ra3_n),
                               audit_fdr=float(cfg.valuation.audit_fdr),
                               tsne_cap=int(cfg.valuation.tsne_cap), seed=int(cfg.seed), extra_metrics=extra,
                               report_class=cfg.valuation.report_class, class_names=data.class_names)
        clock.stop("report")
        write_run_files(run_dir, metrics, clock, manifest(cfg, clock, keys, git), t_total)
        tracker.log_metrics({k: v for k, v in metrics.items() if k.startswith("seconds_") or k in q})
        tracker.log_image("samples", run_dir / "samples.png")

    print(summary(metrics, label))
    print("sample quality: FD in the " + f"{q['fd_embedder']} embedding {q['fd_embedding']:.4g}"
          + (f" (X_v2 vs X_v1: {q['fd_embedding_v2_vs_v1']:.4g})" if "fd_embedding_v2_vs_v1" in q else "")
          + (f", FID {q['fid']:.2f}" if q.get("fid") is not None else ", FID: not available offline"))
    print("stages:\n" + clock.table())
    print(f"results in {run_dir}/")
    return metrics
