"""RA1: do generated images lie nearer the data the generator trained on?

The generator was trained on X_v1 only; X_v2 is a held-out half of the same
distribution. If the generator learned (or memorised) its training data, generated
embeddings sit closer to X_v1 than to X_v2. This module measures that two ways:

* :func:`nearest_neighbour_distances` — exact nearest-neighbour distances from each
  generated embedding to X_v1 and to X_v2, and the share of generated points whose
  nearest training point belongs to X_v1 (0.5 when the generator learned nothing
  specific to X_v1).
* the paper's Fig. 2, a 2-D t-SNE map of the three sets beside these distances:
  :mod:`gmv.analysis.ra1_map`.

:func:`exact_knn` is the exact L2 k-nearest-neighbour search (RA3 uses it too).
"""

from __future__ import annotations

import numpy as np

from gmv.errors import GmvError

# Colours shared by every RA1/RA2 figure: v1 = trained on, v2 = held out, gen = generated.
COLOURS = {"v1": "#1f77b4", "v2": "#ff7f0e", "gen": "#2ca02c"}
LABELS = {"v1": "X_v1 (trained on)", "v2": "X_v2 (held out)", "gen": "X\u0302 generated"}

_BLOCK_ELEMENTS = 1 << 24  # ~16M float64 per temporary block (128 MiB) in the numpy paths


def _as_matrix(x, what: str) -> np.ndarray:
    """`x` as a finite 2-D float array (N×D), or a GmvError saying what is wrong."""
    a = np.asarray(x)
    if a.ndim == 1 and a.size > 0:
        raise GmvError(f"{what}: expected a 2-D array of embeddings (N×D), got a 1-D array; use x[None, :] for one row")
    if a.ndim != 2:
        raise GmvError(f"{what}: expected a 2-D array of embeddings (N×D), got shape {a.shape}")
    if a.shape[0] == 0:
        raise GmvError(f"{what}: no embeddings (0 rows)")
    if not np.issubdtype(a.dtype, np.number):
        raise GmvError(f"{what}: embeddings must be numeric, got dtype {a.dtype}")
    if not np.all(np.isfinite(a)):
        raise GmvError(f"{what}: embeddings contain NaN or infinite values; check the embedder output")
    return a


