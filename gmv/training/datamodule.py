"""ImageSetDataModule: an ImageSet as an infinite, deterministic, resumable stream of training batches.

- Labels are mapped to contiguous class ids 0..n_classes−1; `class_ids[k]` is the original label
  of class id k, so generated samples can be labelled with the dataset's own label values.
- Global batch `b` is a function of `(seed, b)` only: epoch `e = b // batches_per_epoch` uses a
  permutation seeded by `(seed, e)`, batches are consecutive slices of it and the incomplete tail
  is dropped (drop_last). The optional horizontal flips are seeded by `(seed, e)` as well.
- `batches_consumed` counts the batches handed to `training_step`; it is saved in checkpoints
  (`state_dict`) and a restored module resumes the stream at exactly that batch. Lightning restores
  the datamodule before it calls `train_dataloader()`, so the new stream starts at the right place.
- `batch_size` is the *global* batch size: under DDP every rank takes its slice of the same global
  batch, so the stream (and the optimisation) does not depend on the number of devices.
- The stream never touches the global Python/NumPy/torch RNGs.
"""

from __future__ import annotations

from typing import Any, Iterator, Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from gmv.data.imageset import ImageSet
from gmv.errors import GmvError


class BatchStream:
    """The pure function `global batch index → (indices, flips)` behind the datamodule."""

    def __init__(self, n: int, batch_size: int, seed: int, hflip: bool):
        if batch_size < 1:
            raise GmvError(f"batch_size must be ≥ 1, got {batch_size}")
        if n < batch_size:
            raise GmvError(
                f"the training set has {n} images, fewer than one batch of {batch_size}: "
                "lower the batch size or train on more images"
            )
        self.n = int(n)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.hflip = bool(hflip)
        self.batches_per_epoch = self.n // self.batch_size
        self._epoch = -1
        self._perm: np.ndarray | None = None
        self._flips: np.ndarray | None = None

    def _load_epoch(self, epoch: int) -> None:
        if epoch != self._epoch:
            rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([self.seed, epoch])))
            self._perm = rng.permutation(self.n)
            self._flips = rng.random(self.n) < 0.5 if self.hflip else None
            self._epoch = epoch

    def indices(self, b: int) -> tuple[np.ndarray, np.ndarray | None]:
        """Dataset indices of global batch `b` and (if hflip) which of them are mirrored."""
        if b < 0:
            raise GmvError(f"batch index must be ≥ 0, got {b}")
        epoch, i = divmod(int(b), self.batches_per_epoch)
        self._load_epoch(epoch)
        sl = slice(i * self.batch_size, (i + 1) * self.batch_size)
        return self._perm[sl], (None if self._flips is None else self._flips[sl])


