"""Valuation methods as small composable objects (in the spirit of pyDVL's valuation methods).

Every method sees the same evidence — one generated set X̂, one pool X_v1 ∪ X_v2, their embeddings
and the m×K match tables — and returns a `MethodResult`: one score per pool image (higher = the
generator's outputs draw more on it), the v1/v2 split, and method-specific extras. Methods are
validated once, in their constructor, and selected in `conf/valuation/` by `_target_`.

    GMValuator(k, tau="auto", distance="l2", quality="none")
                                               the paper's value φ_i = Σ_j V(x_i, x̂_j) (Eq. 5–6); with a
                                               quality weighting (gmv/valuation/quality.py) each generated
                                               point's credit is scaled by its q_j (ICLR 2025)
    KNNCount(k)                                how many generated points have x_i among their K matches
    GANLeaks(calibrated=False)                 full black-box membership score of GAN-Leaks (Chen et
                                               al., CCS 2020): −min_j ‖e(x_i) − e(x̂_j)‖, the distance
                                               from each training image to its nearest generated image;
                                               calibrated: −(that − min_r ‖e(x_i) − e(r)‖) for a
                                               reference set R of real images neither half contains
                                               (the reference generator of the paper, idealised by
                                               real reference images: it removes per-image difficulty —
                                               images in dense regions are near everything)
"""

from __future__ import annotations

import functools
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from gmv.errors import GmvError
from gmv.valuation.matchers import DISTANCES, MatcherConfig, MatchResult, match
from gmv.valuation.value import (TARGET_TOP_CREDIT, check_target, check_tau, credit, credit_sharpness,
                                 resolve_tau, values_from_credit)


#: the reverse search at this embedding width and above scans its inverted file in PCA_SHARE of the dimensions
REVERSE_PCA_MIN_DIM, REVERSE_PCA_SHARE, REVERSE_RERANK = 256, 4, 8


def reverse_matcher(main: MatcherConfig, dim: int | None = None) -> MatcherConfig:
    """The settings of the baselines' reverse searches (pool → generated, pool → reference): exact when the
    main search is exact by the user's choice, else `auto` (exact when small or timed cheaper, IVF at scale)
    under the main matcher's memory budget, recall target, recall sample, seed, threads and chunk size.

    A reverse search asks K = 1 for every pool image — ten times the main search's queries at 1M × 100k —
    so scanning the inverted file's codes is most of its cost. For embeddings of `dim` ≥ 256, an IVF choice
    of auto scans them in dim/4 PCA dimensions and re-ranks 8 candidates by their full distance (distances
    stay exact; recall is measured and nprobe tuned as always): 12 s instead of 30 s for 1M pool images
    against 100k generated at 512-d, recall@1 0.95 at the same nprobe (results/bench/scale_end_to_end.md)."""
    kind = "flat" if main.kind == "flat" and not main.auto_reason else "auto"
    reduce = {"pca": dim // REVERSE_PCA_SHARE, "rerank": REVERSE_RERANK} if (
        kind == "auto" and dim is not None and dim >= REVERSE_PCA_MIN_DIM) else {}
    return MatcherConfig(kind=kind, recall_queries=main.recall_queries, seed=main.seed, memory_gb=main.memory_gb,
                         target_recall=main.target_recall, chunk_size=main.chunk_size, threads=main.threads, **reduce)


