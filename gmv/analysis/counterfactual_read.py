"""Reading one retrain of the counterfactual study against its base run, and keeping that reading.

A base run (`load_base`) is the study a retrain came from: its X_v1 and X̂ in its embedding, each method's
attributions, the near-copy distance. `job_row` reads one retrain without some X_v1 images against it (the paired
shift of every target, which targets had their top-1 image removed, the removed images' near-copies before and after).

`read_job` keeps that reading in the retrain's folder, counterfactual_job.npz, with the key it was computed under:
the base run's saved files, the code that reads a retrain (READ_CODE and the embedder's modules), and the retrain's
samples. A retrain copied without its 1,000 samples — a committed one, or one finished in an earlier session on
another machine — is read from that file while base and code are unchanged; where samples.npz is present and differs
from the one read, or the base or the code changed, the retrain is read again (and refused, saying why, where its
samples are gone).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gmv.errors import GmvError

JOB_FILE = "counterfactual_job.npz"
#: the modules whose code turns a retrain into its row (with the base's embedder's, added by base_key)
READ_CODE = ("gmv.analysis.counterfactual", "gmv.analysis.counterfactual_read", "gmv.valuation.embed")


#: a base run's saved files that determine how a retrain is read against it
BASE_FILES = ("config.yaml", "split.npz", "samples.npz", "values.csv", "attributions_*.npz")


def base_key(run: Path, embedder_modules: tuple[str, ...]) -> str:
    """A digest of what a retrain is read against: the base run's saved files (BASE_FILES, by content — the same
    run copied elsewhere has the same key) and the code that reads a retrain (READ_CODE and the embedder's)."""
    from gmv.code_fingerprint import code_digest

    h = hashlib.sha256(code_digest(*READ_CODE, *embedder_modules).encode())
    for pattern in BASE_FILES:
        for path in sorted(run.glob(pattern)):
            h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:16]


def samples_key(job_dir: Path) -> str | None:
    """A digest of the retrain's samples.npz; None when the retrain was kept without it."""
    path = job_dir / "samples.npz"
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16] if path.is_file() else None


def load_reduction(job_dir: Path, base: str) -> tuple[dict[str, Any], np.ndarray, np.ndarray | None] | None:
    """The retrain's saved (row, shift, affected) if it was reduced against base key `base` from the samples the
    folder holds now (or holds no longer); None where it must be read again."""
    path = job_dir / JOB_FILE
    if not path.is_file():
        return None
    with np.load(path) as saved:
        if str(saved["base_key"]) != base:
            return None
        now = samples_key(job_dir)
        if now is not None and now != str(saved["samples_key"]):
            return None
        affected = saved["affected"].astype(bool) if bool(saved["judged"]) else None
        return json.loads(str(saved["row"])), saved["shift"].copy(), affected


def save_reduction(job_dir: Path, base: str, row: dict[str, Any], shift: np.ndarray,
                   affected: np.ndarray | None) -> Path:
    from gmv.io import save_npz

    return save_npz(job_dir / JOB_FILE, base_key=np.array(base), samples_key=np.array(samples_key(job_dir) or ""),
                    row=np.array(json.dumps(row)), shift=np.asarray(shift),
                    judged=np.array(affected is not None),
                    affected=np.zeros(0, bool) if affected is None else np.asarray(affected, bool))


@dataclass
class BaseRun:
    dir: Path
    seed: int
    v1: np.ndarray  # dataset indices of X_v1 (split.npz)
    v1_emb: np.ndarray
    gen_emb: np.ndarray
    attributions: dict[str, np.ndarray]  # method → m × N_v1
    main: str
    threshold: float  # near-copy distance
    cfg: Any
    embedder: Any  # the base's embedder, in which every retrain's X̂' is read
    key: str  # base_key: what a retrain's saved reading was computed against


