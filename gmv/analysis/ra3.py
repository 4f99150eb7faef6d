"""RA3: do high-value training images look like what the generator made?

The paper's Figs. 3–4 put each of the highest- (and lowest-) valued training images
beside its six nearest generated images: high-value images should have close,
similar-looking matches, low-value ones should not. This module

* picks the extremes (:func:`extremes`; for the low gallery :func:`lowest`, which draws at
  random among images tied at the lowest value when there are more than the gallery shows),
* finds each one's nearest generated images (:func:`nearest_generated`),
* draws the galleries (:func:`gallery`), and
* quantifies the visual impression (:func:`ra3_report`): the mean embedding distance
  of the high and low groups to their matches, with a one-sided Welch test that the
  low group's matches are farther.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

import numpy as np

from gmv.analysis.ra1 import _as_matrix, exact_knn
from gmv.analysis.ra2 import welch_one_sided
from gmv.errors import GmvError
from gmv.io import save_figure


def extremes(values, n: int, among=None) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the `n` highest and the `n` lowest values: ``(top_idx, bottom_idx)``.

    ``top_idx`` runs from the highest value down, ``bottom_idx`` from the lowest up;
    equal values are ordered by index (lower index first) in both, so the result is
    deterministic. `n` is clipped to the number of values (the two lists then overlap).
    `among` (indices) ranks only those images — the training half of a pool with a held-out half, as
    the paper's RA3 ranks training images — and the result still indexes `values`.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    if among is not None:
        rows = _among(among, v.size)
        top, bottom = extremes(v[rows], n)
        return rows[top], rows[bottom]
    if v.size == 0:
        raise GmvError("no values to rank")
    if not np.all(np.isfinite(v)):
        raise GmvError("values contain NaN or infinite entries; check the valuation output")
    if n < 1:
        raise GmvError(f"n must be at least 1, got {n}")
    n = min(int(n), v.size)
    index = np.arange(v.size)
    top = np.lexsort((index, -v))[:n]
    bottom = np.lexsort((index, v))[:n]
    return top.astype(np.int64), bottom.astype(np.int64)


def _among(among, size: int) -> np.ndarray:
    rows = np.asarray(among, dtype=np.int64).ravel()
    if rows.size == 0 or rows.min() < 0 or rows.max() >= size or len(np.unique(rows)) != rows.size:
        raise GmvError(f"`among` must be distinct indices into the {size} values, got {rows.size} of them "
                       f"(range {rows.min() if rows.size else '-'}…{rows.max() if rows.size else '-'})")
    return np.sort(rows)


def nearest_generated(train_emb_rows, gen_emb, k: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Exact L2 top-k generated neighbours of the given training embeddings.

    Returns ``(dist, idx)``, both R×k, ascending distance per row (ties by index);
    `k` is clipped to the number of generated embeddings.
    """
    return exact_knn(train_emb_rows, gen_emb, k)


def _pixels(images, what: str) -> np.ndarray:
    """uint8 N×H×W×C pixels from an array or an ImageSet."""
    a = getattr(images, "images", images)
    if not hasattr(a, "read_range"):  # a streamed source (gmv.data.pixels) is read image by image, never whole
        a = np.asarray(a)
    if a.ndim == 3:
        a = a[..., None]
    if a.ndim != 4 or a.shape[-1] not in (1, 3):
        raise GmvError(f"{what}: images must be N×H×W×C with C = 1 or 3, got shape {a.shape}")
    if a.dtype != np.uint8:
        raise GmvError(f"{what}: images must be uint8 pixels 0–255, got {a.dtype}")
    return a


def _show(ax, img: np.ndarray) -> None:
    small = img.shape[0] <= 64
    if img.shape[-1] == 1:
        ax.imshow(img[..., 0], cmap="gray", vmin=0, vmax=255, interpolation="nearest" if small else "antialiased")
    else:
        ax.imshow(img, interpolation="nearest" if small else "antialiased")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_linewidth(0.4)
        spine.set_color("0.6")


