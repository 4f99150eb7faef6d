"""The removal half of a training-set edit (`data.subset`, gmv/data/edit.py applies it): which X_v1 images a
retrain keeps — listed (keep / drop dataset indices) or chosen by a rule (the top / bottom / random r of a
ranking values.csv column, or of one generated image's attributions in a finished run)."""

from __future__ import annotations

import csv
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from gmv.data.imageset import ImageSet
from gmv.data.split import Split
from gmv.errors import GmvError

RULES = ("top", "bottom", "random")


@dataclass(frozen=True)
class Subset:
    keep: tuple[int, ...] | None = None
    drop: tuple[int, ...] | None = None
    ranking: str | None = None
    column: str = "value"
    rule: str | None = None
    r: int | None = None
    seed: int = 0
    target: int | None = None


def _indices(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)):
        raise GmvError(f"{where} must be a list of dataset indices, got {value!r}")
    out = tuple(value)
    if any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in out):
        raise GmvError(f"{where} must hold dataset indices (integers ≥ 0), got {list(out)}")
    return out


def parse_subset(spec: Mapping[str, Any] | None, default_seed: int = 0) -> Subset | None:
    """`data.subset` → a Subset (None when no form is set), judged before any data is loaded: one line per mistake."""
    if not spec or (hasattr(spec, "values") and all(v is None for v in spec.values())):
        return None
    if not hasattr(spec, "get"):
        raise GmvError(f"data.subset must be a mapping (keep: […], drop: […] or ranking/rule/r), got {spec!r}")
    unknown = sorted(set(spec) - {"keep", "drop", "ranking", "column", "rule", "r", "seed", "target"})
    if unknown:
        raise GmvError(f"data.subset: unknown setting(s) {unknown}; valid: keep, drop, ranking, column, rule, r, seed, "
                       "target")
    forms = [k for k in ("keep", "drop", "rule") if spec.get(k) is not None]
    if len(forms) != 1:
        raise GmvError("data.subset: give exactly one of keep (indices), drop (indices) or rule (top | bottom | "
                       f"random, with r), got {forms or 'none'}")
    seed = int(default_seed if spec.get("seed") is None else spec["seed"])
    if forms == ["keep"]:
        return Subset(keep=_indices(spec["keep"], "data.subset.keep"), seed=seed)
    if forms == ["drop"]:
        return Subset(drop=_indices(spec["drop"], "data.subset.drop"), seed=seed)
    rule, r, ranking = spec.get("rule"), spec.get("r"), spec.get("ranking")
    if rule not in RULES:
        raise GmvError(f"data.subset.rule must be one of {', '.join(RULES)}, got {rule!r}")
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise GmvError(f"data.subset.r must be an integer ≥ 1 (images to drop), got {r!r}")
    if rule != "random" and not ranking:
        raise GmvError(f"data.subset.rule={rule} needs `ranking`: the values.csv of a study on the same split")
    target = spec.get("target")
    if target is not None:
        if isinstance(target, bool) or not isinstance(target, int) or target < 0:
            raise GmvError(f"data.subset.target must be a generated image's index (integer ≥ 0), got {target!r}")
        if rule == "random" or not Path(str(ranking)).is_dir():
            raise GmvError("data.subset.target ranks by one generated image's attributions: give rule top or bottom "
                           f"and as `ranking` the folder of a finished study run, got rule={rule}, ranking={ranking!r}")
    return Subset(ranking=None if ranking is None else str(ranking), column=str(spec.get("column") or "value"),
                  rule=rule, r=r, seed=seed, target=target)


