"""`run_study(cfg, run_dir)`: one study as a list of stages, run by one loop (gmv/pipeline/stage_loop.py).

Every stage declares what it reads from the `Study` (its inputs), what it sets (its outputs) and, when
its result is cached, its key (from the *effective* settings) and the files its cache entry holds. The
loop checks the inputs, times the stage, and for a cached stage takes the entry's lock, reuses a
finished intact entry, reports and recomputes a damaged one (gmv/cache.py), and records the entry's
files with their checksums when it finishes. Every setting is checked before the first stage, and the
`prepare` stage builds everything that can still fail on the data (generator, embedder, matcher,
methods) before anything is trained.

    prepare → train → generate → embed → match → value → quality → report     (a study)
    prepare → train → generate → control                                       (a control study)
    prepare → train → control                                                  (control.kind=model_output)

The run folder gets:
    config.yaml      the resolved config            metrics.json   every number (flat keys)
    values.csv       φ per pool image               ra2_table.md/.csv, ra2_per_class.md/.csv (RA2)
    ra1_tsne.png, ra2_hist.png, ra3_high.png, ra3_low.png            the paper's figures
    samples.npz      X̂ (images, labels)            samples.png    a preview grid
    split.npz        X_v1 / X_v2 indices            stages.json    per-stage time, reused or not, cache key
    manifest.json    git commit, package versions, seeds, command line
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gmv.cache import CacheEntry
from gmv.console import note, show_progress
from gmv.pipeline import sample_stage, stages, train_stage, training_set
from gmv.pipeline.checks import check_config
from gmv.pipeline.manifest import StageClock, git_state, manifest, write_run_files
from gmv.pipeline.stage_loop import Stage, run_stage

if TYPE_CHECKING:  # the types of the study's fields; nothing here is imported at run time
    from omegaconf import DictConfig

    from gmv.data.edit import EditedTrainingSet
    from gmv.data.imageset import ImageSet
    from gmv.data.split import Split
    from gmv.data.stream import LazyImageSet
    from gmv.generators.base import GeneratorModule
    from gmv.tracking import Tracker
    from gmv.training.datamodule import ImageSetDataModule
    from gmv.valuation.api import Embedded, Inputs, Valuation
    from gmv.valuation.embedders import Embedder
    from gmv.valuation.matchers import MatcherConfig, MatchResult
    from gmv.valuation.methods import Valuator


@dataclass
class Study:
    """What the stages hand each other. Each field is set by the stage that `gives` it (the Stage
    constants below; `stages_for(cfg)` lists a study's), and `run_stage` checks that it was."""

    cfg: DictConfig
    run_dir: Path
    generator_name: str | None = None
    tracker: Tracker | None = None
    # prepare
    data: ImageSet | None = None
    split: Split | None = None
    v1: ImageSet | None = None
    v2: ImageSet | None = None
    edit: EditedTrainingSet | None = None  # None when data.addition adds nothing
    datamodule: ImageSetDataModule | None = None
    module: GeneratorModule | None = None
    embedder: Embedder | None = None
    matcher: MatcherConfig | None = None
    methods: tuple[Valuator, list[Valuator]] | None = None  # (main method, baselines)
    reference: ImageSet | None = None  # None when valuation.reference_size = 0
    # train, generate
    trained: dict | None = None
    samples: ImageSet | LazyImageSet | None = None
    # embed, match, value, quality, report
    inputs: Inputs | None = None  # the checked valuation inputs
    embedded: Embedded | None = None
    tables: MatchResult | None = None  # the m×K match tables
    val: Valuation | None = None
    quality: dict | None = None
    metrics: dict | None = None
    keys: dict[str, str] = field(default_factory=dict)  # cache key per cached stage
    resources: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)  # closed when the study ends
    _ray: Any = None

    @property
    def ray(self):
        """The Ray session of valuation.engine=ray, started when a stage first asks (embed and match share it;
        training never runs beside an idle cluster); None for the local engine."""
        if self.cfg.valuation.get("engine", "local") != "ray":
            return None
        if self._ray is None:
            from gmv.valuation.ray_cluster import ray_session

            address = (self.cfg.valuation.get("ray") or {}).get("address")
            self._ray = self.resources.enter_context(ray_session(address))
        return self._ray

    @property
    def cache(self) -> Path:
        return Path(self.cfg.cache_dir)

    @property
    def label(self) -> str:
        return f"{self.cfg.study}: {type(self.module).__name__} on {self.v1.name}"


