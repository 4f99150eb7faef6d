"""RA1's figure (the paper's Fig. 2): a 2-D t-SNE map of X_v1, X_v2 and X̂ — :func:`tsne_map` computes it
(coordinates and set of every point, no plotting), :func:`plot_tsne` draws it beside the distribution of
X̂'s nearest-neighbour distances to each half (:func:`gmv.analysis.ra1.nearest_distances`), and
:func:`tsne_figure` does both. :func:`tsne_cap` says how many points per set the map takes."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gmv.analysis.ra1 import COLOURS, LABELS, _as_matrix, share_nearer_v1
from gmv.errors import GmvError
from gmv.io import save_figure

# Points per set in the RA1 t-SNE (a picture: its cost is fixed, ≈ 12 s for 3 × 1,500 points on 2 cores,
# whatever the pool). Above LARGE_N valued images, where that fixed cost would outweigh the rest of the
# report, the default is 1,000 per set (≈ 7 s); every committed study is far below LARGE_N.
TSNE_CAP = 1500
TSNE_CAP_AT_SCALE = 1000


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


MARKERS = {"v1": "o", "v2": "^"}  # the two halves: distinct shapes as well as colours


def plot_tsne(tmap: TsneMap, path: str | os.PathLike, title: str | None = None,
              nn_distances: tuple[np.ndarray, np.ndarray] | None = None) -> Path:
    """Draw a :class:`TsneMap` as a PNG; returns its path.

    X̂ is drawn first, beneath, as a light cloud; X_v1 (circles) and X_v2 (triangles) on top in a seeded
    shuffled order, so that neither half hides the other and the eye can see which half the cloud lies
    over. With `nn_distances` (per generated point, the distance to the nearest X_v1 and X_v2 embedding,
    in the full embedding, not the map) a second panel shows their two distributions: RA1's claim in
    numbers, which a 2-D map can only suggest."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    order, xy, groups = tmap.draw_order, tmap.xy, tmap.groups
    size = 12 if len(xy) <= 3000 else 7
    fig = Figure(figsize=(11.5, 5.2) if nn_distances is not None else (6.4, 5.6), dpi=150)
    ax = fig.add_subplot(1, 2, 1) if nn_distances is not None else fig.add_subplot()
    gen = order[groups[order] == "gen"]
    ax.scatter(xy[gen, 0], xy[gen, 1], c=COLOURS["gen"], s=size * 1.6, alpha=0.18, linewidths=0, zorder=1)
    halves_ = order[groups[order] != "gen"]
    # the halves interleaved: 20 slices of the shuffled order, each drawn v1 then v2, so that neither
    # half is drawn over the other as a whole (a scatter call takes one marker shape)
    for part in np.array_split(halves_, min(20, max(1, len(halves_)))):
        for key in ("v1", "v2"):
            rows = part[groups[part] == key]
            ax.scatter(xy[rows, 0], xy[rows, 1], c=COLOURS[key], marker=MARKERS[key], s=size, alpha=0.8,
                       linewidths=0, zorder=2)
    handles = [Line2D([], [], ls="", marker=MARKERS.get(key, "o"), ms=6, color=COLOURS[key],
                      alpha=0.5 if key == "gen" else 1.0, label=f"{LABELS[key]}  (n={count})")
               for key, count in tmap.counts.items()]
    ax.legend(handles=handles, loc="best", frameon=True, framealpha=0.85, fontsize=8)
    ax.set_xticks([])
    ax.set_yticks([])
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel("t-SNE 1", fontsize=9)
    ax.set_ylabel("t-SNE 2", fontsize=9)
    ax.set_title("t-SNE of the training halves and X\u0302", fontsize=10)
    ax.annotate(
        f"perplexity {tmap.perplexity:g}, seed {tmap.seed}", xy=(1, 0), xycoords="axes fraction", xytext=(0, -4),
        textcoords="offset points", ha="right", va="top", fontsize=6, color="0.5",
    )
    if nn_distances is not None:
        d1, d2 = (np.asarray(d, np.float64) for d in nn_distances)
        bx = fig.add_subplot(1, 2, 2)
        bins = np.histogram_bin_edges(np.concatenate([d1, d2]), bins=40)
        for d, key in ((d2, "v2"), (d1, "v1")):
            name = "X_v1 (trained on)" if key == "v1" else "X_v2 (held out)"
            bx.hist(d, bins=bins, color=COLOURS[key], alpha=0.55, label=f"to nearest {name}: mean {d.mean():.3g}")
            bx.axvline(d.mean(), color=COLOURS[key], lw=1.5, ls="--")
        share = share_nearer_v1(d1, d2)
        bx.set_xlabel("distance from each generated image to its nearest neighbour (embedding)", fontsize=9)
        bx.set_ylabel("generated images", fontsize=9)
        bx.set_title(f"X\u0302's nearest neighbours: {share:.0%} lie in X_v1 (0.5 = no preference)", fontsize=10)
        handles, labels = bx.get_legend_handles_labels()
        bx.legend(handles[::-1], labels[::-1], fontsize=8, frameon=True, framealpha=0.85)  # X_v1 first
        for side in ("top", "right"):
            bx.spines[side].set_visible(False)
    fig.suptitle(title or "RA1: generated embeddings and the two training halves", fontsize=11)
    fig.tight_layout()
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
    nn_distances: tuple[np.ndarray, np.ndarray] | None = None,
) -> Path:
    """Write the paper's Fig. 2 as a PNG: :func:`tsne_map` of X_v1, X_v2 and the generated set, drawn by
    :func:`plot_tsne` (with the nearest-neighbour panel when `nn_distances` are given). Returns the PNG path."""
    tmap = tsne_map(v1_emb, v2_emb, gen_emb, cap=cap, seed=seed, perplexity=perplexity, max_iter=max_iter)
    return plot_tsne(tmap, path, title=title, nn_distances=nn_distances)
