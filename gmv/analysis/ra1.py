"""RA1: do generated images lie nearer the data the generator trained on?

The generator was trained on X_v1 only; X_v2 is a held-out half of the same
distribution. If the generator learned (or memorised) its training data, generated
embeddings sit closer to X_v1 than to X_v2. This module measures that two ways:

* :func:`nearest_neighbour_distances` — exact nearest-neighbour distances from each
  generated embedding to X_v1 and to X_v2, and the share of generated points whose
  nearest training point belongs to X_v1 (0.5 when the generator learned nothing
  specific to X_v1).
* :func:`tsne_figure` — the paper's Fig. 2: a 2-D t-SNE map of the three sets, computed by
  :func:`tsne_map` (coordinates and set of every point, no plotting) and drawn by :func:`plot_tsne`.

:func:`exact_knn` is the exact L2 k-nearest-neighbour search both use (RA3 uses it too).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gmv.errors import GmvError
from gmv.io import save_figure

# Colours shared by every RA1/RA2 figure: v1 = trained on, v2 = held out, gen = generated.
COLOURS = {"v1": "#1f77b4", "v2": "#ff7f0e", "gen": "#2ca02c"}
LABELS = {"v1": "X_v1 (trained on)", "v2": "X_v2 (held out)", "gen": "X\u0302 generated"}

# Points per set in the RA1 t-SNE (a picture: its cost is fixed, ≈ 12 s for 3 × 1,500 points on 2 cores,
# whatever the pool). Above LARGE_N valued images, where that fixed cost would outweigh the rest of the
# report, the default is 1,000 per set (≈ 7 s); every committed study is far below LARGE_N.
TSNE_CAP = 1500
TSNE_CAP_AT_SCALE = 1000

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


def exact_knn(queries, base, k: int = 1, *, backend: str = "auto") -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest neighbours in `base` of each row of `queries`, by Euclidean (L2) distance.

    Returns ``(dist, idx)``, both Q×k: ``dist[q, j]`` is the L2 distance (not squared)
    from query q to its j-th nearest base row ``idx[q, j]``, ascending in j. `k` is
    clipped to the number of base rows.

    The search runs in float32 (faiss ``IndexFlatL2``, or numpy in blocks when
    ``backend="numpy"`` or faiss is missing), so it never holds the full Q×N distance
    matrix; the returned distances are then recomputed exactly in float64 for the
    chosen pairs (and re-sorted, ties by index), so they carry no float32 cancellation error.
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
    if backend not in ("auto", "faiss", "numpy"):
        raise GmvError(f"unknown knn backend {backend!r}; use 'auto', 'faiss' or 'numpy'")

    q32 = np.ascontiguousarray(q, dtype=np.float32)
    b32 = np.ascontiguousarray(b, dtype=np.float32)
    if backend == "numpy":
        idx = _numpy_knn(q32, b32, k)
    else:
        from gmv.valuation.matchers import exact_search  # FAISS, with torch's OpenMP pool paused

        _, idx = exact_search(b32, q32, k)

    dist = _exact_pair_distances(q, b, idx)
    order = np.lexsort((idx, dist), axis=1)  # by distance, then by index
    return np.take_along_axis(dist, order, 1), np.take_along_axis(idx, order, 1).astype(np.int64)


def _numpy_knn(q: np.ndarray, b: np.ndarray, k: int) -> np.ndarray:
    """Top-k indices by squared L2 distance, in query blocks that keep memory bounded."""
    b_sq = np.einsum("ij,ij->i", b, b)
    rows = max(1, _BLOCK_ELEMENTS // max(1, b.shape[0]))
    out = np.empty((q.shape[0], k), np.int64)
    for s in range(0, q.shape[0], rows):
        qb = q[s : s + rows]
        d2 = b_sq[None, :] - 2.0 * (qb @ b.T)  # |q|² is constant per row: not needed to rank
        part = np.argpartition(d2, k - 1, axis=1)[:, :k] if k < b.shape[0] else np.tile(np.arange(k), (len(qb), 1))
        out[s : s + rows] = part
    return out


def _exact_pair_distances(q: np.ndarray, b: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """float64 L2 distance between q[i] and b[idx[i, j]] for every (i, j)."""
    k, d = idx.shape[1], q.shape[1]
    rows = max(1, _BLOCK_ELEMENTS // max(1, k * d))
    out = np.empty(idx.shape, np.float64)
    for s in range(0, q.shape[0], rows):
        diff = b[idx[s : s + rows]].astype(np.float64) - q[s : s + rows, None, :].astype(np.float64)
        out[s : s + rows] = np.sqrt(np.einsum("ijk,ijk->ij", diff, diff))
    return out


def nearest_neighbour_distances(gen_emb, v1_emb, v2_emb, *, backend: str = "auto") -> dict:
    """How close generated embeddings lie to the trained-on half versus the held-out half.

    Returns a dict of plain floats/ints:

    * ``nn_dist_gen_to_v1`` — mean over generated points of the L2 distance to the
      nearest X_v1 embedding;
    * ``nn_dist_gen_to_v2`` — the same to the nearest X_v2 embedding. Smaller to v1
      than to v2 supports RA1 (when |X_v1| = |X_v2|; a larger set has nearer neighbours
      by chance alone);
    * ``nn_share_v1`` — share of generated points whose nearest neighbour in X_v1 ∪ X_v2
      lies in X_v1 (an exact tie counts half). About 0.5 when the generator is equally
      close to both halves; near 1 when it copies its training data;
    * ``n_gen``, ``n_v1``, ``n_v2`` — the set sizes.

    Exact search (see :func:`exact_knn`); memory stays bounded for 10k×20k×4096.
    """
    gen = _as_matrix(gen_emb, "generated embeddings")
    v1 = _as_matrix(v1_emb, "X_v1 embeddings")
    v2 = _as_matrix(v2_emb, "X_v2 embeddings")
    d1 = exact_knn(gen, v1, 1, backend=backend)[0][:, 0]
    d2 = exact_knn(gen, v2, 1, backend=backend)[0][:, 0]
    share = float(np.mean(d1 < d2) + 0.5 * np.mean(d1 == d2))
    return {
        "nn_dist_gen_to_v1": float(d1.mean()),
        "nn_dist_gen_to_v2": float(d2.mean()),
        "nn_share_v1": share,
        "n_gen": int(len(gen)),
        "n_v1": int(len(v1)),
        "n_v2": int(len(v2)),
    }


def nearest_neighbour_distances_from_tables(gen_emb, pool_emb, n_v1: int, indices, distances, *,
                                            squared: bool, matcher=None) -> dict:
    """:func:`nearest_neighbour_distances` read off the m×K match tables, for valuations too large to search
    again (the pool is X_v1 = rows [0, n_v1) then X_v2): a generated point's nearest X_v1 (X_v2) image is the
    first X_v1 (X_v2) entry of its table row — exactly the nearest when the tables are exact, with the
    tables' recall otherwise. Rows whose K matches all lie in one half are searched against the other half
    through the matcher (`matcher`: its settings, kind auto by default), only those rows. Distances are
    those of the tables (float32; √ of them when `squared`). Adds ``nn_rows_searched``."""
    from gmv.valuation.matchers import MatcherConfig, match

    idx = np.asarray(indices)
    dist = np.asarray(distances, dtype=np.float64)
    if squared:
        dist = np.sqrt(np.maximum(dist, 0.0))
    n_pool, m = len(pool_emb), len(idx)
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
    d1, d2 = out["v1"], out["v2"]
    return {
        "nn_dist_gen_to_v1": float(d1.mean()),
        "nn_dist_gen_to_v2": float(d2.mean()),
        "nn_share_v1": float(np.mean(d1 < d2) + 0.5 * np.mean(d1 == d2)),
        "n_gen": int(m), "n_v1": int(n_v1), "n_v2": int(n_pool - n_v1),
        "nn_rows_searched": int(searched),
    }


@dataclass
class TsneMap:
    """A 2-D t-SNE map of X_v1, X_v2 and X̂ (see :func:`tsne_map`)."""

    xy: np.ndarray  # float n×2: the map coordinates, rows in set order (v1, then v2, then gen)
    groups: np.ndarray  # str n: which set each row comes from ("v1", "v2" or "gen")
    counts: dict[str, int]  # points per set after subsampling
    draw_order: np.ndarray  # int n: a seeded shuffle of the rows, to draw them in
    perplexity: float  # the perplexity used (clipped below the number of points)
    seed: int


def _subsample_sets(sets: dict[str, np.ndarray], cap: int, rng: np.random.Generator):
    """Each set reduced (seeded, without replacement, original order kept) to at most `cap` rows:
    (stacked float64 rows, their set keys, {key: count})."""
    parts, groups, counts = [], [], {}
    for key, a in sets.items():
        if len(a) > cap:
            a = a[np.sort(rng.choice(len(a), cap, replace=False))]
        parts.append(a.astype(np.float64))
        groups.append(np.full(len(a), key))
        counts[key] = len(a)
    return np.concatenate(parts), np.concatenate(groups), counts


def tsne_cap(n_values: int, cap: int | None = None) -> int:
    """Points per set in the RA1 t-SNE: `cap` when given, else TSNE_CAP (1,500) — or TSNE_CAP_AT_SCALE
    (1,000) when more than LARGE_N (50,000) images are valued."""
    from gmv.analysis.membership import LARGE_N

    if cap is not None:
        return int(cap)
    return TSNE_CAP_AT_SCALE if n_values > LARGE_N else TSNE_CAP


def tsne_map(v1_emb, v2_emb, gen_emb, cap: int = 1500, seed: int = 0, perplexity: float = 30, *,
             max_iter: int = 1000) -> TsneMap:
    """The t-SNE map of the paper's Fig. 2: 2-D coordinates of X_v1, X_v2 and the generated set.

    Each set is subsampled (seeded, without replacement) to at most `cap` points so the
    three sets weigh equally and the map stays quick; embeddings wider than 50 dims are
    reduced to 50 by PCA first (the usual t-SNE preprocessing). `perplexity` is clipped
    below the number of points so tiny sets work.
    """
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE
    from threadpoolctl import threadpool_limits

    if cap < 1:
        raise GmvError(f"cap must be at least 1, got {cap}")
    sets = {
        "v1": _as_matrix(v1_emb, "X_v1 embeddings"),
        "v2": _as_matrix(v2_emb, "X_v2 embeddings"),
        "gen": _as_matrix(gen_emb, "generated embeddings"),
    }
    dims = {a.shape[1] for a in sets.values()}
    if len(dims) != 1:
        raise GmvError(f"embedding dimensions differ between the sets ({sorted(dims)}); embed all with one embedder")
    rng = np.random.default_rng(seed)
    x, groups, counts = _subsample_sets(sets, cap, rng)
    n = len(x)
    if n < 4:
        raise GmvError(f"t-SNE needs at least 4 points in all, got {n}; pass more embeddings")

    if x.shape[1] > 50:
        x = PCA(n_components=min(50, n - 1), random_state=seed).fit_transform(x)
    perp = float(min(perplexity, max(1.0, (n - 1) / 3.0)))
    tsne = TSNE(n_components=2, perplexity=perp, init="pca", learning_rate="auto", max_iter=max(250, int(max_iter)),
                random_state=seed)
    # Small maps run faster on one thread: OpenMP start-up per iteration outweighs the
    # work, and on a busy machine spinning threads slow it down tenfold.
    with threadpool_limits(limits=1 if n < 1000 else None):
        xy = tsne.fit_transform(x)
    return TsneMap(xy=xy, groups=groups, counts=counts, draw_order=rng.permutation(n), perplexity=perp, seed=seed)


def plot_tsne(tmap: TsneMap, path: str | os.PathLike, title: str | None = None) -> Path:
    """Draw a :class:`TsneMap` as a PNG, points in its shuffled draw order (so no set hides another
    just by being drawn last), a legend with the set sizes; returns the PNG path."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    order, xy = tmap.draw_order, tmap.xy
    colours = np.array([COLOURS[g] for g in tmap.groups])
    size = 10 if len(xy) <= 3000 else 6
    fig = Figure(figsize=(6.4, 5.6), dpi=150)
    ax = fig.add_subplot()
    ax.scatter(xy[order, 0], xy[order, 1], c=colours[order], s=size, alpha=0.5, linewidths=0)
    handles = [
        Line2D([], [], ls="", marker="o", ms=6, color=COLOURS[key], label=f"{LABELS[key]}  (n={count})")
        for key, count in tmap.counts.items()
    ]
    ax.legend(handles=handles, loc="best", frameon=True, framealpha=0.85, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel("t-SNE 1", fontsize=9)
    ax.set_ylabel("t-SNE 2", fontsize=9)
    ax.set_title(title or "t-SNE of training halves and generated embeddings", fontsize=10)
    ax.annotate(
        f"perplexity {tmap.perplexity:g}, seed {tmap.seed}", xy=(1, 0), xycoords="axes fraction", xytext=(0, -4),
        textcoords="offset points", ha="right", va="top", fontsize=6, color="0.5",
    )
    return save_figure(path, fig)


def tsne_figure(
    v1_emb,
    v2_emb,
    gen_emb,
    path: str | os.PathLike,
    cap: int = 1500,
    seed: int = 0,
    perplexity: float = 30,
    title: str | None = None,
    *,
    max_iter: int = 1000,
) -> Path:
    """Write the paper's Fig. 2 as a PNG: :func:`tsne_map` of X_v1, X_v2 and the generated set, drawn by
    :func:`plot_tsne`. Returns the PNG path."""
    tmap = tsne_map(v1_emb, v2_emb, gen_emb, cap=cap, seed=seed, perplexity=perplexity, max_iter=max_iter)
    return plot_tsne(tmap, path, title=title)