def load_base(run: str | Path) -> BaseRun:
    from omegaconf import OmegaConf

    from gmv.analysis.counterfactual import near_copy_threshold
    from gmv.pipeline.stages import plain
    from gmv.valuation.embedders import build_embedder
    from gmv.valuation.run_attributions import run_valuation, scored_attributions

    run = Path(run)
    val, evidence, methods, split = run_valuation(run)
    n1 = len(split.v1)
    attributions = scored_attributions(run, evidence, methods, n1)  # D-TRAK's: only the targets it scored
    cfg = OmegaConf.load(run / "config.yaml")
    embedder = build_embedder(plain(cfg.embedder))
    if embedder.needs_fit:
        raise GmvError(f"the counterfactual report embeds X̂' on its own, but {embedder.name} is fitted on the pool "
                       "it values; read the retrains in a fixed embedding (pixels, a network)")
    threshold = near_copy_threshold(val.gen_emb, val.pool_emb[n1:])
    key = base_key(run, (type(embedder).__module__, *embedder.code_modules))
    return BaseRun(run, int(cfg.seed), split.v1, val.pool_emb[:n1], val.gen_emb, attributions, methods[0].name,
                   threshold, cfg, embedder, key)


def removal_of(job) -> dict[str, Any]:
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(job.dir / "config.yaml")
    sub = cfg.data.get("subset") or {}
    if sub.get("rule") is None:
        raise GmvError(f"{job.dir}: no data.subset rule; the counterfactual report reads retrains by rule")
    return {"seed": int(cfg.seed), "rule": str(sub.rule), "r": int(sub.r), "column": str(sub.get("column") or "value"),
            "target": None if sub.get("target") is None else int(sub.target)}


def job_row(job, base: BaseRun, removal: dict[str, Any]) -> tuple[dict[str, Any], np.ndarray, np.ndarray | None]:
    """One retrain (its `removal`, read by `_removal`) against its base: its row, its per-target shifts, and which
    of the targets its judge attributed (all, or D-TRAK's first n) had their top-1 image removed (None: no judge)."""
    from gmv.analysis.counterfactual import (affected_targets, paired_shift, removal_effect,
                                             removed_reproduction)
    from gmv.valuation.embedders import embed_cached
    from gmv.valuation.inputs import as_imageset

    split = np.load(job.dir / "split.npz")
    if not np.array_equal(np.sort(split["v1"]), np.sort(base.v1)):
        raise GmvError(f"{job.dir} was split differently from its base run {base.dir}")
    removed = np.isin(base.v1, split["dropped"])
    method = "random" if removal["rule"] == "random" else (base.main if removal["column"] == "value"
                                                            else removal["column"])
    gen_cf, _ = embed_cached(base.embedder, as_imageset(job.dir / "samples.npz", "X̂'"), base.cfg.cache_dir,
                             desc="embed X̂'")
    shift = paired_shift(base.gen_emb, gen_cf)
    judge = base.attributions.get(base.main if method == "random" else method)
    row: dict[str, Any] = {"job": f"{job.dir.parent.name}/{job.dir.name}", "method": method, **removal,
                           "n_removed": int(removed.sum()), "shift_mean": float(shift.mean())}
    affected = None
    if judge is not None:  # D-TRAK's attributions cover only its targets
        affected = affected_targets(judge, removed)
        row.update({f"affected_{k}": v for k, v in removal_effect(shift[:len(judge)], affected).items()})
    before = removed_reproduction(base.gen_emb, base.v1_emb[removed], base.threshold)
    after = removed_reproduction(gen_cf, base.v1_emb[removed], base.threshold)
    row.update({"removed_nn_before": before["nn_distance_mean"], "removed_nn_after": after["nn_distance_mean"],
                "near_copies_before": before["near_copies"], "near_copies_after": after["near_copies"]})
    if removal["target"] is not None:
        t = removal["target"]
        row.update({"target_shift": float(shift[t]), "target_percentile": float((shift < shift[t]).mean())})
    return row, shift, affected


def read_job(job, base: BaseRun, removal: dict[str, Any]) -> tuple[dict[str, Any], np.ndarray, np.ndarray | None]:
    """job_row's outputs for one retrain: saved in its folder where it was read before against this base by this
    code (load_reduction), else read from its samples.npz and saved (save_reduction)."""
    saved = load_reduction(job.dir, base.key)
    if saved is not None:
        return saved
    if not (job.dir / "samples.npz").is_file():
        why = (f"its {JOB_FILE} was read against another base run or by other code" if (job.dir / JOB_FILE).is_file()
               else f"it has no {JOB_FILE} either")
        raise GmvError(f"{job.dir}: cannot read this retrain: its samples.npz is gone and {why}; give the base it was "
                       "read against, or rerun the retrain to draw its samples again")
    row, shift, affected = job_row(job, base, removal)
    save_reduction(job.dir, base.key, row, shift, affected)
    return row, shift, affected
