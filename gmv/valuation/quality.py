"""Quality-weighted credit (GMValuator, ICLR 2025): V(x_i, x̂_j) = q_j · softmax_j(−d_ij / τ), so that a
broken generated image hands out less than a full unit of credit. Every weighting gives one q_j ∈ [0, 1]
per generated image; values then sum to Σ_j q_j instead of m.

    NoQuality()            q_j = 1: the seed paper (the default)
    RealismQuality(k=3)    the realism score of Kynkäänniemi et al. (NeurIPS 2019) in the valuation embedding,
                           against the real pool: each real image's k-NN radius r_i (distance to its k-th
                           nearest other real image), the half with the largest radii discarded as outliers,
                           then R_j = max_i r_i / ‖e(x̂_j) − e(x_i)‖ (R ≥ 1: inside some real image's
                           neighbourhood). q_j = min(1, R_j): a sample on the real manifold keeps full credit,
                           one off it hands out less, the further the less. Needs no weights.
    FileQuality(path)      per-sample scores from any external image-quality model, a CSV with one row per
                           generated image in X̂'s order and a `quality` column (higher = better, ≥ 0);
                           q_j = s_j / max_j s_j, so the best sample keeps full credit and ratios are kept.

The ICLR 2025 paper multiplies the softmax credit by an IQA score without fixing one scale for it; the
normalisations above are gmv's (each keeps q in [0, 1] and the best sample at 1).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

from gmv.errors import GmvError

if TYPE_CHECKING:
    from gmv.valuation.methods import Evidence

QUALITIES = ("none", "realism", "file")


@runtime_checkable
class SampleQuality(Protocol):
    name: str

    def weights(self, evidence: Evidence) -> np.ndarray:
        """float64 m: q_j ∈ [0, 1] for every generated image."""


class NoQuality:
    name = "none"

    def weights(self, evidence: Evidence) -> np.ndarray:
        return np.ones(len(evidence.gen_emb))


def knn_radii(real: np.ndarray, k: int) -> np.ndarray:
    """float64 N: distance of each real point to its k-th nearest *other* real point."""
    from gmv.valuation.matchers import exact_search

    if len(real) <= k:
        raise GmvError(f"the realism score needs more than k = {k} real images, got {len(real)}")
    sq, _ = exact_search(real, real, k + 1)  # column 0 is the point itself (distance 0)
    return np.sqrt(np.maximum(sq[:, k].astype(np.float64), 0.0))


def realism_scores(real: np.ndarray, fake: np.ndarray, k: int = 3, keep: float = 0.5,
                   candidates: int = 256) -> tuple[np.ndarray, float]:
    """(R_j for every fake point, share of them whose maximum is certified exact).

    The real points with the `keep` share of smallest k-NN radii are kept (Kynkäänniemi et al. discard the
    half with the largest). R_j = max_i r_i / d(x̂_j, x_i) over the kept points. Each fake point's
    `candidates` nearest kept points are searched exactly; a point farther than d_C contributes at most
    r_max / d_C, so when that bound is below the candidates' maximum the result is exact (certified);
    otherwise it is a lower bound. With ≤ `candidates` kept points every R_j is exact."""
    from gmv.valuation.matchers import exact_search

    real = np.ascontiguousarray(real, np.float32)
    fake = np.ascontiguousarray(fake, np.float32)
    radii = knn_radii(real, k)
    kept = radii <= np.quantile(radii, keep)
    real_kept, r_kept = real[kept], radii[kept]
    c = min(candidates, len(real_kept))
    sq, idx = exact_search(real_kept, fake, c)
    d = np.sqrt(np.maximum(sq.astype(np.float64), 0.0))
    with np.errstate(divide="ignore"):
        ratio = np.where(d > 0, r_kept[idx] / d, np.inf)
    scores = ratio.max(axis=1)
    if c == len(real_kept):
        return scores, 1.0
    bound = r_kept.max() / np.maximum(d[:, -1], 1e-30)
    return scores, float(np.mean(bound <= scores))


class RealismQuality:
    name = "realism"

    def __init__(self, k: int = 3, keep: float = 0.5):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise GmvError(f"realism quality: k must be an integer ≥ 1, got {k!r}")
        if not 0 < float(keep) <= 1:
            raise GmvError(f"realism quality: keep must be a share in (0, 1], got {keep!r}")
        self.k, self.keep = k, float(keep)
        self.certified: float | None = None

    def weights(self, evidence: Evidence) -> np.ndarray:
        scores, self.certified = realism_scores(evidence.pool_emb, evidence.gen_emb, self.k, self.keep)
        return np.minimum(1.0, scores)


class FileQuality:
    name = "file"

    def __init__(self, path: str | Path, column: str = "quality"):
        self.path, self.column = Path(path), column
        if not self.path.is_file():
            raise GmvError(f"quality file {self.path} not found: give a CSV with a {column!r} column, one row per "
                           "generated image in X̂'s order")
        with open(self.path, newline="") as f:
            reader = csv.DictReader(f)
            if column not in (reader.fieldnames or []):
                raise GmvError(f"quality file {self.path} has no {column!r} column (columns: {reader.fieldnames})")
            try:
                self.scores = np.array([float(row[column]) for row in reader], np.float64)
            except ValueError as e:
                raise GmvError(f"quality file {self.path}: {e}") from None
        if not np.isfinite(self.scores).all() or (self.scores < 0).any() or not (self.scores > 0).any():
            raise GmvError(f"quality file {self.path}: scores must be finite, ≥ 0 and not all 0 (higher = better)")

    def weights(self, evidence: Evidence) -> np.ndarray:
        m = len(evidence.gen_emb)
        if len(self.scores) != m:
            raise GmvError(f"quality file {self.path} has {len(self.scores)} rows for {m} generated images")
        return self.scores / self.scores.max()


def build_quality(spec: Any = "none", file: str | Path | None = None) -> SampleQuality:
    """A SampleQuality from an instance or a name of QUALITIES (`file` needs the CSV path)."""
    if isinstance(spec, SampleQuality):
        return spec
    if spec in (None, "none"):
        return NoQuality()
    if spec == "realism":
        return RealismQuality()
    if spec == "file":
        if not file:
            raise GmvError("quality=file needs the CSV of per-sample scores (valuation.quality_file / --quality-file)")
        return FileQuality(file)
    raise GmvError(f"unknown quality weighting {spec!r}; choose one of {', '.join(QUALITIES)}")


#: the file piq's BRISQUE reads (its SVR), looked up in torch's hub cache; gmv never downloads it
BRISQUE_WEIGHTS = "brisque_svm_weights.pt"


def brisque_quality(images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """A no-reference IQA score per image for `FileQuality`: 100 − BRISQUE (Mittal et al. 2012, via piq),
    floored at 0, so higher = better. `images` uint8 N×H×W×C. Needs `pip install 'gmv[iqa]'` and piq's SVR
    weights in torch's hub cache (``$TORCH_HOME/hub/checkpoints/brisque_svm_weights.pt``)."""
    import torch

    try:
        import piq
    except ImportError:
        raise GmvError("BRISQUE scores need piq: pip install 'gmv[iqa]'") from None
    weights = Path(torch.hub.get_dir()) / "checkpoints" / BRISQUE_WEIGHTS
    if not weights.is_file():
        raise GmvError(f"BRISQUE needs piq's SVR weights at {weights} (piq's release v0.4.0 file {BRISQUE_WEIGHTS}); "
                       "gmv does not download them — copy the file there, or set TORCH_HOME")
    x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float() / 255.0
    scores = [piq.brisque(x[i:i + batch_size], data_range=1.0, reduction="none") for i in range(0, len(x), batch_size)]
    return np.maximum(0.0, 100.0 - torch.cat(scores).double().numpy())
