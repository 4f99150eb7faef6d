"""Sample quality: Fréchet distances between feature sets, and Inception FID/KID when available.

- `frechet_distance(a, b)`: ‖μa − μb‖² + tr(Σa + Σb − 2 (Σa Σb)^½) of the Gaussians fitted to
  two feature sets (float64; sample covariances with ddof = 1).
- `embedding_fd(real, fake, label)`: {"fd_<label>": …} for any embedding gmv computes.
- `inception_fid(real, fake)`: FID and KID with torchmetrics' Inception-v3 (torch-fidelity's
  TF-compatible port). Works offline only: it needs the `torch-fidelity` package and the
  weights file already in the torch hub cache; without either it says so in one line and
  returns None (it never downloads).
"""

from __future__ import annotations

import importlib.util
import math
import re
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import scipy.linalg

from gmv.data.imageset import ImageSet
from gmv.data.pixels import as_pixels
from gmv.data.stream import LazyImageSet
from gmv.errors import GmvError

#: the file torch-fidelity's FeatureExtractorInceptionV3 downloads into `<torch hub>/checkpoints/`
INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"


def _as_features(x: Any, what: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise GmvError(f"{what}: features must be an N×D array, got shape {x.shape}")
    if len(x) < 2:
        raise GmvError(f"{what}: need at least 2 feature vectors to fit a Gaussian, got {len(x)}")
    if not np.all(np.isfinite(x)):
        raise GmvError(f"{what}: features contain NaN or inf")
    return x


def frechet_distance(feats_a, feats_b, eps: float = 1e-6, method: str = "auto") -> float:
    """Fréchet distance between Gaussians fitted to two N×D feature sets (1-D input = D of 1; sample
    covariances, ddof 1) — gmv's one implementation, two ways to take tr((Σa Σb)^½):

    - `auto` (the default: the study's quality stage and the training trajectory's probes): `sqrtm` when
      D ≤ min(na, nb), else `svd`.
    - `sqrtm`: scipy's D×D matrix square root; if it is not finite (near-singular covariances, e.g. fewer
      samples than dimensions) both covariances get `eps` added to the diagonal, and a numerically complex
      result keeps its real part (an error if the imaginary part is large).
    - `svd`: the exact low-rank identity tr((Σa Σb)^½) = Σ singular values of (A Bᵀ) / √((na−1)(nb−1))
      for centred A, B — an na×nb problem instead of a D×D one, exact even when N < D (where Σa Σb is
      singular and `sqrtm` is slow and unreliable).

    Studies committed before 2026-12-06 took `sqrtm` in every case: where D > N (pixels of the default digits
    study, 256-d against 100 X_v1 images) it agrees with the exact value to about five significant digits
    (0.536536 vs 0.536538 on results/lds/digits_base), and for 3,072-d CIFAR-10 pixels it took minutes.
    """
    a = _as_features(feats_a, "frechet_distance (first set)")
    b = _as_features(feats_b, "frechet_distance (second set)")
    if a.shape[1] != b.shape[1]:
        raise GmvError(f"frechet_distance: feature dimensions differ ({a.shape[1]} vs {b.shape[1]})")
    if method not in ("auto", "svd", "sqrtm"):
        raise GmvError(f"frechet_distance: method must be auto, svd or sqrtm, got {method!r}")
    if method == "svd" or (method == "auto" and a.shape[1] > min(len(a), len(b))):
        return _frechet_svd(a, b)
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a = np.atleast_2d(np.cov(a, rowvar=False))
    cov_b = np.atleast_2d(np.cov(b, rowvar=False))
    diff = mu_a - mu_b

    def _sqrtm(m: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "matrix is singular" — handled below
            out = scipy.linalg.sqrtm(m)
        return np.asarray(out[0] if isinstance(out, tuple) else out)

    covmean = _sqrtm(cov_a @ cov_b)
    if not np.all(np.isfinite(covmean)):
        offset = np.eye(len(cov_a)) * eps
        covmean = _sqrtm((cov_a + offset) @ (cov_b + offset))
    if np.iscomplexobj(covmean):
        imag = np.abs(np.diagonal(covmean).imag).max()
        scale = max(1.0, np.abs(np.diagonal(covmean).real).max())
        if imag > 1e-3 * scale:
            raise GmvError(
                f"frechet_distance: the covariance square root has a large imaginary part ({imag:.3g}); "
                "the features are degenerate (use more samples than feature dimensions)"
            )
        covmean = covmean.real
    fd = float(diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.trace(covmean))
    return max(fd, 0.0)  # rounding can leave a tiny negative number for identical sets


def _frechet_svd(a: np.ndarray, b: np.ndarray) -> float:
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    ca, cb = a - mu_a, b - mu_b
    tr_a = float(np.einsum("ij,ij->", ca, ca)) / (len(a) - 1)
    tr_b = float(np.einsum("ij,ij->", cb, cb)) / (len(b) - 1)
    small, large = (ca, cb) if len(ca) <= len(cb) else (cb, ca)
    sv = np.linalg.svd(small @ large.T, compute_uv=False)
    tr_sqrt = float(sv.sum()) / math.sqrt((len(a) - 1) * (len(b) - 1))
    diff = mu_a - mu_b
    return max(float(diff @ diff) + tr_a + tr_b - 2.0 * tr_sqrt, 0.0)


def embedding_fd(real_feats, fake_feats, label: str) -> dict[str, float]:
    """{"fd_<label>": Fréchet distance} between real and generated embeddings."""
    key = re.sub(r"[^0-9A-Za-z_]+", "_", str(label)).strip("_") or "features"
    return {f"fd_{key}": frechet_distance(real_feats, fake_feats)}


def inception_weights_path() -> Path:
    """Where torch-fidelity keeps its Inception weights (the torch hub cache; nothing is fetched)."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_WEIGHTS_FILE


def _fidelity_available() -> bool:
    """Whether `torch-fidelity` (torchmetrics' Inception-v3 backend) is installed."""
    return importlib.util.find_spec("torch_fidelity") is not None


def _skip(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _uint8_nchw(images, start: int, stop: int):
    """Images start:stop of an in-memory or streamed set as uint8 N×3×H×W."""
    import torch

    block = as_pixels(images).read_range(start, stop)
    x = torch.from_numpy(np.ascontiguousarray(block.transpose(0, 3, 1, 2)))
    return x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x


def inception_fid(real: ImageSet, fake: ImageSet, batch_size: int = 100, device: str | None = None,
                  weights_path: str | Path | None = None, kid_subsets: int = 100,
                  kid_subset_size: int = 1000) -> dict[str, float] | None:
    """FID and KID (Inception-v3 pool features, 2048-D) between two image sets, or None (with a
    one-line message) when `torch-fidelity` or the Inception weights are not available locally.

    Returns {"fid", "kid_mean", "kid_std", "n_real", "n_fake"}. Grey images are repeated to RGB.
    """
    if not all(isinstance(s, (ImageSet, LazyImageSet)) for s in (real, fake)):
        raise GmvError("inception_fid compares two image sets (ImageSet or a streamed LazyImageSet)")
    if not _fidelity_available():
        _skip("torch-fidelity is not installed (pip install torch-fidelity); skipping FID/KID")
        return None
    path = Path(weights_path) if weights_path is not None else inception_weights_path()
    if not path.is_file():
        _skip(f"Inception weights not found at {path}; skipping FID/KID")
        return None
    if len(real) < 2 or len(fake) < 2:
        raise GmvError(f"inception_fid needs ≥ 2 images per set, got {len(real)} real and {len(fake)} generated")

    import torch
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    fid = FrechetInceptionDistance(feature=2048, normalize=False, feature_extractor_weights_path=str(path))
    kid = KernelInceptionDistance(feature=fid.inception, subsets=int(kid_subsets),
                                  subset_size=int(min(kid_subset_size, len(real), len(fake))))
    fid, kid = fid.to(dev), kid.to(dev)
    with torch.inference_mode():
        for images, is_real in ((real, True), (fake, False)):
            for start in range(0, len(images), batch_size):
                x = _uint8_nchw(images, start, min(start + batch_size, len(images))).to(dev)
                fid.update(x, real=is_real)
                kid.update(x, real=is_real)
        fid_value = float(fid.compute())
        kid_mean, kid_std = kid.compute()
    return {"fid": fid_value, "kid_mean": float(kid_mean), "kid_std": float(kid_std),
            "n_real": len(real), "n_fake": len(fake)}
