"""PCA-whitened pixels, a classic copy-detection baseline (the embedder `whitened_pixels`; issue 20)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from gmv.cache import array_digest
from gmv.errors import GmvError
from gmv.valuation.embedders import Embedder


class WhitenedPixelEmbedder(Embedder):
    """PCA-whitened pixels, a classic copy-detection baseline: each image's pixels (in [0, 1]) minus the
    mean, projected on the top `dims` principal directions and divided by their standard deviations
    (+ `eps`), so that every direction of variation weighs the same and a copy's small perturbations
    (noise, compression) do not outweigh what makes an image itself. The whitening is fitted (`fit`) on
    the pool being valued — both halves alike, never the generated set; `valuate` does it — and is part of
    the fingerprint (its digest), so embeddings made with another fit are never reused."""

    name = "whitened_pixels"
    needs_fit = True

    def __init__(self, dims: int = 256, eps: float = 1e-3, fit_size: int = 20_000, seed: int = 0, **kw):
        super().__init__(**kw)
        if isinstance(dims, bool) or not isinstance(dims, int) or dims < 1:
            raise GmvError(f"whitened_pixels dims must be an integer ≥ 1, got {dims!r}")
        if not eps > 0:
            raise GmvError(f"whitened_pixels eps must be > 0, got {eps!r}")
        self.dims, self.eps, self.fit_size, self.seed = int(dims), float(eps), int(fit_size), int(seed)
        self.mean: torch.Tensor | None = None
        self.projection: torch.Tensor | None = None  # D×dims: principal directions / (σ + eps)
        self._digest: str | None = None

    @property
    def fitted(self) -> bool:
        return self.projection is not None

    def fit(self, images) -> "WhitenedPixelEmbedder":
        """Fit the whitening on (a seeded sample of at most `fit_size` of) `images`."""
        from gmv.data.pixels import as_pixels

        pixels = as_pixels(images)
        n = len(pixels)
        rows = np.sort(np.random.default_rng(self.seed).choice(n, min(n, self.fit_size), replace=False))
        x = torch.from_numpy(pixels.read(rows)).permute(0, 3, 1, 2).double().div(255.0).flatten(1)
        if len(x) < 2:
            raise GmvError("whitened_pixels needs at least 2 images to fit its whitening")
        mean = x.mean(0)
        _, s, vt = torch.linalg.svd(x - mean, full_matrices=False)
        k = min(self.dims, len(s))
        sigma = s[:k] / math.sqrt(len(x) - 1)
        self.mean = mean.float()
        self.projection = (vt[:k].T / (sigma + self.eps)).float()
        self._digest = array_digest(self.mean.numpy(), self.projection.numpy())
        return self

    def dim(self, image_shape: tuple[int, int, int]) -> int:
        return int(self.projection.shape[1]) if self.fitted else min(self.dims, int(np.prod(image_shape)))

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.fitted:
            raise GmvError("whitened_pixels is not fitted: call fit(images) on the pool first (valuate does)")
        return (x.flatten(1) - self.mean) @ self.projection

    def fingerprint(self) -> dict[str, Any]:
        return {"name": self.name, "dims": self.dims, "eps": self.eps, "whitening": self._digest}