def _ranking_scores(path: str, column: str, split: Split, v1: ImageSet) -> np.ndarray:
    """The `column` of a values.csv for the X_v1 images, in X_v1's order; checked to be this split's X_v1."""
    p = Path(path)
    if not p.is_file():
        raise GmvError(f"data.subset.ranking {p} not found: give the values.csv of a study on the same split")
    with open(p, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("split") == "v1" and not r.get("added")]
    if not rows or column not in rows[0]:
        raise GmvError(f"data.subset.ranking {p}: no X_v1 rows with a {column!r} column")
    labels = np.array([int(r["label"]) for r in rows])
    if len(rows) != len(split.v1) or not np.array_equal(labels, v1.labels[:len(split.v1)]):
        raise GmvError(f"data.subset.ranking {p} values {len(rows)} X_v1 images that are not this study's "
                       f"{len(split.v1)} (another split: use the ranking of a study with the same data and split seed)")
    return np.array([float(r[column]) for r in rows])


def _target_scores(subset: Subset, split: Split) -> np.ndarray:
    """Generated image `target`'s attributions over X_v1 by the method `column` of the run `ranking`."""
    from gmv.valuation.run_attributions import run_attributions

    attributions, run_v1 = run_attributions(subset.ranking, subset.target + 1)
    if not np.array_equal(run_v1, split.v1):
        raise GmvError(f"data.subset.ranking {subset.ranking} was split differently (another data or split seed)")
    name = next(iter(attributions)) if subset.column == "value" else subset.column  # value: the run's main method
    if name not in attributions:
        raise GmvError(f"data.subset.column {subset.column!r}: the run {subset.ranking} has attributions by "
                       f"{', '.join(attributions)} (value = its main method)")
    a = attributions[name]
    if subset.target >= len(a):
        raise GmvError(f"data.subset.target {subset.target}: {name} attributes only {len(a)} generated images there")
    return a[subset.target]


def _warn_on_tie_at_cut(ranked: np.ndarray, subset: Subset) -> None:
    """Warn when the r-th score ties the (r+1)-th: which of the tied images go is then X_v1's order, not the ranking."""
    cut = ranked[subset.r - 1]
    if ranked[subset.r] != cut:
        return
    beyond = int(np.sum(ranked > cut) if subset.rule == "top" else np.sum(ranked < cut))
    tied = int(np.sum(ranked == cut))
    what = f"generated image {subset.target}'s attributions" if subset.target is not None else "the ranking"
    warnings.warn(f"data.subset {subset.rule} {subset.r}: only {beyond} X_v1 image(s) score "
                  f"{'above' if subset.rule == 'top' else 'below'} {cut:.4g} in {what} ({subset.column}); "
                  f"the other {subset.r - beyond} are taken in X_v1's order from {tied} tied at that score"
                  + (f"; r ≤ {beyond} gives a cut the ranking decides" if beyond else ""), stacklevel=3)


def subset_rows(subset: Subset, split: Split, v1: ImageSet) -> np.ndarray:
    """Positions in X_v1 (as the split made it) that the subset keeps, in order."""
    n = len(split.v1)
    if subset.keep is not None or subset.drop is not None:
        listed = np.asarray(subset.keep if subset.keep is not None else subset.drop, np.int64)
        foreign = sorted(set(listed.tolist()) - set(split.v1.tolist()))
        if foreign:
            raise GmvError(f"data.subset: indices {foreign[:5]}{' …' if len(foreign) > 5 else ''} are not in X_v1 "
                           "(dataset indices of the split's training half: split.npz's v1)")
        inside = np.isin(split.v1, listed)
        keep = inside if subset.keep is not None else ~inside
    else:
        if subset.r >= n:
            raise GmvError(f"data.subset.r = {subset.r} would drop all {n} X_v1 images")
        if subset.rule == "random":
            dropped = np.random.default_rng([subset.seed, 7]).choice(n, subset.r, replace=False)
        else:
            scores = (_target_scores(subset, split) if subset.target is not None
                      else _ranking_scores(subset.ranking, subset.column, split, v1))
            order = np.argsort(-scores if subset.rule == "top" else scores, kind="stable")
            dropped = order[:subset.r]
            _warn_on_tie_at_cut(scores[order], subset)
        keep = np.ones(n, bool)
        keep[dropped] = False
    if not keep.any():
        raise GmvError("data.subset keeps no X_v1 image")
    return np.flatnonzero(keep)
