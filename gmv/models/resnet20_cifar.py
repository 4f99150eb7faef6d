"""ResNet-20 for CIFAR-10 (He et al. 2016, §4.2), the layout of the shared pretrained checkpoint.

    x: 3×32×32 ──conv1 3×3 (16) ─ bn1 ─ ReLU──▶ 16×32×32
      layer1: 3 BasicBlocks, 16 ch  ──▶ 16×32×32
      layer2: 3 BasicBlocks, 32 ch, first stride 2 ──▶ 32×16×16
      layer3: 3 BasicBlocks, 64 ch, first stride 2 ──▶ 64×8×8
      global average pool ──▶ 64        (the embedding gmv uses)
      linear 64 → 10                    (class logits)

A shortcut that changes shape has no parameters ("option A"): it keeps every second pixel and
pads the new channels with zeros, half on each side.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ZeroPadShortcut(nn.Module):
    """Parameter-free shortcut: subsample by 2 and zero-pad channels from c_in to c_out."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.pad = (c_out - c_in) // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, ::2, ::2]  # B×c_in×H/2×W/2
        return F.pad(x, (0, 0, 0, 0, self.pad, self.pad))  # B×c_out×H/2×W/2


class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = ZeroPadShortcut(c_in, c_out) if (stride != 1 or c_in != c_out) else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + self.shortcut(x))


class ResNet20(nn.Module):
    def __init__(self, num_classes: int = 10, blocks_per_stage: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._stage(16, 16, blocks_per_stage, stride=1)
        self.layer2 = self._stage(16, 32, blocks_per_stage, stride=2)
        self.layer3 = self._stage(32, 64, blocks_per_stage, stride=2)
        self.linear = nn.Linear(64, num_classes)

    @staticmethod
    def _stage(c_in: int, c_out: int, n: int, stride: int) -> nn.Sequential:
        return nn.Sequential(BasicBlock(c_in, c_out, stride), *[BasicBlock(c_out, c_out) for _ in range(n - 1)])

    def feature_map(self, x: torch.Tensor, layer: str = "layer3") -> torch.Tensor:
        """B×3×H×W (normalised) → the activations after `layer`: layer1 B×16×H×W, layer2 B×32×H/2×W/2,
        layer3 B×64×H/4×W/4."""
        h = F.relu(self.bn1(self.conv1(x)))  # B×16×H×W
        for name in ("layer1", "layer2", "layer3"):
            h = getattr(self, name)(h)
            if name == layer:
                return h
        raise ValueError(f"unknown ResNet-20 layer {layer!r}; one of layer1, layer2, layer3")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """B×3×H×W (normalised) → B×64 pooled features."""
        return self.feature_map(x, "layer3").mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.features(x))


def load_resnet20(path: str) -> ResNet20:
    """Load the shared checkpoint (a dict with `state_dict`, keys prefixed `module.`) or a bare state dict."""
    state = torch.load(path, weights_only=True, map_location="cpu")
    state = state.get("state_dict", state)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    model = ResNet20()
    model.load_state_dict(state)
    return model.eval()
