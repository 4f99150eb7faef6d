"""The embedding store: one cache entry per (pixels, embedder), written in chunks, verified on reuse.

    <cache>/embeddings/<name>-<key>.part/manifest.json     while computing: key, chunk size, N, D, dtype, embedder
    <cache>/embeddings/<name>-<key>.part/chunk-000000.npy  one per finished chunk of `chunk_size` rows (atomic)
    <cache>/embeddings/<name>-<key>.npy                    at completion: the chunks concatenated, float32 N×D
    <cache>/embeddings/<name>-<key>.json                   the completion record: the manifest, `complete: true`
                                                           and the size and sha256 of the .npy

A killed run leaves its finished chunks; the next run with the same key computes only the missing ones.
On reuse the .npy is checked against its record (size, sha256, header): a missing, truncated or corrupt
file is reported in one line (`[gmv] cache: embeddings … damaged (…) — recomputing`) and recomputed.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from gmv.errors import GmvError
from gmv.io import atomic_path, write_json

FORMAT = 2  # of the key and the files; entries of other formats are never read


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _plain(obj: Any) -> Any:
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


class EmbeddingStore:
    """One entry: where its files live and what they must hold (`manifest`)."""

    def __init__(self, directory: str | Path, stem: str, manifest: dict[str, Any]):
        self.dir, self.stem, self.manifest = Path(directory), stem, _plain(manifest)
        self.npy = self.dir / f"{stem}.npy"
        self.record = self.dir / f"{stem}.json"
        self.parts = self.dir / f"{stem}.part"

    @classmethod
    def create(cls, cache_dir: str | Path, name: str, key_source: dict[str, Any], n: int, dim: int | None,
               chunk_size: int, embedder: dict[str, Any]) -> "EmbeddingStore":
        """`dim` may stay None until the entry is computed (`set_dim`): reusing one needs no forward pass."""
        key_source = _plain({"format": FORMAT, **key_source})
        key = hashlib.sha256(json.dumps(key_source, sort_keys=True).encode()).hexdigest()[:24]
        manifest = {"format": FORMAT, "key": key, "key_source": key_source, "n": int(n), "dim": None if dim is None else int(dim),
                    "dtype": "float32", "chunk_size": int(chunk_size), "embedder": embedder}
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

    # --- a finished entry ------------------------------------------------------------------------

    def problem(self) -> str | None:
        """Why the finished entry cannot be used (None: it can)."""
        try:
            rec = json.loads(self.record.read_text())
        except FileNotFoundError:
            return "no completion record"
        except (OSError, ValueError):
            return "unreadable completion record"
        if not rec.get("complete") or any(rec.get(k) != self.manifest[k] for k in ("key", "n", "dtype")) or (
                self.manifest["dim"] not in (None, rec.get("dim"))):
            return "its completion record describes other settings"
        dim = rec.get("dim")
        expect = rec.get("files", {}).get(self.npy.name)
        if not self.npy.is_file():
            return f"{self.npy.name} is missing"
        if expect is None:
            return "no checksum in its completion record"
        size = self.npy.stat().st_size
        if size != expect["size"]:
            return f"{self.npy.name} is {size} bytes, its record says {expect['size']}"
        if sha256_file(self.npy) != expect["sha256"]:
            return f"{self.npy.name} fails its sha256 check"
        try:
            arr = np.load(self.npy, mmap_mode="r")
        except Exception as e:  # noqa: BLE001 - any unreadable file is damage, never a traceback
            return f"unreadable .npy header: {type(e).__name__}"
        if arr.shape != (self.n, dim) or arr.dtype != np.float32:
            return f"holds {arr.dtype} {arr.shape}, expected float32 {(self.n, dim)}"
        return None

    def open_complete(self) -> np.ndarray | None:
        """The finished embedding (a read-only float32 N×D memory map), or None to compute it."""
        if not self.record.exists() and (not self.npy.exists() or self.parts.is_dir()):
            return None  # nothing yet, or a run that stopped while concatenating (its chunks are there)
        problem = self.problem()
        if problem is None:
            return np.load(self.npy, mmap_mode="r")
        print(f"[gmv] cache: embeddings {self.stem} damaged ({problem}) — recomputing", flush=True)
        self.record.unlink(missing_ok=True)
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
        """Concatenate the chunks into the .npy (streamed, hashed while written), write the completion
        record, drop the chunks; returns the memory-mapped result."""
        missing = [i for i in range(self.n_chunks) if not self.chunk_path(i).is_file()]
        if missing:
            raise GmvError(f"embedding entry {self.stem}: chunks {missing[:5]}{' …' if len(missing) > 5 else ''} "
                           "are not computed yet")
        header = io.BytesIO()
        np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                      "shape": (self.n, self.dim)})
        h = hashlib.sha256(header.getvalue())
        with atomic_path(self.npy) as tmp:
            with open(tmp, "wb") as f:
                f.write(header.getvalue())
                for i in range(self.n_chunks):
                    data = np.ascontiguousarray(np.load(self.chunk_path(i)), dtype="<f4").data
                    f.write(data)
                    h.update(data)
            size = tmp.stat().st_size
        write_json(self.record, {**self.manifest, "complete": True,
                                 "files": {self.npy.name: {"size": size, "sha256": h.hexdigest()}}})
        shutil.rmtree(self.parts, ignore_errors=True)
        return np.load(self.npy, mmap_mode="r")
