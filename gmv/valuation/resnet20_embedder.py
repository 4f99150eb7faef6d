"""The CIFAR-10 ResNet-20 as an embedder (`resnet20_cifar`): the pooled classifier features, or a stage's
spatial features pooled to a grid (instance-level; issue 20)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from gmv.errors import GmvError
from gmv.valuation.embedders import TorchEmbedder, _file_id


RESNET20_LAYERS = ("pooled", "layer1", "layer2", "layer3")


class ResNet20Embedder(TorchEmbedder):
    """Features of the CIFAR-10 ResNet-20 (weights file required): `layer: pooled` (default) the 64-d
    globally pooled features a classifier reads; `layer1` / `layer2` / `layer3` the spatial activations
    of that stage (16 / 32 / 64 channels), average-pooled to a `grid` × `grid` map (grid 0: not pooled) —
    instance-level descriptors that keep where things are, which the pooled features throw away."""

    name = "resnet20_cifar"
    code_modules = ("gmv.models.resnet20_cifar",)

    def __init__(self, weights: str | None = None, image_size: int | None = 32, layer: str = "pooled",
                 grid: int = 4, **kw):
        from gmv.models.resnet20_cifar import load_resnet20

        if not weights or not Path(weights).is_file():
            raise GmvError(f"resnet20_cifar needs its weights file; not found: {weights!r} "
                           "(e.g. ../shared/data/cifar10_resnet20-12fca82f.th, or train one yourself)")
        if layer not in RESNET20_LAYERS:
            raise GmvError(f"resnet20_cifar layer must be one of {', '.join(RESNET20_LAYERS)}, got {layer!r}")
        if isinstance(grid, bool) or not isinstance(grid, int) or grid < 0:
            raise GmvError(f"resnet20_cifar grid must be an integer ≥ 0 (0 = the full map), got {grid!r}")
        self.weights_file, self.layer, self.grid = str(weights), layer, int(grid)
        super().__init__(load_resnet20(weights), image_size=image_size, **kw)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        if self.layer == "pooled":
            return self.network.features(x)
        h = self.network.feature_map(x, self.layer)
        return F.adaptive_avg_pool2d(h, self.grid) if self.grid else h

    def fingerprint(self) -> dict[str, Any]:
        fp = {"name": self.name, "image_size": self.image_size, "precision": self.precision,
              "weights": _file_id(self.weights_file)}
        return fp if self.layer == "pooled" else {**fp, "layer": self.layer, "grid": self.grid}
