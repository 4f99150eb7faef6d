"""Embedding as a resumable, chunked stage.

    feats, reused = embed_source(embedder, images, cache_dir)   # what valuate() and embed_cached() call

`images`: a uint8 N×H×W×C array, an ImageSet, a LazyImageSet (gmv.data.stream: folders and npz files,
read in batches by DataLoader workers) or a PixelSource. With a cache dir the features go to the store
(gmv/valuation/store.py) chunk by chunk as they are computed, with a progress bar in img/s; a killed run
resumes from its last finished chunk and gives the same features as an uninterrupted one (chunks are whole
batches, so a resumed run forms exactly the same batches). The result is one memory-mapped float32 N×D
array. The cache key is the pixels' fingerprint (gmv.data.pixels: content digest for arrays and files,
paths + sizes + mtimes for folders) and the embedder's fingerprint (its settings, weights and precision).

For parallel engines (one worker process per shard), the pieces separately:

    store = store_for(embedder, source, cache_dir)        # driver: the entry and its manifest
    if store.open_complete() is None:
        store.begin()                                     # driver, once: chunk folder + manifest
        embed_chunks(embedder, source, store, chunks=[…]) # each worker: its chunks, each written atomically
        feats = store.finish()                            # driver: concatenate, checksum, record
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable

import numpy as np

from gmv.code_fingerprint import code_digest
from gmv.console import note, progress_bar
from gmv.data.pixels import PixelSource, as_pixels
from gmv.data.stream import batch_ranges, iter_batches
from gmv.valuation.embedders import Embedder
from gmv.valuation.store import EmbeddingStore


def store_for(embedder: Embedder, images, cache_dir: str | Path, dim: int | None = None) -> EmbeddingStore:
    """The store entry for (these pixels, this embedder); nothing is written. `dim` (from one dummy forward
    when None) is needed only to compute the entry, not to reuse it: `store.dim` is None until then."""
    pixels = as_pixels(images)
    fp = embedder.fingerprint()
    code = code_digest(type(embedder).__module__, *embedder.code_modules, "gmv.valuation.embed")
    return EmbeddingStore.create(cache_dir, embedder.name,
                                 {"pixels": pixels.fingerprint(), "embedder": fp, "code": code},
                                 len(pixels), dim, embedder.chunk_size, fp)


def embed_chunks(embedder: Embedder, images, store: EmbeddingStore, chunks: Iterable[int] | None = None,
                 desc: str = "embed", num_workers: int | None = None) -> list[int]:
    """Compute `chunks` of `store` (default: every chunk not on disk yet) from `images` and write each one
    atomically as soon as it is complete; returns the chunks written. Safe to run in a worker process on
    its own share of the chunks (the source and the embedder pickle; chunk files are independent)."""
    pixels: PixelSource = as_pixels(images)
    if len(pixels) != store.n:
        raise ValueError(f"{store.stem} holds {store.n} rows but the source has {len(pixels)} images")
    if store.dim is None:
        store.set_dim(embedder.dim(tuple(pixels.shape[1:])))
    todo = sorted(set(range(store.n_chunks)) - store.done_chunks()) if chunks is None else sorted(set(chunks))
    if not todo:
        return []
    rows = {c: store.chunk_rows(c) for c in todo}
    ranges = [r for c in todo for r in batch_ranges(*rows[c], embedder.batch_size)]
    workers = embedder.num_workers if num_workers is None else int(num_workers)
    written, pending = [], []
    current = todo[0]
    with progress_bar(total=store.n, initial=store.n - sum(b - a for a, b in rows.values()), desc=f"{desc} ({embedder.name})",
              unit="img", disable=not embedder.progress, leave=False, smoothing=0.05) as bar:
        for start, batch in iter_batches(pixels, ranges=ranges, num_workers=workers):
            pending.append(embedder.embed_batch(batch))
            bar.update(len(batch))
            a, b = rows[current]
            if start + len(batch) == b:
                feats = np.concatenate(pending) if len(pending) > 1 else pending[0]
                embedder.check_finite(feats, f"{desc}, rows {a}–{b - 1}")
                store.write_chunk(current, feats)
                written.append(current)
                pending = []
                current = todo[min(len(written), len(todo) - 1)]
    return written


def embed_source(embedder: Embedder, images, cache_dir: str | Path | None, desc: str = "embed"
                 ) -> tuple[np.ndarray, bool]:
    """Embed `images`, through the store when `cache_dir` is given. Returns (float32 N×D, reused).
    Batch size, DataLoader workers and chunk size are the embedder's settings."""
    pixels = as_pixels(images)
    if cache_dir is None:
        return embedder(pixels, desc=desc), False
    store = store_for(embedder, pixels, cache_dir)
    with store.lock():  # a second run on the same entry waits, then reuses it
        feats = store.open_complete()
        if feats is not None:
            return feats, True
        return _compute(embedder, pixels, store, desc), False


def _compute(embedder: Embedder, pixels: PixelSource, store: EmbeddingStore, desc: str) -> np.ndarray:
    store.set_dim(embedder.dim(tuple(pixels.shape[1:])))
    done = store.begin()
    n_done = sum(b - a for a, b in map(store.chunk_rows, done))
    if done:
        note(f"[gmv] cache: embeddings {store.stem}: resuming — {len(done)} of {store.n_chunks} chunks "
             f"({n_done} of {store.n} images) already embedded")
    t0 = time.perf_counter()
    embed_chunks(embedder, pixels, store, desc=desc)
    feats = store.finish()
    if embedder.progress and store.n - n_done >= 10 * embedder.batch_size:
        rate = (store.n - n_done) / max(time.perf_counter() - t0, 1e-9)
        note(f"[gmv] {desc}: {store.n} images → {store.dim}-d {embedder.name} features ({rate:.0f} img/s)")
    return feats
