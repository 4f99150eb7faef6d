"""Control studies run on a study's cached X̂ (selected by the config's `control` section).

    control.kind = dose_response   replace a fraction f of X̂ with near-copies of X_v1 images, for every
                                   f in control.fractions and seed in control.seeds, and value each
                                   planted set with the main method and every baseline
                                   (gmv/analysis/dose_response.py)
    control.kind = quality         corrupt a fraction f of X̂ (noise, blur, JPEG) and value each damaged set
                                   with GMValuator unweighted and weighted by the realism score
                                   (gmv/analysis/quality_control.py)
    control.kind = model_output    the trained model's output on fixed targets — control.targets, a base run's
                                   samples.npz (its first control.n_targets images) — at fixed draws
                                   (gmv/analysis/model_output.py) → outputs.npz; no X̂ is drawn. The retrains of
                                   an LDS or counterfactual study (data.subset) are such controls.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gmv.errors import GmvError

#: each control kind and the stem of the table and figure it writes into the run folder
REPORTS = {"dose_response": "dose_response", "quality": "quality_control", "model_output": "outputs"}
KINDS = tuple(REPORTS)
#: control kinds that read only the trained model, not a generated X̂ (the study draws none)
WITHOUT_SAMPLES = ("model_output",)


def check_control(control) -> None:
    """Fail early (before any training) on a malformed `control` section."""
    if control.get("kind") not in KINDS:
        raise GmvError(f"control.kind must be one of {', '.join(KINDS)}, got {control.get('kind')!r}")
    if control.kind == "model_output":
        from pathlib import Path

        targets = control.get("targets")
        if not targets or not Path(str(targets)).is_file():
            raise GmvError(f"control.targets must be a base run's samples.npz (the targets whose outputs every "
                           f"retrain measures), got {targets!r}")
        for key in ("n_targets", "timesteps"):
            v = control.get(key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise GmvError(f"control.{key} must be an integer ≥ 1, got {v!r}")
        return
    fractions = list(control.get("fractions") or [])
    if not fractions or any(not isinstance(f, (int, float)) or not 0 <= float(f) <= 1 for f in fractions):
        raise GmvError(f"control.fractions must be a non-empty list of numbers in [0, 1], got {fractions}")
    seeds = list(control.get("seeds") or [])
    if not seeds or any(not isinstance(s, int) for s in seeds):
        raise GmvError(f"control.seeds must be a non-empty list of integers, got {seeds}")


def run_control(cfg, v1, v2, samples, embedder, matcher, method, baselines, reference, run_dir: Path, tracker,
                label: str) -> dict[str, Any]:
    from gmv.analysis.dose_response import dose_response, write_dose_response
    from gmv.pipeline.stages import engine_options
    from gmv.valuation.api import valuate

    control = cfg.control  # checked by check_config before anything ran
    cache = Path(cfg.cache_dir)
    if control.kind == "quality":
        return _quality_control(cfg, v1, v2, samples, embedder, matcher, run_dir, tracker, label)

    def value_fn(planted):
        val = valuate(v1, planted, embedder=embedder, matcher=matcher, held_out=v2, cache_dir=cache, method=method,
                      baselines=baselines, reference=reference, **engine_options(cfg.valuation))
        return {name: (r.side("v1"), r.side("v2")) for name, r in val.methods.items()}

    flip = bool(control.get("flip", cfg.train.hflip))
    rows = dose_response(v1, v2, samples, control.fractions, control.seeds, value_fn, flip=flip)
    written = write_dose_response(rows, run_dir, title=f"Dose-response control — {label}")
    metrics: dict[str, Any] = {"study": str(cfg.study), "control": "dose_response", "n_v1": len(v1), "n_v2": len(v2),
                               "n_generated": len(samples), "flip": flip}
    for r in written["summary"]:
        for key in ("auroc_mean", "tpr_at_1fpr_mean", "t_statistic_mean", "p_value_mean"):
            metrics[f"{r['method']}/f{r['fraction']:g}/{key}"] = r[key]
    metrics.update({f"{m}/detection_threshold": f for m, f in written["threshold"].items()})
    tracker.log_table("dose_response", rows)
    tracker.log_image("dose_response", run_dir / "dose_response.png")
    print((run_dir / "dose_response.md").read_text())
    return metrics


def _quality_control(cfg, v1, v2, samples, embedder, matcher, run_dir: Path, tracker, label: str) -> dict[str, Any]:
    from gmv.analysis.quality_control import quality_control, write_quality_control
    from gmv.pipeline.stages import engine_options
    from gmv.valuation.api import valuate
    from gmv.valuation.methods import GMValuator

    v, control = cfg.valuation, cfg.control
    settings = {"k": int(v.k), "tau": v.tau, "distance": str(v.distance), "target_top_credit": float(v.target_top_credit)}
    unweighted, realism = GMValuator(**settings), GMValuator(**settings, quality="realism")

    def value_fn(damaged):
        val = valuate(v1, damaged, embedder=embedder, matcher=matcher, held_out=v2, cache_dir=Path(cfg.cache_dir),
                      method=unweighted, baselines=[realism], **engine_options(v))
        return {"none": val.methods[unweighted.name], "realism": val.methods[realism.name]}

    rows = quality_control(v1, v2, samples, control.fractions, control.seeds, value_fn)
    summary = write_quality_control(rows, run_dir, title=f"Quality-weighted credit, planted control — {label}")
    metrics: dict[str, Any] = {"study": str(cfg.study), "control": "quality", "n_v1": len(v1), "n_v2": len(v2),
                               "n_generated": len(samples)}
    for r in summary:
        for key in ("credit_per_corrupted", "credit_per_intact", "auroc", "p_value"):
            metrics[f"{r['weighting']}/f{r['fraction']:g}/{key}"] = r[key]
    tracker.log_table("quality_control", rows)
    tracker.log_image("quality_control", run_dir / "quality_control.png")
    print((run_dir / "quality_control.md").read_text())
    return metrics


def run_model_output(cfg, module, datamodule, run_dir: Path) -> dict[str, Any]:
    """control.kind = model_output: −diffusion loss of each target under the trained model → outputs.npz."""
    import numpy as np

    from gmv.analysis.model_output import diffusion_outputs
    from gmv.io import save_npz

    control = cfg.control
    with np.load(str(control.targets)) as z:
        images, labels = z["images"][:int(control.n_targets)], z["labels"][:int(control.n_targets)]
    if not hasattr(module, "ema_unet"):
        raise GmvError(f"control.kind=model_output measures diffusion losses; {type(module).__name__} is not a "
                       "diffusion generator")
    ids = datamodule.to_class_ids(labels, "control.targets' labels")  # classes this retrain must know
    outputs = diffusion_outputs(module, images, ids, timesteps=int(control.timesteps), seed=int(control.get("seed", 0)))
    save_npz(run_dir / "outputs.npz", outputs=outputs, targets=np.arange(len(outputs)))
    return {"study": str(cfg.study), "control": "model_output", "n_targets": int(len(outputs)),
            "output_mean": float(outputs.mean()), "targets": str(control.targets)}
