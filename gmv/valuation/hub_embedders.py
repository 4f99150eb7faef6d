"""Embedders from the ecosystem's model libraries, built from a local weights file — gmv never downloads.

- `timm`         any timm model as a feature extractor (`num_classes=0`: its pooled features), weights
                 loaded the timm way (`pretrained_cfg_overlay=dict(file=PATH)`: a .safetensors / .pth /
                 .bin of that model). DINOv2 ViT-S/14 is `model: vit_small_patch14_dinov2.lvd142m`
                 (conf/embedder/dinov2_vits14.yaml); `image_size` sets the input (ViTs take it at creation).
- `open_clip`    an OpenCLIP image tower (`encode_image`), weights by path (`pretrained=PATH`), CLIP's
                 input normalisation; e.g. `model: ViT-B-32` (conf/embedder/clip_vitb32.yaml).
- `torchscript`  a TorchScript file whose forward maps a normalised B×3×H×W batch to B×D — how SSCD
                 (Pizzi et al., CVPR 2022; the copy-detection descriptor) is distributed
                 (`sscd_disc_mixup.torchscript.pt`, input 288 px, ImageNet normalisation; conf/embedder/sscd.yaml).

Each needs its library (`pip install 'gmv[hub]'` for timm and open_clip) and its weights file; without the
file the error names it. `pretrained: false` (timm, open_clip) builds randomly initialised weights, seeded —
for tests of shapes and plumbing only. DreamSim is not here: its package fetches backbones at build time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from gmv.errors import GmvError
from gmv.valuation.embedders import IMAGENET_MEAN, IMAGENET_STD, TorchEmbedder, _file_id

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _weights_file(weights: str | None, what: str, hint: str) -> Path:
    if not weights or not Path(weights).is_file():
        raise GmvError(f"{what} needs its weights file (embedder.weights=PATH); not found: {weights!r}. {hint} "
                       "gmv does not download weights; `pretrained: false` runs with random weights (tests only)")
    return Path(weights)


def _library(name: str, pip: str):
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        raise GmvError(f"this embedder needs {name}: pip install {pip}") from None


class TimmEmbedder(TorchEmbedder):
    name = "timm"

    def __init__(self, model: str = "vit_small_patch14_dinov2.lvd142m", weights: str | None = None,
                 pretrained: bool = True, image_size: int | None = 224, **kw):
        timm = _library("timm", "'gmv[hub]'")
        path = _weights_file(weights, f"timm model {model}", "For DINOv2 ViT-S/14: the model.safetensors of "
                             "timm/vit_small_patch14_dinov2.lvd142m.") if pretrained else None
        options: dict[str, Any] = {"num_classes": 0}
        if image_size is not None and "vit" in model:
            options["img_size"] = image_size  # ViT position embeddings are sized at creation
        try:
            with torch.random.fork_rng():
                torch.manual_seed(0)
                net = timm.create_model(model, pretrained=path is not None, **options,
                                        **({"pretrained_cfg_overlay": {"file": str(path)}} if path else {}))
        except Exception as e:  # noqa: BLE001 - an unknown model name or a file of another model: the user's config
            raise GmvError(f"cannot build timm model {model!r}{f' from {path}' if path else ''}: "
                           f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        cfg = getattr(net, "pretrained_cfg", {}) or {}
        self.model, self.weights_file, self.pretrained = model, None if path is None else str(path), pretrained
        super().__init__(net, image_size=image_size, mean=tuple(cfg.get("mean", IMAGENET_MEAN)),
                         std=tuple(cfg.get("std", IMAGENET_STD)), **kw)

    def fingerprint(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "image_size": self.image_size, "precision": self.precision,
                "weights": _file_id(self.weights_file) if self.pretrained else "random-seed0"}


class OpenClipEmbedder(TorchEmbedder):
    name = "open_clip"

    def __init__(self, model: str = "ViT-B-32", weights: str | None = None, pretrained: bool = True,
                 image_size: int | None = None, **kw):
        open_clip = _library("open_clip", "'gmv[hub]'")
        path = _weights_file(weights, f"OpenCLIP {model}", "E.g. the open_clip_pytorch_model.bin of an OpenCLIP "
                             "checkpoint for this architecture.") if pretrained else None
        try:
            with torch.random.fork_rng():
                torch.manual_seed(0)
                clip = open_clip.create_model(model, pretrained=None if path is None else str(path))
        except Exception as e:  # noqa: BLE001
            raise GmvError(f"cannot build OpenCLIP {model!r}{f' from {path}' if path else ''}: "
                           f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
        size = image_size or int(clip.visual.image_size[0] if isinstance(clip.visual.image_size, (tuple, list))
                                 else clip.visual.image_size)
        self.model, self.weights_file, self.pretrained = model, None if path is None else str(path), pretrained
        super().__init__(clip.visual, image_size=size, mean=CLIP_MEAN, std=CLIP_STD, **kw)

    def fingerprint(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "image_size": self.image_size, "precision": self.precision,
                "weights": _file_id(self.weights_file) if self.pretrained else "random-seed0"}


class TorchScriptEmbedder(TorchEmbedder):
    name = "torchscript"

    def __init__(self, weights: str | None = None, image_size: int | None = 288, mean=IMAGENET_MEAN,
                 std=IMAGENET_STD, **kw):
        path = _weights_file(weights, "a TorchScript embedder", "For SSCD: sscd_disc_mixup.torchscript.pt.")
        import warnings

        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch marks jit.load deprecated; SSCD ships as one
                net = torch.jit.load(str(path), map_location="cpu")
        except Exception as e:  # noqa: BLE001 - not a TorchScript file
            raise GmvError(f"cannot load TorchScript file {path}: {str(e).splitlines()[0] if str(e) else e}") from None
        self.weights_file = str(path)
        super().__init__(net, image_size=image_size, mean=tuple(mean), std=tuple(std), channels_last=False, **kw)

    def fingerprint(self) -> dict[str, Any]:
        return {"name": self.name, "image_size": self.image_size, "precision": self.precision,
                "mean": list(self.mean.flatten().tolist()), "weights": _file_id(self.weights_file)}
