"""The generate stage: X̂ drawn from the trained generator's EMA weights, in resumable parts.

Entry `samples/<key>/`: `samples.npz` (images, labels) and `samples.png` (a preview grid), recorded
with their checksums in `done.json`. The key adds to the train key the sampling-only settings the
generator declares (guidance w, DDIM steps, truncation …) and the generate section (m, classes,
seed, batch size), so sweeping those does not retrain.

Sampling is written in parts of `PART_BATCHES` batches (`part_00000.npz` …), each holding its images
and the state of the one seeded `torch.Generator` after it. A killed run resumes after the last part it
finished, and because parts end on batch boundaries and the generator's state travels with them, the
samples are bit-identical to an uninterrupted run (and to `sample_imageset` in one call). When all
parts are done they are joined into `samples.npz` and removed.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch

from gmv.cache import CacheEntry, array_digest, key_of
from gmv.code_fingerprint import code_digest
from gmv.config_utils import plain
from gmv.errors import GmvError
from gmv.io import save_npz, save_npz_streamed

PART_BATCHES = 16  # batches per part file: 4,096 images at the default batch size of 256


def samples_key(train_key: str, module, generate_cfg: Mapping[str, Any], class_mix: np.ndarray | None = None) -> str:
    """`class_mix`: the labels X̂'s class proportions follow when they are not the training set's (a subset
    edit keeps the mix of X_v1 before its removals); part of the key then."""
    code = code_digest(type(module).__module__, "gmv.training.sample", "gmv.pipeline.sample_stage")
    mix = () if class_mix is None else (array_digest(np.asarray(class_mix, np.int64)),)
    return key_of("samples", train_key, module.sampling_settings(),
                  {k: plain(generate_cfg.get(k)) for k in ("m", "classes", "seed", "batch_size")}, code, *mix)


def sample_class_ids(datamodule, generate_cfg: Mapping[str, Any], m: int, class_mix: np.ndarray | None = None) -> np.ndarray:
    """Class ids of the m samples: the class proportions of X_v1 (or of `class_mix`, label values), or only
    the chosen labels."""
    from gmv.training.sample import class_counts, class_ids_from_counts

    chosen = generate_cfg.get("classes")
    if chosen is not None and not datamodule.conditional:
        raise GmvError("generate.classes needs a class-conditional generator (this one trained unconditionally: "
                       "train.conditional=true, or leave generate.classes null)")
    only = None if chosen is None else datamodule.to_class_ids(chosen, "generate.classes").tolist()
    ids = datamodule.labels if class_mix is None else datamodule.to_class_ids(class_mix, "X̂'s class mix")
    counts = class_counts(ids, m, n_classes=datamodule.n_classes, only=only)
    return class_ids_from_counts(counts)


def _finished_parts(entry: CacheEntry, n_parts: int, per_part: int, m: int) -> tuple[int, torch.ByteTensor | None]:
    """How many leading parts are complete and readable, and the generator state after the last one.
    A part of another length (written with another batch size or part size) is not one of this run's."""
    state = None
    for i in range(n_parts):
        path = entry.folder / f"part_{i:05d}.npz"
        try:
            with np.load(path) as z:
                if len(z["labels"]) != min(per_part, m - i * per_part):
                    raise ValueError(f"{path.name} holds {len(z['labels'])} images")
                state = torch.from_numpy(z["generator_state"].copy())
        except Exception:  # noqa: BLE001 - missing, unreadable or foreign: this part and the later ones are redone
            for later in entry.folder.glob("part_*.npz"):
                if int(later.stem.split("_")[1]) >= i:
                    later.unlink()
            return i, state
    return n_parts, state


def generate(module, datamodule, generate_cfg: Mapping[str, Any], entry: CacheEntry,
             progress: bool = True, class_mix: np.ndarray | None = None):
    """Draw m samples into the entry (resuming after its last finished part); returns X̂, streamed
    from the entry (a LazyImageSet: see `load`). `class_mix`: see `sample_class_ids`."""
    from gmv.console import progress_bar

    from gmv.training.sample import sample_imageset

    m, batch = int(generate_cfg["m"]), int(generate_cfg["batch_size"])
    ids = sample_class_ids(datamodule, generate_cfg, m, class_mix)
    per_part = batch * PART_BATCHES
    n_parts = -(-m // per_part)
    done, state = _finished_parts(entry, n_parts, per_part, m)
    generator = torch.Generator(device="cpu").manual_seed(int(generate_cfg["seed"]))
    if state is not None:
        generator.set_state(state)
    with progress_bar(total=m, initial=min(m, done * per_part), unit="img", desc="sampling X̂", disable=not progress,
              leave=False) as bar:
        for i in range(done, n_parts):
            part_ids = ids[i * per_part:(i + 1) * per_part]
            part = sample_imageset(module, len(part_ids), part_ids, seed=0, batch_size=batch,
                                   label_values=datamodule.class_ids, generator=generator, progress=False)
            save_npz(entry.folder / f"part_{i:05d}.npz", images=part.images, labels=part.labels,
                     generator_state=generator.get_state().numpy())
            bar.update(len(part_ids))
    return _join_parts(entry, n_parts, ids, datamodule.n_classes)


def _join_parts(entry: CacheEntry, n_parts: int, ids: np.ndarray, n_classes: int):
    """Join the parts into `samples.npz` one part at a time (X̂ is never held whole) and return it streamed."""
    from gmv.training.sample import save_grid
    from gmv.training.callbacks import grid_columns

    paths = [entry.folder / f"part_{i:05d}.npz" for i in range(n_parts)]
    labels, shape = [], None
    for path in paths:
        with np.load(path) as z:
            labels.append(z["labels"])
            shape = shape or z["images"].shape[1:]
    labels = np.concatenate(labels)
    picked = grid_pick(ids, 64)
    preview = {}

    def pieces():
        start = 0
        for path in paths:
            with np.load(path) as z:
                part = z["images"]
            for i in picked[(picked >= start) & (picked < start + len(part))]:
                preview[int(i)] = part[i - start]
            start += len(part)
            yield part

    save_npz_streamed(entry.folder / "samples.npz", "images", (len(labels), *shape), np.uint8, pieces(), labels=labels)
    save_grid(np.stack([preview[int(i)] for i in picked]), entry.folder / "samples.png", nrow=grid_columns(n_classes))
    for path in paths:
        path.unlink()
    return load(entry)


def grid_pick(ids: np.ndarray, n: int) -> np.ndarray:
    """Up to `n` sample indices for a preview grid: the first few of every class, interleaved."""
    classes = np.unique(ids)
    per = max(1, n // len(classes))
    chosen = [np.flatnonzero(ids == c)[:per] for c in classes]
    rows = max(len(c) for c in chosen)
    picked = [c[r] for r in range(rows) for c in chosen if r < len(c)]
    return np.asarray(picked[:n], np.int64)


def load(entry: CacheEntry):
    """X̂ from the entry, streamed: its pixels are read from `samples.npz` in place when a stage needs them."""
    from gmv.data.npz_stream import open_npz

    samples = open_npz(entry.folder / "samples.npz")
    samples.name = "generated"
    return samples
