"""Embeddings computed elsewhere: `.npy` float32 N×D files, memory-mapped, never loaded whole.

    train = load_embeddings("X_v1.npy", ids="X_v1_ids.txt")     # ids: .txt (one per line) or .npy
    valuate(train, load_embeddings("gen.npy"), held_out=load_embeddings("X_v2.npy"))
    valuate("X_v1.npy", "gen.npy", held_out="X_v2.npy", embedder="precomputed")   # the same, by path

Without an ids file, the row number within its file is each point's id. An EmbeddingSet stands where an
image set would (`labels` −1, no pixels: `images` is None), so analyses that show pixels (RA3's galleries)
are skipped and say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from gmv.errors import GmvError

FINITE_BLOCK = 1 << 16  # rows per finiteness check, so a memory map is scanned, never loaded whole


@dataclass
class EmbeddingSet:
    vectors: np.ndarray  # float32 N×D, usually a read-only memory map
    ids: np.ndarray  # N ids (str or int)
    name: str = "embeddings"
    labels: np.ndarray | None = None
    images: None = None  # no pixels
    attributes: None = None
    class_names: None = None
    attr_names: None = None
    extras: dict = field(default_factory=dict)

    def __post_init__(self):
        v = self.vectors
        if v.ndim != 2 or len(v) == 0 or v.shape[1] == 0:
            raise GmvError(f"{self.name}: embeddings must be a non-empty float32 N×D array, got shape {v.shape}")
        if v.dtype != np.float32:
            raise GmvError(f"{self.name}: embeddings must be float32, got {v.dtype} "
                           "(save them with np.save(path, x.astype(np.float32)))")
        if len(self.ids) != len(v):
            raise GmvError(f"{self.name}: {len(self.ids)} ids for {len(v)} embeddings")
        self.labels = np.full(len(v), -1, np.int64) if self.labels is None else np.asarray(self.labels, np.int64)

    def __len__(self) -> int:
        return len(self.vectors)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])


def load_ids(path: str | Path, n: int, what: str) -> np.ndarray:
    """Ids from a `.npy` array or a text file with one id per line; exactly n of them, all distinct."""
    path = Path(path)
    if not path.is_file():
        raise GmvError(f"{what}: ids file not found: {path}")
    if path.suffix == ".npy":
        try:
            ids = np.load(path, allow_pickle=False)
        except Exception as e:  # noqa: BLE001 - the user's input
            raise GmvError(f"{what}: cannot read ids {path}: {e}") from None
        ids = ids.ravel()
    else:
        ids = np.asarray(path.read_text().splitlines())
        ids = ids[:-1] if len(ids) and ids[-1] == "" else ids
    if len(ids) != n:
        raise GmvError(f"{what}: {path} has {len(ids)} ids for {n} embeddings (one id per row)")
    if len(np.unique(ids)) != n:
        raise GmvError(f"{what}: the ids in {path} are not distinct")
    return ids


def check_finite(vectors: np.ndarray, what: str) -> None:
    for start in range(0, len(vectors), FINITE_BLOCK):
        block = np.asarray(vectors[start:start + FINITE_BLOCK])
        if not np.isfinite(block).all():
            row = start + int(np.flatnonzero(~np.isfinite(block).all(axis=1))[0])
            raise GmvError(f"{what}: non-finite values in the embeddings (first at row {row})")
    release_pages(vectors)


def release_pages(vectors: np.ndarray) -> None:
    """Drop a memory-mapped file's pages from this process's resident set (MADV_DONTNEED; they stay in the
    page cache and fault back in when read again). Reading a 1M × 512 .npy through once — the finite check,
    the pool's concatenation — otherwise keeps its 2 GB resident for the rest of the run."""
    import mmap

    handle = getattr(vectors, "_mmap", None)
    if isinstance(vectors, np.memmap) and handle is not None and hasattr(mmap, "MADV_DONTNEED"):
        try:
            handle.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):  # an advice the platform refuses changes nothing but memory
            pass


def load_embeddings(path: str | Path, ids: str | Path | Sequence | None = None, name: str | None = None
                    ) -> EmbeddingSet:
    """A `.npy` float32 N×D file, memory-mapped (checked for finite values block by block)."""
    path = Path(path)
    name = name or path.stem
    if not path.is_file():
        raise GmvError(f"embeddings file not found: {path}")
    try:
        vectors = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as e:  # noqa: BLE001 - the user's input
        raise GmvError(f"cannot read {path} as a .npy array of embeddings: {e}") from None
    if not isinstance(vectors, np.ndarray):
        raise GmvError(f"{path}: embeddings must be one .npy array (float32 N×D), not an .npz archive")
    if isinstance(ids, (str, Path)):
        id_array = load_ids(ids, len(vectors), name)
    elif ids is None:
        id_array = np.arange(len(vectors))
    else:
        id_array = np.asarray(ids)
    s = EmbeddingSet(vectors, id_array, name=name)
    check_finite(vectors, name)
    return s


def as_embedding_set(x, name: str) -> EmbeddingSet:
    if isinstance(x, EmbeddingSet):
        return x
    if isinstance(x, (str, Path)):
        if Path(x).suffix != ".npy":
            raise GmvError(f"precomputed embeddings must be .npy files (float32 N×D), got {x}")
        return load_embeddings(x, name=name)
    a = np.asarray(x)
    s = EmbeddingSet(a, np.arange(len(a)), name=name)
    check_finite(a, name)
    return s


def concat_embeddings(sets: Sequence[EmbeddingSet], name: str) -> EmbeddingSet:
    """train ∪ held-out (read into one array: the matcher needs the pool in memory anyway)."""
    dims = {s.dim for s in sets}
    if len(dims) != 1:
        raise GmvError(f"embeddings of different dimensions {sorted(dims)} cannot be valued together")
    if len(sets) == 1:
        return sets[0]
    ids = np.concatenate([np.asarray(s.ids).astype(str) for s in sets])
    vectors = np.concatenate([s.vectors for s in sets])
    for s in sets:
        release_pages(s.vectors)  # the copy is what is used from here on
    return EmbeddingSet(vectors, ids, name=name, labels=np.concatenate([s.labels for s in sets]))