# --------------------------------------------------------------------------- the stages


def _prepare(s: Study, _) -> None:
    """Data, split, generator, embedder, matcher, methods, reference set: every check that needs data."""
    from gmv.training.datamodule import ImageSetDataModule
    from gmv.valuation.embedders import build_embedder
    from gmv.valuation.matchers import MatcherConfig, resolve
    from gmv.valuation.methods import tables_k

    cfg = s.cfg
    s.data = stages.load_data(cfg.data)
    s.split, s.v1, s.v2 = stages.split_data(s.data, cfg.data.split)
    s.edit = stages.edit_training_set(s.data, s.split, s.v1, cfg.data, seed=int(cfg.seed),
                                      conditional=bool(cfg.train.conditional), hflip=bool(cfg.train.hflip))
    if s.edit is not None:
        s.v1 = s.edit.v1
    n_classes = ImageSetDataModule.count_classes(s.v1, conditional=bool(cfg.train.conditional),
                                                 classes=training_set.classes_before_removals(s))
    s.module = stages.build_generator(cfg.generator, n_classes, s.v1.shape[0], s.v1.shape[2], seed=int(cfg.seed))
    s.datamodule = ImageSetDataModule(s.v1, batch_size=int(s.module.config.batch_size), seed=cfg.seed,
                                      hflip=cfg.train.hflip, conditional=cfg.train.conditional,
                                      classes=training_set.classes_before_removals(s))
    s.embedder = build_embedder(stages.plain(cfg.embedder))
    s.methods = stages.valuation_methods(cfg.valuation)
    n_pool = len(s.v1) + (len(s.v2) if cfg.valuation.held_out else 0)
    s.matcher = resolve(MatcherConfig(**stages.plain(cfg.matcher)), n_pool, s.embedder.dim(s.v1.shape),
                        tables_k([s.methods[0], *s.methods[1]]), n_queries=int(cfg.generate.m))
    s.reference = stages.reference_set(s.data, s.split, int(cfg.valuation.reference_size), seed=int(cfg.seed),
                                       exclude=None if s.edit is None else s.edit.outside)
    sample_stage.sample_class_ids(s.datamodule, cfg.generate, int(cfg.generate.m), training_set.class_mix(s))
    n_params, added = s.module.parameter_counts()["total"], training_set.describe(s.edit)
    classes = f"{s.datamodule.n_classes} class(es)" if s.datamodule.conditional else "unconditional"
    note(f"[gmv] {cfg.study}: {len(s.data)} images {s.data.shape} → X_v1 {len(s.v1)}{added} / X_v2 {len(s.v2)}; "
         f"generator {type(s.module).__name__}, {classes} ({n_params / 1e6:.2f}M parameters)")


def _train(s: Study, entry: CacheEntry) -> dict:
    with train_stage.trajectory(s.cfg, s.module, s.datamodule, s.v1, s.v2, s.embedder, s.run_dir):
        s.trained = train_stage.train(s.module, s.datamodule, s.cfg.train, stages.plain(s.cfg.trainer), entry,
                                   seed=int(s.cfg.seed), logger=_lightning_loggers(s.tracker, entry.folder),
                                   lineage=train_stage.lineage_key(s.v1, s.module, s.cfg.train, s.cfg.seed))
    return {k: s.trained[k] for k in train_stage.RECORDED}


def _train_reused(s: Study, entry: CacheEntry) -> None:
    s.trained = train_stage.reuse(s.module, s.datamodule, s.cfg.train, entry, seed=int(s.cfg.seed))
    if int(s.cfg.train.get("trajectory_every") or 0):
        note(f"[gmv] training reused from the cache: no new trajectory (post hoc from its checkpoints: "
              f"gmv-trajectory {s.run_dir})")


def _generate(s: Study, entry: CacheEntry) -> dict:
    t0 = time.perf_counter()
    s.samples = sample_stage.generate(s.module, s.datamodule, s.cfg.generate, entry, progress=show_progress(),
                                      class_mix=training_set.class_mix(s))
    _link_samples(s, entry)
    return {"m": len(s.samples), "seconds": round(time.perf_counter() - t0, 3)}


def _generate_reused(s: Study, entry: CacheEntry) -> None:
    s.samples = sample_stage.load(entry)
    _link_samples(s, entry)