@dataclass
class Evidence:
    """What every method may use; computed once per valuation.

    `nearest(to)` is the reverse search some methods need — every pool image's distance to its nearest
    generated ("generated") or reference ("reference") image — run once per target set and shared by
    every method that asks (GAN-Leaks and its calibrated form read the same one). It goes through the
    matcher machinery with `reverse_matcher`'s settings (kind auto by default: exact search when the
    job is small or timed cheaper, an inverted file at scale) and keeps the search's recall@1 and settings
    in `reverse[to]`."""

    pool_emb: np.ndarray  # float32 N×D (X_v1 then X_v2)
    gen_emb: np.ndarray  # float32 m×D
    split: np.ndarray  # str N: "v1" | "v2"
    matches: MatchResult  # the m×K tables of X̂ against the pool
    reference_emb: np.ndarray | None = None  # float32 R×D: real images in neither half (optional)
    reverse_matcher: MatcherConfig = field(default_factory=MatcherConfig)  # settings of the reverse searches
    reverse: dict[str, MatchResult] = field(default_factory=dict)  # the reverse searches run so far, by target

    @property
    def n_pool(self) -> int:
        return len(self.pool_emb)

    def nearest(self, to: str) -> np.ndarray:
        """float64 N: Euclidean distance from every pool image to its nearest image of `to`
        ("generated" or "reference"), searched once (module docstring of Evidence)."""
        if to not in self.reverse:
            target = {"generated": self.gen_emb, "reference": self.reference_emb}[to]
            self.reverse[to] = match(target, self.pool_emb, 1, self.reverse_matcher, distance="sqeuclidean",
                                     announce=False)
        sq = self.reverse[to].distances[:, 0]
        return np.sqrt(np.maximum(np.asarray(sq, np.float64), 0.0))

    def reverse_extras(self, to: str) -> dict[str, Any]:
        """What a method reports of the reverse search it read: matcher, recall@1 against exact search."""
        r = self.reverse[to]
        return {f"reverse_{to}_matcher": r.factory + (f" + re-rank {r.settings['rerank']}" if r.settings["rerank"] else ""),
                f"reverse_{to}_recall_at_1": float(r.recall_at_k)}


@dataclass
class MethodResult:
    name: str
    values: np.ndarray  # float64 N: one score per pool image, higher = more credited
    split: np.ndarray  # str N
    extras: dict[str, Any] = field(default_factory=dict)  # scalar settings and diagnostics
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # per-image or per-match arrays

    def side(self, name: str) -> np.ndarray:
        return self.values[self.split == name]


@runtime_checkable
class Valuator(Protocol):
    name: str
    needs_reference: bool  # reads Evidence.reference_emb (skipped as a baseline when no reference set is given)

    def needs_k(self) -> int:
        """How many matches per generated point the method reads from the tables (0 = none)."""

    def value(self, evidence: Evidence) -> MethodResult:
        """Score every pool image from the shared evidence."""

    # Optional: `attribute(evidence) → m×N` per-target attributions (x̂_j × x_i), read by the counterfactual and
    # LDS studies (gmv/analysis/lds.py); the built-in methods have it.


def _check_k(k: Any, what: str) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise GmvError(f"{what}: k must be an integer ≥ 1, got {k!r}")
    return int(k)


