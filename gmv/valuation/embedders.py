"""Embedders: images (uint8 N×H×W×C) → float32 N×D features, batched, cached on disk.

- `pixels`          raw pixels in [0, 1], flattened (D = H·W·C).
- `vgg16`           the paper's: torchvision VGG-16 with ImageNet weights from the local torch cache
                    or a given file; layer `fc7` (4096-d, default), `fc6` (4096-d) or `pool5`
                    (512-d, global-average-pooled conv features); input resized to `image_size`
                    (224 as in ImageNet training; use the native 32 on CPU — see README for speeds).
- `resnet20_cifar`  the CIFAR-10 ResNet-20 (weights file by path): its 64-d pooled features, or a stage's
                    spatial features pooled to a grid (gmv/valuation/resnet20_embedder.py).
- `whitened_pixels` PCA-whitened pixels, fitted on the pool (gmv/valuation/whitened_pixels.py).
- `timm`, `open_clip`, `torchscript`  DINOv2, CLIP, SSCD and the like from a local weights file
                    (gmv/valuation/hub_embedders.py; `pip install 'gmv[hub]'`).
- any `torch.nn.Module` via a Hydra `_target_` config (`build_embedder({"_target_": ...})`).

Every torch embedder normalises with ImageNet mean/std after scaling to [0, 1] and repeats grey
images to 3 channels, runs under `torch.inference_mode` with a progress bar, and checks that
the features are finite. Throughput settings: `batch_size`, `num_workers` (DataLoader processes that
decode streamed images), `channels_last` and `precision` (`fp32`, or `bf16`: CPU autocast, part of the
fingerprint because it changes the features); `chunk_size` is the rows per cache chunk.

Embedding as a resumable, cached stage (chunk files, manifest, completion record) lives in
gmv/valuation/embed.py and store.py; `embed_cached` is re-exported here for its callers.
"""

from __future__ import annotations

import contextlib
import hashlib
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gmv.console import progress_bar
from gmv.data.pixels import images_digest  # noqa: F401  (re-exported)
from gmv.errors import GmvError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG16_FILE = "vgg16-397923af.pth"  # torchvision's VGG16_Weights.IMAGENET1K_V1
VGG16_LAYERS = {"fc7": 4096, "fc6": 4096, "pool5": 512}
PRECISIONS = ("fp32", "bf16")
DEFAULT_CHUNK_ROWS = 8192