def exact_knn(queries, base, k: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours in `base` of each row of `queries`, by Euclidean (L2) distance.

    Returns ``(dist, idx)``, both Q×k: ``dist[q, j]`` is the L2 distance (not squared)
    from query q to its j-th nearest base row ``idx[q, j]``, ascending in j. `k` is
    clipped to the number of base rows.

    The search is gmv's one exact search (`gmv.valuation.matchers.exact_search`: FAISS in float32,
    never the full Q×N distance matrix); the returned distances are then recomputed exactly in
    float64 for the chosen pairs (and re-sorted, ties by index), so they carry no float32
    cancellation error.
    """
    q = _as_matrix(queries, "queries")
    b = _as_matrix(base, "base")
    if q.shape[1] != b.shape[1]:
        raise GmvError(
            f"embedding dimensions differ: queries have {q.shape[1]}, base has {b.shape[1]}; "
            "embed both sets with the same embedder"
        )
    if k < 1:
        raise GmvError(f"k must be at least 1, got {k}")
    k = min(int(k), b.shape[0])
    from gmv.valuation.matchers import exact_search  # FAISS, with torch's OpenMP pool paused

    _, idx = exact_search(b, q, k)

    dist = _exact_pair_distances(q, b, idx)
    order = np.lexsort((idx, dist), axis=1)  # by distance, then by index
    return np.take_along_axis(dist, order, 1), np.take_along_axis(idx, order, 1).astype(np.int64)


def _exact_pair_distances(q: np.ndarray, b: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """float64 L2 distance between q[i] and b[idx[i, j]] for every (i, j)."""
    k, d = idx.shape[1], q.shape[1]
    rows = max(1, _BLOCK_ELEMENTS // max(1, k * d))
    out = np.empty(idx.shape, np.float64)
    for s in range(0, q.shape[0], rows):
        diff = b[idx[s : s + rows]].astype(np.float64) - q[s : s + rows, None, :].astype(np.float64)
        out[s : s + rows] = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
    return out


def nearest_distances(gen_emb, v1_emb, v2_emb) -> tuple[np.ndarray, np.ndarray]:
    """Per generated point, the exact L2 distance to its nearest X_v1 and to its nearest X_v2 embedding
    (two float64 arrays of length m; see :func:`exact_knn`)."""
    gen = _as_matrix(gen_emb, "generated embeddings")
    v1 = _as_matrix(v1_emb, "X_v1 embeddings")
    v2 = _as_matrix(v2_emb, "X_v2 embeddings")
    return exact_knn(gen, v1, 1)[0][:, 0], exact_knn(gen, v2, 1)[0][:, 0]


def share_nearer_v1(d1: np.ndarray, d2: np.ndarray) -> float:
    """The share of generated points nearer X_v1 than X_v2 (`d1` < `d2`; an exact tie counts half)."""
    return float(np.mean(d1 < d2) + 0.5 * np.mean(d1 == d2))


def summarise_nearest(d1: np.ndarray, d2: np.ndarray, n_v1: int, n_v2: int) -> dict:
    """RA1's numbers from per-point nearest distances `d1` (to X_v1) and `d2` (to X_v2):

    * ``nn_dist_gen_to_v1`` — mean over generated points of the L2 distance to the
      nearest X_v1 embedding;
    * ``nn_dist_gen_to_v2`` — the same to the nearest X_v2 embedding. Smaller to v1
      than to v2 supports RA1 (when |X_v1| = |X_v2|; a larger set has nearer neighbours
      by chance alone);
    * ``nn_share_v1`` — share of generated points whose nearest neighbour in X_v1 ∪ X_v2
      lies in X_v1 (an exact tie counts half). About 0.5 when the generator is equally
      close to both halves; near 1 when it copies its training data;
    * ``n_gen``, ``n_v1``, ``n_v2`` — the set sizes.
    """
    return {
        "nn_dist_gen_to_v1": float(d1.mean()),
        "nn_dist_gen_to_v2": float(d2.mean()),
        "nn_share_v1": share_nearer_v1(d1, d2),
        "n_gen": int(len(d1)),
        "n_v1": int(n_v1),
        "n_v2": int(n_v2),
    }


def nearest_neighbour_distances(gen_emb, v1_emb, v2_emb) -> dict:
    """How close generated embeddings lie to the trained-on half versus the held-out half: the plain-number
    dict of :func:`summarise_nearest` over :func:`nearest_distances` (exact search; memory stays bounded
    for 10k×20k×4096)."""
    d1, d2 = nearest_distances(gen_emb, v1_emb, v2_emb)
    return summarise_nearest(d1, d2, len(v1_emb), len(v2_emb))


def nearest_distances_from_tables(gen_emb, pool_emb, n_v1: int, indices, distances, *, squared: bool,
                                  matcher=None) -> tuple[np.ndarray, np.ndarray, int]:
    """:func:`nearest_distances` read off the m×K match tables, for valuations too large to search again
    (the pool is X_v1 = rows [0, n_v1) then X_v2): a generated point's nearest X_v1 (X_v2) image is the
    first X_v1 (X_v2) entry of its table row — exactly the nearest when the tables are exact, with the
    tables' recall otherwise. Rows whose K matches all lie in one half are searched against the other half
    through the matcher (`matcher`: its settings, kind auto by default), only those rows. Distances are
    those of the tables (float32; √ of them when `squared`). Returns (d1, d2, rows searched)."""
    from gmv.valuation.matchers import MatcherConfig, match

    idx = np.asarray(indices)
    dist = np.asarray(distances, dtype=np.float64)
    if squared:
        dist = np.sqrt(np.maximum(dist, 0.0))
    m = len(idx)
    valid = idx >= 0
    out = {}
    searched = 0
    for name, in_half in (("v1", valid & (idx < n_v1)), ("v2", valid & (idx >= n_v1))):
        first = np.argmax(in_half, axis=1)
        found = in_half[np.arange(m), first]
        d = np.where(found, dist[np.arange(m), first], np.nan)
        missing = np.flatnonzero(~found)
        if len(missing):
            half = pool_emb[:n_v1] if name == "v1" else pool_emb[n_v1:]
            r = match(half, np.asarray(gen_emb)[missing], 1, matcher or MatcherConfig(), announce=False)
            d[missing] = np.asarray(r.distances[:, 0], np.float64)
            searched += len(missing)
        out[name] = d
    return out["v1"], out["v2"], searched


def nearest_neighbour_distances_from_tables(gen_emb, pool_emb, n_v1: int, indices, distances, *,
                                            squared: bool, matcher=None) -> dict:
    """:func:`nearest_neighbour_distances` from the match tables (:func:`nearest_distances_from_tables`);
    adds ``nn_rows_searched``."""
    d1, d2, searched = nearest_distances_from_tables(gen_emb, pool_emb, n_v1, indices, distances,
                                                     squared=squared, matcher=matcher)
    return summarise_nearest(d1, d2, n_v1, len(pool_emb) - n_v1) | {"nn_rows_searched": int(searched)}