def _link_samples(s: Study, entry: CacheEntry) -> None:
    from gmv.io import link_or_copy

    for name in ("samples.npz", "samples.png"):
        link_or_copy(entry.folder / name, s.run_dir / name)


def _embed(s: Study, _) -> dict:
    """Embeddings of X_v1 ∪ X_v2, X̂ and the reference set — each an entry of the embedding store."""
    from gmv.valuation import api

    main, baselines = s.methods
    held_out = s.v2 if s.cfg.valuation.held_out else None
    rerank = s.cfg.valuation.get("rerank") or {}
    s.inputs = api.prepare(s.v1, s.samples, embedder=s.embedder, matcher=s.matcher, held_out=held_out,
                           cache_dir=s.cache, method=main, baselines=baselines, reference=s.reference,
                           rerank_embedder=stages.plain(rerank.get("embedder")),
                           rerank_candidates=int(rerank.get("candidates") or 50),
                           **stages.engine_options(s.cfg.valuation))
    s.embedded = api.embed(s.inputs, s.cache, ray=s.ray)
    return {"reused": all(s.embedded.reused.values())}


def _match(s: Study, _) -> None:
    from gmv.valuation import api

    s.tables = api.match_tables(s.inputs, s.embedded, ray=s.ray)


def _value(s: Study, _) -> None:
    from gmv.valuation import api

    main, baselines = s.methods
    for method in (main, *baselines):
        if getattr(method, "needs_model", False):  # e.g. D-TRAK: attributes through the generator itself
            training_set.bind_generator(s, method)
    s.val = api.value(s.inputs, s.embedded, s.tables)


def _quality(s: Study, _) -> None:
    val = s.val
    i1, i2 = val.side("v1"), val.side("v2")
    s.quality = stages.quality(s.v1, s.v2 if len(i2) else None, s.samples, val.pool_emb[i1],
                               val.pool_emb[i2] if len(i2) else None, val.gen_emb, val.embedder["name"],
                               bool(s.cfg.quality.inception))


def _report(s: Study, _) -> None:
    from gmv.analysis.report import write_report

    cfg, val = s.cfg, s.val
    s.metrics = write_report(val, s.run_dir, label=s.label, tracker=s.tracker, ra3_n=int(cfg.valuation.ra3_n),
                             audit_fdr=float(cfg.valuation.audit_fdr), tsne_cap=cfg.valuation.tsne_cap,
                             seed=int(cfg.seed), extra_metrics=_study_facts(s),
                             report_class=cfg.valuation.report_class, class_names=s.data.class_names,
                             pool_columns=None if s.edit is None else s.edit.pool_columns(len(s.v2)),
                             write_metrics=False)


def _study_facts(s: Study) -> dict[str, Any]:
    target, settings = stages.generator_settings(s.cfg.generator)
    t = s.trained
    return {"study": str(s.cfg.study), "generator": s.generator_name or target.rsplit(".", 1)[-1].lower(),
            "generator_preset": settings.get("preset"),
            "generator_parameters": int(s.module.parameter_counts()["total"]),  # trainable, without EMA copies
            "train_iterations": t["iterations"], "train_seconds": t["train_seconds"],
            "train_continued_from": (t.get("continued_from") or {}).get("iterations"),
            "train_seconds_from_iteration": t.get("train_seconds_from_iteration"),
            "train_images_per_s": t.get("images_per_s"), **s.quality, **training_set.edit_counts(s)}


def _model_output(s: Study, _) -> None:
    from gmv.pipeline.controls import run_model_output

    s.metrics = run_model_output(s.cfg, s.module, s.datamodule, s.run_dir)


def _control(s: Study, _) -> None:
    from gmv.pipeline.controls import run_control

    main, baselines = s.methods
    s.metrics = run_control(s.cfg, s.v1, s.v2, s.samples, s.embedder, s.matcher, main, baselines, s.reference,
                            s.run_dir, s.tracker, label=s.label)


PREPARE = Stage("data", needs=(), gives=("data", "split", "v1", "v2", "edit", "datamodule", "module", "embedder",
                                         "matcher", "methods", "reference"), run=_prepare,
                may_be_none=("reference", "edit"))
TRAIN = Stage("train", needs=("v1", "module", "datamodule"), gives=("trained",), run=_train,
              key=lambda s: train_stage.train_key(s.v1, s.module, s.cfg.train, s.cfg.seed), load=_train_reused,
              files=lambda e: sorted(str(p.relative_to(e.folder)) for p in (e.folder / "checkpoints").glob("*.ckpt")))