class Embedder:
    """Base: subclasses implement `_forward` on a float batch B×C×H×W in [0, 1]."""

    name = "embedder"
    #: an embedder fitted to the data it values (whitened_pixels): `fit(pool)` before anything is embedded
    needs_fit = False
    #: gmv modules the features depend on that this class's module imports only inside functions (its
    #: network, say): part of the embedding cache key with the module itself (gmv.code_fingerprint)
    code_modules: tuple[str, ...] = ()

    def __init__(self, batch_size: int = 256, progress: bool = True, num_workers: int = 0,
                 chunk_size: int | None = None):
        self.batch_size = int(batch_size)
        if self.batch_size < 1:
            raise GmvError(f"embedder batch_size must be ≥ 1, got {batch_size}")
        self.progress = progress
        self.num_workers = int(num_workers or 0)
        if self.num_workers < 0:
            raise GmvError(f"embedder num_workers must be ≥ 0, got {num_workers}")
        rows = DEFAULT_CHUNK_ROWS if chunk_size is None else int(chunk_size)
        if rows < 1:
            raise GmvError(f"embedder chunk_size must be ≥ 1 row, got {chunk_size}")
        # a whole number of batches per chunk: a resumed run forms exactly the batches of an uninterrupted one
        self.chunk_size = -(-rows // self.batch_size) * self.batch_size

    def fingerprint(self) -> dict[str, Any]:
        """Everything that determines the features (the cache key)."""
        return {"name": self.name}

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def dim(self, image_shape: tuple[int, int, int]) -> int:
        """Embedding dimension for images of shape (H, W, C), from one dummy forward."""
        with torch.inference_mode():
            return int(self._forward(self._prepare(torch.zeros(1, image_shape[2], *image_shape[:2]))).shape[1])

    def _autocast(self):
        return contextlib.nullcontext()

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        """A uint8 batch (B×H×W×C) where the network runs (the CPU unless a subclass says otherwise)."""
        return x

    def embed_batch(self, pixels: np.ndarray) -> np.ndarray:
        """One batch: uint8 b×H×W×C → float32 b×D (no progress bar, no finiteness check)."""
        pixels = np.ascontiguousarray(pixels)
        if not pixels.flags.writeable:  # torch.from_numpy wants writable memory (a read-only memmap is not)
            pixels = pixels.copy()
        x = self._prepare(torch.from_numpy(pixels)).permute(0, 3, 1, 2)
        with torch.inference_mode(), self._autocast():
            return self._forward(x.float().div_(255.0)).float().cpu().numpy().astype(np.float32, copy=False)

    def check_finite(self, feats: np.ndarray, desc: str) -> None:
        if not np.isfinite(feats).all():
            bad = int((~np.isfinite(feats).all(axis=1)).sum())
            raise GmvError(f"{self.name} produced non-finite embeddings for {bad} of {len(feats)} images "
                           f"({desc}); check the embedder weights and the input pixels")

    def __call__(self, images, desc: str = "embed") -> np.ndarray:
        """Embed in memory: an array, an ImageSet/LazyImageSet or a PixelSource (read batch by batch)."""
        from gmv.data.stream import iter_batches

        shape, dtype = tuple(getattr(images, "shape", ())), getattr(images, "dtype", None)
        if hasattr(images, "images"):
            shape, dtype = tuple(images.images.shape), images.images.dtype
        if len(shape) != 4 or dtype != np.uint8:
            raise GmvError(f"embedder input must be uint8 N×H×W×C, got {dtype} {shape}")
        out = []
        with progress_bar(total=shape[0], desc=f"{desc} ({self.name})", unit="img", disable=not self.progress,
                  leave=False) as bar:
            for _, batch in iter_batches(images, self.batch_size, num_workers=self.num_workers):
                out.append(self.embed_batch(batch))
                bar.update(len(batch))
        feats = np.concatenate(out)
        self.check_finite(feats, desc)
        return feats


class PixelEmbedder(Embedder):
    name = "pixels"

    def dim(self, image_shape: tuple[int, int, int]) -> int:
        return int(np.prod(image_shape))

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


class TorchEmbedder(Embedder):
    """A network with ImageNet-style input handling (3 channels, mean/std, optional resize)."""

    def __init__(self, network: nn.Module, image_size: int | None = None, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 channels_last: bool = True, precision: str = "fp32", batch_size: int = 256, progress: bool = True,
                 num_workers: int = 0, chunk_size: int | None = None, device: str = "cpu"):
        super().__init__(batch_size, progress, num_workers, chunk_size)
        if precision not in PRECISIONS:
            raise GmvError(f"embedder precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        self.precision = precision
        self.network = network.eval()
        for p in self.network.parameters():
            p.requires_grad_(False)
        self.image_size = image_size
        self.mean = torch.tensor(mean).view(1, 3, 1, 1)
        self.std = torch.tensor(std).view(1, 3, 1, 1)
        self.channels_last = channels_last
        if channels_last:
            self.network = self.network.to(memory_format=torch.channels_last)
        self.device = torch.device("cpu")
        self.to(device)

    def to(self, device: str | torch.device) -> "TorchEmbedder":
        """Run the network on `device` ("cpu", "cuda", "cuda:1", or "auto" = cuda when there is one).
        Batches are read on the CPU and moved there; features come back as CPU float32."""
        if str(device) == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        device = torch.device(device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise GmvError(f"embedder device {str(device)!r}: this torch build sees no CUDA device "
                           f"(torch {torch.__version__}); use device: cpu or auto")
        self.network = self.network.to(device)
        self.mean, self.std = self.mean.to(device), self.std.to(device)
        self.device = device
        return self

    def _autocast(self):
        if self.precision == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device, non_blocking=True)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return self.network(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        if self.image_size is not None and tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", antialias=True,
                              align_corners=False)
        x = (x - self.mean) / self.std
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self._features(x).flatten(1)


class VGG16Embedder(TorchEmbedder):
    """The paper's VGG-16 features. `weights`: a file path, or None for the torch hub cache."""

    name = "vgg16"

    def __init__(self, layer: str = "fc7", image_size: int | None = 224, weights: str | None = None,
                 pretrained: bool = True, **kw):
        from torchvision.models import vgg16

        if layer not in VGG16_LAYERS:
            raise GmvError(f"unknown vgg16 layer {layer!r}; choose one of {', '.join(VGG16_LAYERS)}")
        self.weights_file = None
        path = None
        if pretrained:
            path = Path(weights) if weights else Path(torch.hub.get_dir()) / "checkpoints" / VGG16_FILE
            if not path.is_file():
                raise GmvError(
                    f"VGG-16 ImageNet weights not found at {path}. Download {VGG16_FILE} (torchvision's "
                    "VGG16_Weights.IMAGENET1K_V1) into the torch hub cache on a machine with network "
                    "(`python -c \"import torchvision; torchvision.models.vgg16(weights='IMAGENET1K_V1')\"`) "
                    "or pass its path as embedder.weights; `pretrained: false` runs with random weights (tests only)")
        with torch.random.fork_rng():  # random weights (pretrained=false) stay reproducible for caching
            torch.manual_seed(0)
            net = vgg16(weights=None)
        if path is not None:
            net.load_state_dict(torch.load(path, weights_only=True, map_location="cpu"))
            self.weights_file = str(path)
        self.layer = layer
        self.pretrained = pretrained
        super().__init__(net, image_size=image_size, **kw)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        net = self.network
        h = net.features(x)  # B×512×H/32×W/32
        if self.layer == "pool5":
            return h.mean(dim=(2, 3))  # B×512
        h = torch.flatten(net.avgpool(h), 1)  # B×25088
        h = net.classifier[1](net.classifier[0](h))  # fc6 + ReLU: B×4096
        if self.layer == "fc6":
            return h
        return net.classifier[4](net.classifier[3](net.classifier[2](h)))  # dropout(eval)=id, fc7 + ReLU

    def fingerprint(self) -> dict[str, Any]:
        return {"name": self.name, "layer": self.layer, "image_size": self.image_size, "precision": self.precision,
                "weights": _file_id(self.weights_file) if self.pretrained else "random-seed0"}


class ModuleEmbedder(TorchEmbedder):
    """Any nn.Module whose forward maps B×3×H×W (normalised) to B×D (or B×… flattened)."""

    name = "module"

    def __init__(self, module: nn.Module, fingerprint: Mapping[str, Any], **kw):
        super().__init__(module, **kw)
        self._fp = dict(fingerprint)

    def fingerprint(self) -> dict[str, Any]:
        # image_size changes the features, so it belongs in the cache key (it is not in the Hydra config
        # that _fp records: build_embedder hands it to the wrapper, not to the module)
        return {"name": self.name, **self._fp, "image_size": self.image_size, "precision": self.precision}


def _file_id(path: str | None) -> str:
    """A cheap identity for a weights file: size + hash of its first and last MiB."""
    if path is None:
        return "none"
    p = Path(path)
    h = hashlib.sha256(str(p.stat().st_size).encode())
    with open(p, "rb") as f:
        h.update(f.read(1 << 20))
        f.seek(max(0, p.stat().st_size - (1 << 20)))
        h.update(f.read())
    return h.hexdigest()[:16]


def _resnet20_cifar(**options) -> Embedder:
    from gmv.valuation.resnet20_embedder import ResNet20Embedder

    return ResNet20Embedder(**options)


def _whitened_pixels(**options) -> Embedder:
    from gmv.valuation.whitened_pixels import WhitenedPixelEmbedder

    return WhitenedPixelEmbedder(**options)


def _hub(cls_name: str):
    def build(**options) -> Embedder:
        from gmv.valuation import hub_embedders

        return getattr(hub_embedders, cls_name)(**options)

    return build


#: every embedder by name: its class, or a function that builds it from a module of its own
EMBEDDERS = {"pixels": PixelEmbedder, "vgg16": VGG16Embedder, "resnet20_cifar": _resnet20_cifar,
             "whitened_pixels": _whitened_pixels, "timm": _hub("TimmEmbedder"), "open_clip": _hub("OpenClipEmbedder"),
             "torchscript": _hub("TorchScriptEmbedder")}


def build_embedder(spec: str | Mapping[str, Any] | Embedder = "pixels", **options) -> Embedder:
    """An embedder from a name plus options, a config mapping (`name:` or Hydra `_target_:`), or itself."""
    if isinstance(spec, Embedder):
        return spec
    if isinstance(spec, Mapping):
        cfg = dict(spec)
        cfg.update(options)
        if "_target_" in cfg:
            from hydra.utils import instantiate

            wrapper = {k: cfg.pop(k) for k in ("image_size", "batch_size", "progress", "channels_last", "precision",
                                               "num_workers", "chunk_size", "device") if k in cfg}
            fp = {k: str(v) for k, v in cfg.items()}
            try:
                module = instantiate(cfg)
            except Exception as e:  # noqa: BLE001 - unimportable target or bad arguments: the user's config
                raise GmvError(f"cannot build embedder from _target_ {cfg['_target_']!r}: "
                               f"{str(e).splitlines()[0] if str(e) else type(e).__name__}") from None
            if isinstance(module, Embedder):
                return module
            if not isinstance(module, nn.Module):
                raise GmvError(f"embedder _target_ {cfg['_target_']} built a {type(module).__name__}, "
                               "not a torch.nn.Module")
            return ModuleEmbedder(module, fp, **wrapper)
        name = cfg.pop("name", None)
        if name is None:
            raise GmvError("an embedder config needs `name:` (pixels, vgg16, resnet20_cifar) or `_target_:`")
        return build_embedder(name, **cfg)
    if spec not in EMBEDDERS:
        raise GmvError(f"unknown embedder {spec!r}; choose one of {', '.join(EMBEDDERS)} "
                       "or give a Hydra `_target_` for a torch.nn.Module")
    return EMBEDDERS[spec](**options)


def embed_cached(embedder: Embedder, images, cache_dir: str | Path | None, desc: str = "embed"):
    """Embed `images` through the resumable chunked store under `cache_dir` (gmv/valuation/embed.py).

    Returns (features float32 N×D in memory, reused: bool); `embed_source` returns the cached features
    memory-mapped instead (what valuate uses: nothing N×D is read before it is needed)."""
    from gmv.valuation.embed import embed_source

    feats, reused = embed_source(embedder, images, cache_dir, desc=desc)
    return np.array(feats, dtype=np.float32), reused
