"""The embedding store: one cache entry per (pixels, embedder), written in chunks, verified on reuse.

Each entry is a gmv cache entry (gmv/cache.py) — the same completion record, checksums, healing and lock
as the study's trained generators and samples:

    <cache>/embeddings/<name>-<key>/chunks/manifest.json      while computing: key, chunk size, N, D, dtype, embedder
    <cache>/embeddings/<name>-<key>/chunks/chunk-000000.npy   one per finished chunk of `chunk_size` rows (atomic)
    <cache>/embeddings/<name>-<key>/embeddings.npy            at completion: the chunks concatenated, float32 N×D
    <cache>/embeddings/<name>-<key>/done.json                 the completion record: the manifest, and the size
                                                              and sha256 of embeddings.npy (written last)

A killed run leaves its finished chunks; the next run with the same key computes only the missing ones.
On reuse embeddings.npy is checked against its record (size, sha256, header): a missing, truncated or
corrupt file is reported in one line (`[gmv] cache: embeddings <name>-<key> is damaged (…) — recomputing
it`) and recomputed. `lock()` keeps two runs from computing one entry at once.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from gmv.cache import CacheEntry
from gmv.errors import GmvError
from gmv.io import atomic_path, write_json

FORMAT = 2  # of the key and the files; entries of other formats are never read


def _plain(obj: Any) -> Any:
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


class EmbeddingStore:
    """One entry: where its files live (a CacheEntry) and what they must hold (`manifest`)."""

    def __init__(self, directory: str | Path, stem: str, manifest: dict[str, Any]):
        self.entry = CacheEntry(Path(directory).parent, Path(directory).name, stem)
        self.stem, self.manifest = stem, _plain(manifest)
        self.npy = self.entry.folder / "embeddings.npy"
        self.parts = self.entry.folder / "chunks"

    @classmethod
    def create(cls, cache_dir: str | Path, name: str, key_source: dict[str, Any], n: int, dim: int | None,
               chunk_size: int, embedder: dict[str, Any]) -> "EmbeddingStore":
        """`dim` may stay None until the entry is computed (`set_dim`): reusing one needs no forward pass."""
        key_source = _plain({"format": FORMAT, **key_source})
        key = hashlib.sha256(json.dumps(key_source, sort_keys=True).encode()).hexdigest()[:24]
        manifest = {"format": FORMAT, "key": key, "key_source": key_source, "n": int(n),
                    "dim": None if dim is None else int(dim), "dtype": "float32", "chunk_size": int(chunk_size),
                    "embedder": embedder}
        return cls(Path(cache_dir) / "embeddings", f"{name}-{key}", manifest)

    @property
    def n(self) -> int:
        return self.manifest["n"]

    @property
    def dim(self) -> int:
        return self.manifest["dim"]

    def set_dim(self, dim: int) -> None:
        self.manifest["dim"] = int(dim)

    @property
    def chunk_size(self) -> int:
        return self.manifest["chunk_size"]

    @property
    def n_chunks(self) -> int:
        return -(-self.n // self.chunk_size)

    def chunk_rows(self, i: int) -> tuple[int, int]:
        return i * self.chunk_size, min(self.n, (i + 1) * self.chunk_size)

    def chunk_path(self, i: int) -> Path:
        return self.parts / f"chunk-{i:06d}.npy"

    def lock(self):
        """Exclusive use of the entry across processes (a second run waits, then reuses it)."""
        return self.entry.lock()

    # --- a finished entry ------------------------------------------------------------------------

    def problem(self) -> str | None:
        """Why the finished entry cannot be used (None: it can)."""
        damage = self.entry.check()  # record readable, this cache version, embeddings.npy's size and checksum
        if damage is not None:
            return damage
        rec = self.entry.info()
        if any(rec.get(k) != self.manifest[k] for k in ("key", "n", "dtype")) or \
                self.manifest["dim"] not in (None, rec.get("dim")):
            return "its completion record describes other settings"
        try:
            arr = np.load(self.npy, mmap_mode="r")
        except Exception as e:  # noqa: BLE001 - any unreadable file is damage, never a traceback
            return f"unreadable .npy header: {type(e).__name__}"
        if arr.shape != (self.n, rec.get("dim")) or arr.dtype != np.float32:
            return f"holds {arr.dtype} {arr.shape}, expected float32 {(self.n, rec.get('dim'))}"
        return None

    def open_complete(self) -> np.ndarray | None:
        """The finished embedding (a read-only float32 N×D memory map), or None to compute it (a damaged
        entry is reported in one line and cleared first)."""
        if not self.entry.is_complete():
            if self.npy.exists() and not self.parts.is_dir():  # a finished file without its record
                self.entry.discard("done.json is missing")
            return None  # nothing yet, or an unfinished run (its chunks are there)
        problem = self.problem()
        if problem is None:
            self.manifest["dim"] = self.entry.info().get("dim")
            return np.load(self.npy, mmap_mode="r")
        self.entry.discard(problem)
        self.npy.unlink(missing_ok=True)
        return None

    # --- computing an entry ----------------------------------------------------------------------

    def begin(self) -> set[int]:
        """Prepare the chunk folder; returns the chunks an interrupted run already finished."""
        if self.dim is None:
            raise ValueError("EmbeddingStore.begin needs the embedding dimension (set_dim)")
        self.parts.mkdir(parents=True, exist_ok=True)
        manifest_path = self.parts / "manifest.json"
        try:
            old = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            old = None
        if old != self.manifest:  # another chunk size or a damaged manifest: start this entry afresh
            for stale in self.parts.glob("chunk-*.npy"):
                stale.unlink()
            write_json(manifest_path, self.manifest)
        return self.done_chunks()

    def done_chunks(self) -> set[int]:
        done = set()
        for i in range(self.n_chunks):
            path = self.chunk_path(i)
            if not path.is_file():
                continue
            a, b = self.chunk_rows(i)
            try:
                arr = np.load(path, mmap_mode="r")
                ok = arr.shape == (b - a, self.dim) and arr.dtype == np.float32
            except Exception:  # noqa: BLE001 - an unreadable chunk is recomputed
                ok = False
            if ok:
                done.add(i)
            else:
                path.unlink(missing_ok=True)
        return done

    def write_chunk(self, i: int, feats: np.ndarray) -> Path:
        a, b = self.chunk_rows(i)
        if feats.shape != (b - a, self.dim) or feats.dtype != np.float32:
            raise GmvError(f"chunk {i} of {self.stem} must be float32 {(b - a, self.dim)}, got {feats.dtype} "
                           f"{feats.shape}")
        with atomic_path(self.chunk_path(i)) as tmp:
            with open(tmp, "wb") as f:
                np.save(f, feats)
        return self.chunk_path(i)

    def finish(self) -> np.ndarray:
        """Concatenate the chunks into embeddings.npy (streamed), record the entry complete (done.json, with the
        file's size and checksum), drop the chunks; returns the memory-mapped result."""
        missing = [i for i in range(self.n_chunks) if not self.chunk_path(i).is_file()]
        if missing:
            raise GmvError(f"embedding entry {self.stem}: chunks {missing[:5]}{' …' if len(missing) > 5 else ''} "
                           "are not computed yet")
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                      "shape": (self.n, self.dim)})
        with atomic_path(self.npy) as tmp:
            with open(tmp, "wb") as f:
                f.write(header.getvalue())
                for i in range(self.n_chunks):
                    f.write(np.ascontiguousarray(np.load(self.chunk_path(i)), dtype="<f4").data)
        self.entry.complete([self.npy.name], **self.manifest)
        shutil.rmtree(self.parts, ignore_errors=True)
        return np.load(self.npy, mmap_mode="r")