GENERATE = Stage("generate", needs=("trained", "module", "datamodule"), gives=("samples",), run=_generate,
                 key=lambda s: sample_stage.samples_key(s.keys["train"], s.module, s.cfg.generate,
                                                        training_set.class_mix(s)),
                 entry="samples",
                 load=_generate_reused, files=lambda e: ["samples.npz", "samples.png"])
EMBED = Stage("embed", needs=("v1", "samples", "embedder", "matcher", "methods"), gives=("inputs", "embedded"),
              run=_embed)
MATCH = Stage("match", needs=("inputs", "embedded"), gives=("tables",), run=_match)
VALUE = Stage("value", needs=("inputs", "embedded", "tables"), gives=("val",), run=_value)
QUALITY = Stage("quality", needs=("val",), gives=("quality",), run=_quality)
REPORT = Stage("report", needs=("val", "quality", "trained"), gives=("metrics",), run=_report)
CONTROL = Stage("control", needs=("samples", "embedder", "matcher", "methods"), gives=("metrics",), run=_control)
MODEL_OUTPUT = Stage("control", needs=("trained", "module", "datamodule"), gives=("metrics",), run=_model_output)


def stages_for(cfg) -> list[Stage]:
    from gmv.pipeline.controls import WITHOUT_SAMPLES

    if cfg.get("control") and cfg.control.get("kind") in WITHOUT_SAMPLES:
        return [PREPARE, TRAIN, MODEL_OUTPUT]
    if cfg.get("control"):
        return [PREPARE, TRAIN, GENERATE, CONTROL]
    return [PREPARE, TRAIN, GENERATE, EMBED, MATCH, VALUE, QUALITY, REPORT]


# --------------------------------------------------------------------------- the study


def _lightning_loggers(tracker, folder: Path):
    from lightning.pytorch.loggers import CSVLogger

    loggers = [CSVLogger(str(folder), name="logs")]
    if tracker is not None and tracker.enabled:
        from lightning.pytorch.loggers import WandbLogger

        loggers.append(WandbLogger(experiment=tracker.run))
    return loggers


def run_study(cfg, run_dir: str | Path, group: str | None = None, generator_name: str | None = None) -> dict[str, Any]:
    """Run the study `cfg` (a composed Hydra config) into `run_dir`; returns metrics.json's content.

    `group`: the W&B group (a sweep's name); `generator_name`: the generator config's name (Hydra's
    choice, e.g. cfg_diffusion) for the reports — the class name, lower-cased, when None."""
    import torch
    from omegaconf import OmegaConf

    from gmv.tracking import Tracker

    t_total = time.perf_counter()
    git = git_state()
    check_config(cfg)
    if cfg.num_threads:
        torch.set_num_threads(int(cfg.num_threads))
    s = Study(cfg, Path(run_dir), generator_name=generator_name)
    clock = StageClock()
    plan = stages_for(cfg)
    run_stage(plan[0], s, clock)  # prepare: every check on the data before the run folder is made

    s.run_dir.mkdir(parents=True, exist_ok=True)
    from gmv.io import write_text

    write_text(s.run_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))
    s.split.save(s.run_dir / "split.npz", **({} if s.edit is None else s.edit.record()))
    s.tracker = Tracker(mode=cfg.logger.mode, project=cfg.logger.project, dir=s.run_dir, name=str(cfg.study),
                        group=cfg.logger.group or group, config=OmegaConf.to_container(cfg, resolve=True),
                        job_type="study", tags=list(cfg.logger.tags or []))
    with s.tracker, s.resources:
        for stage in plan[1:]:
            run_stage(stage, s, clock)
        write_run_files(s.run_dir, s.metrics, clock, manifest(cfg, clock, s.keys, git), t_total)
        if s.val is not None:  # a valuation ran (a control study writes its own tables instead)
            from gmv.analysis.report import log_valuation_artifact

            log_valuation_artifact(s.tracker, s.run_dir)
        if s.quality is not None:
            s.tracker.log_metrics({k: v for k, v in s.metrics.items() if k.startswith("seconds_") or k in s.quality})
            s.tracker.log_image("samples", s.run_dir / "samples.png")
    from gmv.pipeline.summary import show_closing_summary

    show_closing_summary(s, clock)  # printed, and kept in the run folder as summary.txt
    return s.metrics