class _StreamDataset(IterableDataset):
    """Yields ready-made batches (x, y) from global batch `start` on, forever (one rank's slice)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, stream: BatchStream, start: int,
                 rank: int, world_size: int):
        self.images = images  # uint8 N×C×H×W
        self.labels = labels  # int64 N, contiguous ids
        self.stream = stream
        self.start = int(start)
        self.rank = int(rank)
        self.world_size = int(world_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = get_worker_info()
        worker, n_workers = (0, 1) if info is None else (info.id, info.num_workers)
        per_rank = self.stream.batch_size // self.world_size
        lo, hi = self.rank * per_rank, (self.rank + 1) * per_rank
        b = self.start + worker  # the DataLoader returns worker outputs round-robin, in order
        while True:
            idx, flips = self.stream.indices(b)
            idx = torch.from_numpy(idx[lo:hi])
            x = self.images[idx].float() / 127.5 - 1.0
            if flips is not None:
                f = torch.from_numpy(flips[lo:hi])
                x[f] = x[f].flip(-1)
            yield x, self.labels[idx]
            b += n_workers


class ImageSetDataModule(L.LightningDataModule):
    """Training data for a GeneratorModule: batches (x float N×C×H×W in [−1, 1], y int64 class ids).

    Args:
        data: the training images (X_v1).
        batch_size: global batch size (split evenly over DDP ranks).
        seed: seeds the batch order and flips; the stream is a function of (seed, batch index).
        hflip: mirror a seeded half of the images horizontally.
        conditional: map labels to class ids; False trains unconditionally (every y is 0 and
            `class_ids == [-1]`, i.e. samples get the label "unknown").
        classes: the original label values to use as classes, in class-id order (default: the
            sorted distinct labels of `data`). Fixes the mapping when `data` lacks some class.
        num_workers, pin_memory: DataLoader settings (0 workers: batches are built in-process).
    """

    def __init__(self, data: ImageSet, batch_size: int = 64, seed: int = 0, hflip: bool = False,
                 conditional: bool = True, classes: Sequence[int] | None = None, num_workers: int = 0,
                 pin_memory: bool = False):
        super().__init__()
        if not isinstance(data, ImageSet):
            raise GmvError(f"ImageSetDataModule needs an ImageSet, got {type(data).__name__}")
        if num_workers < 0:
            raise GmvError(f"num_workers must be ≥ 0, got {num_workers}")
        self.data = data
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.hflip = bool(hflip)
        self.conditional = bool(conditional)
        self.num_workers = int(num_workers)
        self.pin_memory = bool(pin_memory)
        self.class_ids, y = self._class_mapping(data, conditional, classes)
        self.n_classes = len(self.class_ids)
        self.stream = BatchStream(len(data), self.batch_size, self.seed, self.hflip)
        self._images = torch.from_numpy(np.ascontiguousarray(data.images.transpose(0, 3, 1, 2)))
        self._labels = torch.from_numpy(y)
        self.batches_consumed = 0

    @classmethod
    def count_classes(cls, data: ImageSet, conditional: bool = True, classes: Sequence[int] | None = None) -> int:
        """How many classes a datamodule over `data` has — known before its batch size is (the generator,
        which sets the batch size, is built for that many classes)."""
        return len(cls._class_mapping(data, conditional, classes)[0])

    @staticmethod
    def _class_mapping(data: ImageSet, conditional: bool, classes) -> tuple[np.ndarray, np.ndarray]:
        labels = data.labels
        if not conditional:
            return np.array([-1], np.int64), np.zeros(len(labels), np.int64)
        if classes is None:
            unknown = int((labels < 0).sum())
            if unknown == len(labels):
                raise GmvError(
                    f"{data.name}: no image has a label; train unconditionally with conditional=False"
                )
            if unknown:
                raise GmvError(
                    f"{data.name}: {unknown} of {len(labels)} images have the unknown label −1; "
                    "drop them or train unconditionally with conditional=False"
                )
            class_ids = np.unique(labels).astype(np.int64)
        else:
            class_ids = np.asarray(list(classes), np.int64)
            if class_ids.ndim != 1 or len(class_ids) == 0 or len(np.unique(class_ids)) != len(class_ids):
                raise GmvError(f"classes must be a non-empty list of distinct labels, got {list(classes)}")
            extra = sorted(set(np.unique(labels).tolist()) - set(class_ids.tolist()))
            if extra:
                raise GmvError(
                    f"{data.name}: labels {extra} are not among classes {class_ids.tolist()}; "
                    "add them to `classes` or drop those images"
                )
        lookup = {int(c): k for k, c in enumerate(class_ids)}
        y = np.fromiter((lookup[int(v)] for v in labels), np.int64, len(labels))
        return class_ids, y

    # ------------------------------------------------------------------ stream

    @property
    def labels(self) -> np.ndarray:
        """Contiguous class id of every training image."""
        return self._labels.numpy()

    @property
    def batches_per_epoch(self) -> int:
        return self.stream.batches_per_epoch

    def batch(self, b: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Global batch `b` (all ranks' slices together), exactly as the stream yields it."""
        ds = _StreamDataset(self._images, self._labels, self.stream, b, 0, 1)
        return next(iter(ds))

    def to_class_ids(self, labels, what: str = "labels") -> np.ndarray:
        """The dataset's label values → contiguous class ids (the inverse of `to_original_labels`); all 0 for an
        unconditional model; a label the model was not trained on is a GmvError naming `what`."""
        if not self.conditional:
            return np.zeros(len(labels), np.int64)
        lookup = {int(c): k for k, c in enumerate(self.class_ids)}
        unknown = sorted({int(v) for v in labels} - set(lookup))
        if unknown:
            raise GmvError(f"{what} {unknown} are not classes the generator was trained on (its classes: "
                           f"{sorted(lookup)})")
        return np.array([lookup[int(v)] for v in labels], np.int64)

    def to_original_labels(self, ids: np.ndarray | torch.Tensor) -> np.ndarray:
        """Contiguous class ids → the dataset's label values."""
        ids = np.asarray(ids.cpu() if isinstance(ids, torch.Tensor) else ids, np.int64)
        if ids.size and (ids.min() < 0 or ids.max() >= self.n_classes):
            raise GmvError(f"class ids must lie in [0, {self.n_classes}), got {ids.min()}..{ids.max()}")
        return self.class_ids[ids]

    def _ranks(self) -> tuple[int, int]:
        trainer = self.trainer
        if trainer is None:
            return 0, 1
        return int(trainer.global_rank), int(trainer.world_size)

    def train_dataloader(self) -> DataLoader:
        rank, world = self._ranks()
        if self.batch_size % world:
            raise GmvError(
                f"batch_size {self.batch_size} is the global batch size and must divide evenly over "
                f"{world} processes; choose a multiple of {world}"
            )
        ds = _StreamDataset(self._images, self._labels, self.stream, self.batches_consumed, rank, world)
        return DataLoader(
            ds,
            batch_size=None,  # the dataset yields whole batches
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            # an explicit generator keeps the DataLoader from drawing its base seed off the global RNG
            generator=torch.Generator().manual_seed(self.seed),
        )

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        # Called once per batch that reaches training_step (after the prefetcher), so this counts
        # consumed batches exactly; batches prefetched but never trained on are not counted.
        trainer = self.trainer
        if trainer is not None and trainer.training:
            self.batches_consumed += 1
        return batch

    # ------------------------------------------------------------------ checkpoint state

    def state_dict(self) -> dict[str, Any]:
        return {
            "batches_consumed": int(self.batches_consumed),
            "seed": self.seed,
            "batch_size": self.batch_size,
            "n_images": len(self.data),
            "hflip": self.hflip,
            "class_ids": [int(c) for c in self.class_ids],
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        mine = self.state_dict()
        for key in ("seed", "batch_size", "n_images", "hflip", "class_ids"):
            if key in state_dict and state_dict[key] != mine[key]:
                raise GmvError(
                    f"cannot resume: the checkpoint's data stream had {key}={state_dict[key]!r}, this run "
                    f"has {key}={mine[key]!r}; use the same data settings or a fresh output directory"
                )
        self.batches_consumed = int(state_dict["batches_consumed"])