def _columns(matches: MatchResult, k: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    if matches.indices.shape[1] < k:
        raise GmvError(f"{what} needs {k} matches per generated point but the tables hold "
                       f"{matches.indices.shape[1]}; match with K ≥ {k}")
    return matches.distances[:, :k], matches.indices[:, :k]


class GMValuator:
    """The paper's method: Eq. 5 credits over each generated point's K matches, summed per image (Eq. 6)."""

    name = "gmvaluator"
    needs_reference = False

    def __init__(self, k: int = 10, tau: float | str = "auto", distance: str = "l2",
                 target_top_credit: float = TARGET_TOP_CREDIT, quality: Any = "none", quality_file: str | None = None):
        from gmv.valuation.quality import build_quality

        self.k = _check_k(k, "GMValuator")
        self.quality = build_quality(quality, quality_file)
        if self.quality.name != "none":  # told apart from the unweighted method when both are valued
            self.name = f"gmvaluator_{self.quality.name}"
        self.tau = check_tau(tau)
        if distance not in DISTANCES:
            raise GmvError(f"GMValuator: distance must be one of {', '.join(DISTANCES)}, got {distance!r}")
        self.distance = distance
        self.target_top_credit = check_target(target_top_credit)

    def needs_k(self) -> int:
        return self.k

    def value(self, evidence: Evidence) -> MethodResult:
        if evidence.matches.settings.get("distance", "l2") != self.distance:
            raise GmvError(f"GMValuator expects {self.distance} match tables, got "
                           f"{evidence.matches.settings.get('distance')}")
        d, idx = _columns(evidence.matches, self.k, "GMValuator")
        valid = idx >= 0
        tau = resolve_tau(d, self.tau, valid, self.target_top_credit)
        w = credit(d, tau, valid=valid)
        extras = {"k": self.k, "tau": tau, "tau_rule": "auto" if self.tau == "auto" else "given",
                  "distance": self.distance, **credit_sharpness(w), "quality_weighting": self.quality.name}
        arrays: dict[str, np.ndarray] = {}
        if self.quality.name != "none":  # ICLR 2025: each generated point hands out q_j instead of 1
            q = np.asarray(self.quality.weights(evidence), np.float64)
            w = w * q[:, None]
            arrays["quality"] = q
            extras.update(quality_mean=float(q.mean()), quality_share_full=float(np.mean(q >= 1.0)))
            if getattr(self.quality, "certified", None) is not None:
                extras["quality_realism_certified"] = self.quality.certified
        values, n_matches = values_from_credit(idx, w, evidence.n_pool)
        if self.tau == "auto":
            extras["target_top_credit"] = self.target_top_credit
        return MethodResult(self.name, values, evidence.split, extras, {"credit": w, "n_matches": n_matches, **arrays})

    def attribute(self, evidence: Evidence) -> np.ndarray:
        """Per-target attributions, m×N dense: V(x_i, x̂_j) of Eq. 5 (0 outside each row's K matches)."""
        r = self.value(evidence)
        _, idx = _columns(evidence.matches, self.k, "GMValuator")
        return _scatter(idx, r.arrays["credit"], evidence.n_pool)


class KNNCount:
    """Plain K-NN match count: how many generated points have x_i among their K nearest training points."""

    name = "knn_count"
    needs_reference = False

    def __init__(self, k: int = 10):
        self.k = _check_k(k, "KNNCount")

    def needs_k(self) -> int:
        return self.k

    def value(self, evidence: Evidence) -> MethodResult:
        _, idx = _columns(evidence.matches, self.k, "KNNCount")
        idx = idx[idx >= 0]
        counts = np.bincount(idx, minlength=evidence.n_pool).astype(np.float64)
        return MethodResult(self.name, counts, evidence.split, {"k": self.k})

    def attribute(self, evidence: Evidence) -> np.ndarray:
        """Per-target attributions, m×N dense: 1 where x_i is among x̂_j's K matches, else 0."""
        _, idx = _columns(evidence.matches, self.k, "KNNCount")
        return _scatter(idx, np.ones(idx.shape), evidence.n_pool)


class GANLeaks:
    """GAN-Leaks full black-box score (Chen et al., CCS 2020) in the valuation embedding."""

    def __init__(self, calibrated: bool = False):
        self.calibrated = bool(calibrated)
        self.name = "gan_leaks_calibrated" if self.calibrated else "gan_leaks"
        self.needs_reference = self.calibrated

    def needs_k(self) -> int:
        return 0

    def value(self, evidence: Evidence) -> MethodResult:
        d_gen = evidence.nearest("generated")
        arrays = {"distance_to_generated": d_gen}
        extras = {"calibrated": self.calibrated, **evidence.reverse_extras("generated")}
        if not self.calibrated:
            return MethodResult(self.name, -d_gen, evidence.split, extras, arrays)
        ref = evidence.reference_emb
        if ref is None or len(ref) == 0:
            raise GmvError("calibrated GAN-Leaks needs a reference set of real images that neither half "
                           "contains (gmv-value --reference, or a study whose data has images outside the split)")
        d_ref = evidence.nearest("reference")
        arrays["distance_to_reference"] = d_ref
        extras.update(n_reference=int(len(ref)), **evidence.reverse_extras("reference"))
        return MethodResult(self.name, -(d_gen - d_ref), evidence.split, extras, arrays)

    def attribute(self, evidence: Evidence) -> np.ndarray:
        """Per-target attributions, m×N dense: −‖e(x_i) − e(x̂_j)‖ (calibrated: + the distance from x_i to its
        nearest reference image) — the score whose maximum over j is the method's value. Exact distances."""
        from scipy.spatial.distance import cdist

        d = cdist(np.asarray(evidence.gen_emb, np.float64), np.asarray(evidence.pool_emb, np.float64))
        return -(d - evidence.nearest("reference")[None, :]) if self.calibrated else -d


def _scatter(idx: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    """m×K (index, weight) tables → an m×N dense matrix (entries of index −1 dropped)."""
    out = np.zeros((len(idx), n), np.float64)
    rows = np.broadcast_to(np.arange(len(idx))[:, None], idx.shape)
    ok = idx >= 0
    np.add.at(out, (rows[ok], idx[ok]), np.asarray(weights, np.float64)[ok])
    return out


def tables_k(methods) -> int:
    """How many matches per generated point the m×K tables must hold for all of `methods` (at least 1)."""
    return max([m.needs_k() for m in methods] + [1])


@dataclass(frozen=True)
class MethodSpec:
    factory: Callable[..., Valuator]  # builds the method; given the keyword settings it accepts (e.g. k)
    baseline: bool  # reported beside the main method by default (gmv-value --baselines auto)


#: every valuation method by name — the one list `build_method`, gmv-value's --baselines and the tests read
METHODS: dict[str, MethodSpec] = {}


def register_method(name: str, factory: Callable[..., Valuator], baseline: bool = False) -> None:
    """Make `name` a valuation method: `build_method(name)`, gmv-value --baselines NAME, and — with
    `baseline` — one of the baselines gmv-value reports by default."""
    METHODS[name] = MethodSpec(factory, bool(baseline))


register_method("gmvaluator", GMValuator)
register_method("knn_count", KNNCount, baseline=True)
register_method("gan_leaks", GANLeaks, baseline=True)
register_method("gan_leaks_calibrated", functools.partial(GANLeaks, calibrated=True), baseline=True)


def _dtrak(**settings):
    from gmv.valuation.dtrak import DTRAK

    return DTRAK(**settings)


# gradient-based (through dattri); they need the generator, so neither is a default baseline
register_method("d_trak", _dtrak)
register_method("trak", functools.partial(_dtrak, output="loss"))


def default_baselines(has_reference: bool) -> list[str]:
    """The registered default baselines, without those that need a reference set when there is none."""
    return [name for name, spec in METHODS.items()
            if spec.baseline and (has_reference or not build_method(name).needs_reference)]


def build_method(spec: Any, **settings: Any) -> Valuator:
    """A Valuator from an instance, a registered name (`METHODS`: gmvaluator, knn_count, gan_leaks,
    gan_leaks_calibrated, …; `settings` such as k=10 go to the factory where it takes them) or a Hydra
    `_target_` mapping."""
    if isinstance(spec, Valuator):
        return spec
    if isinstance(spec, str):
        if spec not in METHODS:
            raise GmvError(f"unknown valuation method {spec!r}; choose one of {', '.join(METHODS)}")
        factory = METHODS[spec].factory
        target = factory.func if isinstance(factory, functools.partial) else factory
        accepted = inspect.signature(target).parameters
        return factory(**{k: v for k, v in settings.items() if k in accepted})
    if hasattr(spec, "get") and spec.get("_target_"):
        from hydra.utils import instantiate

        try:
            method = instantiate(spec)
        except GmvError:
            raise
        except Exception as e:  # noqa: BLE001 - a typo in _target_ or its arguments is a config error
            cause = e.__cause__ or e
            raise GmvError(f"cannot build valuation method {spec.get('_target_')!r}: "
                           f"{str(cause).splitlines()[0]}") from None
        if not isinstance(method, Valuator):
            raise GmvError(f"{spec.get('_target_')} is not a valuation method (needs `name`, `needs_reference`, "
                           "`needs_k()` and `value(evidence)`)")
        return method
    raise GmvError(f"cannot build a valuation method from {spec!r}")