def lowest(values, n: int, seed: int = 0, among=None) -> tuple[np.ndarray, int]:
    """The `n` lowest values for the low gallery: ``(indices, n_tied)``, `n_tied` the number of images
    that share the lowest value.

    When more than `n` images tie at the lowest value (typically 0: no generated image credited them),
    ranking by index would show the first `n` of them, which says nothing about the rest; then the `n`
    are drawn at random among the tied ones (seeded), in index order. Otherwise the result is
    :func:`extremes`' bottom list (lowest first, ties by index). `among` as in :func:`extremes`.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    rows = np.arange(v.size) if among is None else _among(among, v.size)
    _, bottom = extremes(v[rows], n)
    bottom = rows[bottom]
    tied = rows[v[rows] == v[rows].min()]
    if len(tied) <= len(bottom):
        return bottom, int(len(tied))
    drawn = np.random.default_rng(seed).choice(tied, len(bottom), replace=False)
    return np.sort(drawn).astype(np.int64), int(len(tied))


def tie_caption(n_shown: int, n_tied: int, low_value: float, seed: int) -> str:
    """"8 of 87 images valued 0 (credited by no generated image), drawn at random, seed 0"."""
    what = ("images valued 0 (credited by no generated image)" if low_value == 0
            else f"images tied at the lowest value {low_value:.4g}")
    return f"{n_shown} of {n_tied} {what}, drawn at random, seed {seed}"


def _check_gallery(train, gen, rows, midx, mdist, vals, row_labels) -> None:
    if rows.size == 0:
        raise GmvError("gallery: no rows to draw (rows_idx is empty)")
    if midx.ndim != 2 or midx.shape[0] != rows.size or mdist.shape != midx.shape:
        raise GmvError(
            f"gallery: match_idx and match_dist must both be R×k with R = len(rows_idx) = {rows.size}; "
            f"got {midx.shape} and {mdist.shape}"
        )
    if len(vals) != len(train):
        raise GmvError(f"gallery: values ({len(vals)}) must be indexed like train_images ({len(train)})")
    if rows.min() < 0 or rows.max() >= len(train):
        raise GmvError(f"gallery: rows_idx must index the {len(train)} training images")
    if midx.size and (midx.min() < 0 or midx.max() >= len(gen)):
        raise GmvError(f"gallery: match_idx must index the {len(gen)} generated images")
    if row_labels is not None and len(row_labels) != rows.size:
        raise GmvError(f"gallery: {len(row_labels)} row labels for {rows.size} rows")


def _draw_row(fig, gs, r: int, image: np.ndarray, value: float, label: str, matches, distances) -> None:
    """One gallery row: the training image (strong frame, φ below), a dashed separator, its matches."""
    ax = fig.add_subplot(gs[r, 0])
    _show(ax, image)
    for spine in ax.spines.values():  # the training image gets a stronger frame
        spine.set_linewidth(1.4)
        spine.set_color("0.15")
    ax.set_xlabel(f"\u03c6 = {value:.4g}", fontsize=7, labelpad=2, fontweight="bold")
    ax.set_ylabel(label, fontsize=7, labelpad=2)
    if r == 0:
        ax.set_title("training image", fontsize=7.5)

    bar = fig.add_subplot(gs[r, 1])
    bar.axis("off")
    bar.axvline(0.5, color="0.55", lw=1.0, ls=(0, (2, 2)))
    bar.set_xlim(0, 1)

    for j, (match, d) in enumerate(zip(matches, distances)):
        ax = fig.add_subplot(gs[r, 2 + j])
        _show(ax, match)
        ax.set_xlabel(f"d = {d:.3g}", fontsize=6.5, labelpad=2, color="0.25")
        if r == 0:
            ax.set_title(f"match {j + 1}", fontsize=7.5)


def gallery(
    train_images,
    gen_images,
    rows_idx,
    match_idx,
    match_dist,
    values,
    path: str | os.PathLike,
    title: str | None = None,
    row_labels: Sequence[str] | None = None,
) -> Path:
    """Write a gallery like the paper's Figs. 3–4 as a PNG and return its path.

    Row r shows training image ``train_images[rows_idx[r]]`` on the left, captioned
    with its value ``values[rows_idx[r]]`` (so `values` is indexed like
    `train_images`), then a separator, then the generated images
    ``gen_images[match_idx[r, j]]`` captioned with their embedding distances
    ``match_dist[r, j]``. Images are uint8 N×H×W×C (C = 1 grey or 3) or ImageSets.
    `row_labels` (one per row) replace the default "train #<index>" labels; `title` may have
    several lines (the figure makes room for them).
    """
    from matplotlib.figure import Figure

    train = _pixels(train_images, "training images")
    gen = _pixels(gen_images, "generated images")
    rows = np.asarray(rows_idx, dtype=np.int64).ravel()
    midx = np.asarray(match_idx, dtype=np.int64)
    mdist = np.asarray(match_dist, dtype=np.float64)
    vals = np.asarray(values, dtype=np.float64).ravel()
    _check_gallery(train, gen, rows, midx, mdist, vals, row_labels)

    n_rows, k = midx.shape
    cell = 1.05  # inches per image
    sep = 0.22
    head = 0.5 + 0.17 * (title.count("\n") if title else 0)  # inches above the first row
    height = n_rows * (cell + 0.28) + head + 0.05
    fig = Figure(figsize=((1 + k) * cell + sep + 0.4, height), dpi=120)
    gs = fig.add_gridspec(
        n_rows, k + 2, width_ratios=[1, sep / cell] + [1] * k, wspace=0.06, hspace=0.28,
        left=0.06, right=0.99, top=1 - head / height, bottom=0.02,
    )
    for r, i in enumerate(rows.tolist()):
        label = row_labels[r] if row_labels is not None else f"train #{i}"
        _draw_row(fig, gs, r, train[i], vals[i], label, gen[midx[r]], mdist[r])
    if title:
        fig.suptitle(title, fontsize=9.5, y=1 - 0.12 / height)
    return save_figure(path, fig)


def _check_ra3_inputs(values, train_emb, gen_emb, train_images, gen_images):
    vals = np.asarray(values, dtype=np.float64).ravel()
    t_emb = _as_matrix(train_emb, "training embeddings")
    g_emb = _as_matrix(gen_emb, "generated embeddings")
    t_img = _pixels(train_images, "training images")
    g_img = _pixels(gen_images, "generated images")
    if not len(vals) == len(t_emb) == len(t_img):
        raise GmvError(
            f"values ({len(vals)}), training embeddings ({len(t_emb)}) and training images ({len(t_img)}) "
            "must describe the same training set, in the same order"
        )
    if len(g_emb) != len(g_img):
        raise GmvError(f"generated embeddings ({len(g_emb)}) and generated images ({len(g_img)}) differ in number")
    return vals, t_emb, g_emb, t_img, g_img


def ra3_report(
    values,
    train_emb,
    gen_emb,
    train_images,
    gen_images,
    out_dir: str | os.PathLike,
    n: int = 8,
    k: int = 6,
    seed: int = 0,
    among=None,
) -> dict:
    """RA3 for one setting: galleries of the n highest- and n lowest-valued training images.

    Writes ``ra3_high.png`` and ``ra3_low.png`` in `out_dir` (each row: a training
    image and its k nearest generated images by embedding distance). When more than n images
    tie at the lowest value, the low gallery shows n of them drawn at random with `seed`
    (:func:`lowest`) and says so in its title; `among` ranks only those rows (:func:`extremes`). Returns:

    * ``ra3_mean_dist_high`` / ``ra3_mean_dist_low`` — mean L2 embedding distance from a group's
      training images to their k matches (over all n·k pairs); RA3 expects high < low;
    * ``ra3_t_statistic``, ``ra3_p_value`` — one-sided Welch test, H1: the low group's
      per-image mean match distances exceed the high group's (one number per image,
      so n samples a side; NaN when n < 2);
    * ``ra3_low_n_tied`` — how many images share the lowest value;
    * ``ra3_high_idx``, ``ra3_low_idx`` — training indices, highest resp. lowest first;
    * ``ra3_high_values``, ``ra3_low_values`` — their values;
    * ``ra3_high_match_idx``, ``ra3_low_match_idx`` — n×k generated indices (lists);
    * ``ra3_high_png``, ``ra3_low_png`` — the gallery paths (str), ``ra3_low_caption`` — the line
      under the low gallery's title saying how its rows were drawn ("" when ranked);
    * ``ra3_n_ranked`` — how many were ranked: all, or the `among` ones (titles then say "(X_v1)").
    """
    vals, t_emb, g_emb, t_img, g_img = _check_ra3_inputs(values, train_emb, gen_emb, train_images, gen_images)
    top, _ = extremes(vals, n, among)  # checks `among`
    bottom, n_tied = lowest(vals, n, seed=seed, among=among)
    caption = tie_caption(len(bottom), n_tied, float(vals[bottom].min()), seed) if n_tied > len(bottom) else ""
    out, result, row_means = Path(out_dir), {"ra3_low_caption": caption}, {}
    which = "training images" + ("" if among is None else " (X_v1)")
    for group, rows, word in (("high", top, "Highest"), ("low", bottom, "Lowest")):
        dist, idx = nearest_generated(t_emb[rows], g_emb, k)
        title = f"{word}-value {which} and their {idx.shape[1]} nearest generated images"
        png = gallery(t_img, g_img, rows, idx, dist, vals, out / f"ra3_{group}.png",
                      title=title + (f"\n{caption}" if group == "low" and caption else ""))
        row_means[group] = dist.mean(axis=1)
        result[f"ra3_mean_dist_{group}"] = float(dist.mean())
        result[f"ra3_{group}_idx"] = rows.tolist()
        result[f"ra3_{group}_values"] = vals[rows].tolist()
        result[f"ra3_{group}_match_idx"] = idx.tolist()
        result[f"ra3_{group}_png"] = str(png)
    t, p = welch_one_sided(row_means["low"], row_means["high"]) if len(top) >= 2 else (math.nan, math.nan)
    scalars = {
        "ra3_mean_dist_high": result.pop("ra3_mean_dist_high"),
        "ra3_mean_dist_low": result.pop("ra3_mean_dist_low"),
        "ra3_t_statistic": t,
        "ra3_p_value": p,
        "ra3_low_n_tied": n_tied,
        "ra3_n_ranked": len(vals) if among is None else int(np.size(among)),
    }
    return {**scalars, **result}
