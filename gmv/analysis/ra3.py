"""RA3: do high-value training images look like what the generator made?

The paper's Figs. 3–4 put each of the highest- (and lowest-) valued training images
beside its six nearest generated images: high-value images should have close,
similar-looking matches, low-value ones should not. This module

* picks the extremes (:func:`extremes`),
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


def extremes(values, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the `n` highest and the `n` lowest values: ``(top_idx, bottom_idx)``.

    ``top_idx`` runs from the highest value down, ``bottom_idx`` from the lowest up;
    equal values are ordered by index (lower index first) in both, so the result is
    deterministic. `n` is clipped to the number of values (the two lists then overlap).
    """
    v = np.asarray(values, dtype=np.float64).ravel()
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
    `row_labels` (one per row) replace the default "train #<index>" labels.
    """
    from matplotlib.figure import Figure

    train = _pixels(train_images, "training images")
    gen = _pixels(gen_images, "generated images")
    rows = np.asarray(rows_idx, dtype=np.int64).ravel()
    midx = np.asarray(match_idx, dtype=np.int64)
    mdist = np.asarray(match_dist, dtype=np.float64)
    vals = np.asarray(values, dtype=np.float64).ravel()
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

    n_rows, k = midx.shape
    cell = 1.05  # inches per image
    sep = 0.22
    fig = Figure(figsize=((1 + k) * cell + sep + 0.4, n_rows * (cell + 0.28) + 0.55), dpi=120)
    gs = fig.add_gridspec(
        n_rows, k + 2, width_ratios=[1, sep / cell] + [1] * k, wspace=0.06, hspace=0.28,
        left=0.06, right=0.99, top=1 - 0.5 / (n_rows * (cell + 0.28) + 0.55), bottom=0.02,
    )
    for r in range(n_rows):
        i = int(rows[r])
        ax = fig.add_subplot(gs[r, 0])
        _show(ax, train[i])
        for spine in ax.spines.values():  # the training image gets a stronger frame
            spine.set_linewidth(1.4)
            spine.set_color("0.15")
        ax.set_xlabel(f"\u03c6 = {vals[i]:.4g}", fontsize=7, labelpad=2, fontweight="bold")
        ax.set_ylabel(row_labels[r] if row_labels is not None else f"train #{i}", fontsize=7, labelpad=2)
        if r == 0:
            ax.set_title("training image", fontsize=7.5)

        bar = fig.add_subplot(gs[r, 1])
        bar.axis("off")
        bar.axvline(0.5, color="0.55", lw=1.0, ls=(0, (2, 2)))
        bar.set_xlim(0, 1)

        for j in range(k):
            ax = fig.add_subplot(gs[r, 2 + j])
            _show(ax, gen[midx[r, j]])
            ax.set_xlabel(f"d = {mdist[r, j]:.3g}", fontsize=6.5, labelpad=2, color="0.25")
            if r == 0:
                ax.set_title(f"match {j + 1}", fontsize=7.5)
    if title:
        fig.suptitle(title, fontsize=9.5, y=1 - 0.12 / (n_rows * (cell + 0.28) + 0.55))
    return save_figure(path, fig)


def ra3_report(
    values,
    train_emb,
    gen_emb,
    train_images,
    gen_images,
    out_dir: str | os.PathLike,
    n: int = 8,
    k: int = 6,
) -> dict:
    """RA3 for one setting: galleries of the n highest- and n lowest-valued training images.

    Writes ``ra3_high.png`` and ``ra3_low.png`` in `out_dir` (each row: a training
    image and its k nearest generated images by embedding distance) and returns:

    * ``ra3_mean_dist_high`` / ``ra3_mean_dist_low`` — mean L2 embedding distance
      from a group's training images to their k matches (over all n·k pairs);
      RA3 expects high < low;
    * ``ra3_t_statistic``, ``ra3_p_value`` — one-sided Welch test, H1: the low group's
      per-image mean match distances exceed the high group's (one number per image,
      so n samples a side; NaN when n < 2);
    * ``ra3_high_idx``, ``ra3_low_idx`` — training indices, highest resp. lowest first;
    * ``ra3_high_values``, ``ra3_low_values`` — their values;
    * ``ra3_high_match_idx``, ``ra3_low_match_idx`` — n×k generated indices (lists);
    * ``ra3_high_png``, ``ra3_low_png`` — the gallery paths (str).
    """
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

    top, bottom = extremes(vals, n)
    out = Path(out_dir)
    result: dict = {}
    row_means = {}
    for group, rows, word in (("high", top, "Highest"), ("low", bottom, "Lowest")):
        dist, idx = nearest_generated(t_emb[rows], g_emb, k)
        png = gallery(
            t_img, g_img, rows, idx, dist, vals, out / f"ra3_{group}.png",
            title=f"{word}-value training images and their {idx.shape[1]} nearest generated images",
        )
        row_means[group] = dist.mean(axis=1)
        result[f"ra3_mean_dist_{group}"] = float(dist.mean())
        result[f"ra3_{group}_idx"] = rows.tolist()
        result[f"ra3_{group}_values"] = vals[rows].tolist()
        result[f"ra3_{group}_match_idx"] = idx.tolist()
        result[f"ra3_{group}_png"] = str(png)
    if len(top) >= 2:
        t, p = welch_one_sided(row_means["low"], row_means["high"])
    else:
        t, p = math.nan, math.nan
    scalars = {
        "ra3_mean_dist_high": result.pop("ra3_mean_dist_high"),
        "ra3_mean_dist_low": result.pop("ra3_mean_dist_low"),
        "ra3_t_statistic": t,
        "ra3_p_value": p,
    }
    return {**scalars, **result}


def attribute_agreement(values, attributes, pool_emb, gen_emb, n: int = 32, top: int = 6, seed: int = 0) -> dict:
    """RA3 with attributes (CelebA's 40): do high-value faces share more attributes with their top-6
    matched generated faces than low-value faces do?

    Generated faces carry no attributes, so a linear probe predicts them: one ridge regression per
    attribute (targets ±1, a single multi-output solve) on the standardised pool embeddings. Its
    accuracy is measured by fitting on the second half of the pool and scoring the first
    (`attr_probe_accuracy`; majority-class accuracy beside it), then it is refitted on the whole pool.
    For each of the `n` highest- and `n` lowest-value pool faces, the agreement is the share of the
    40 attributes on which the face's true value equals the predicted value of a matched generated
    face, averaged over its `top` nearest generated faces; `random` pairs each face with random
    generated faces instead. A one-sided Welch test asks whether high > low.
    """
    from sklearn.linear_model import Ridge

    a = np.asarray(attributes)
    if a.ndim != 2 or len(a) != len(values):
        raise GmvError(f"attributes must be N×A for the {len(values)} pool images, got {a.shape}")
    a = (a > 0).astype(np.int8)
    x = np.asarray(pool_emb, np.float64)
    mu, sd = x.mean(0), x.std(0) + 1e-8
    z, zg = (x - mu) / sd, (np.asarray(gen_emb, np.float64) - mu) / sd
    y = 2.0 * a - 1.0
    half = len(z) // 2
    probe = Ridge(alpha=float(z.shape[1])).fit(z[half:], y[half:])
    held = (probe.predict(z[:half]) > 0).astype(np.int8)
    accuracy = float((held == a[:half]).mean())
    majority = float(np.maximum(a[:half].mean(0), 1 - a[:half].mean(0)).mean())
    probe = Ridge(alpha=float(z.shape[1])).fit(z, y)
    gen_attr = (probe.predict(zg) > 0).astype(np.int8)

    hi, lo = extremes(values, n)
    top = min(top, len(gen_emb))
    rng = np.random.default_rng(seed)

    def agreement(rows: np.ndarray, random_pairs: bool = False) -> np.ndarray:
        if random_pairs:
            nn = rng.integers(0, len(gen_emb), size=(len(rows), top))
        else:
            _, nn = nearest_generated(x[rows], np.asarray(gen_emb), top)
        return (a[rows][:, None, :] == gen_attr[nn]).mean(axis=(1, 2))

    ag_hi, ag_lo = agreement(hi), agreement(lo)
    ag_rand = agreement(np.concatenate([hi, lo]), random_pairs=True)
    t_stat, p_value = welch_one_sided(ag_hi, ag_lo)
    return {
        "attr_agreement_high": float(ag_hi.mean()),
        "attr_agreement_low": float(ag_lo.mean()),
        "attr_agreement_random": float(ag_rand.mean()),
        "attr_agreement_t": float(t_stat),
        "attr_agreement_p_value": float(p_value),
        "attr_probe_accuracy": accuracy,
        "attr_probe_majority": majority,
        "attr_n": int(len(hi)),
    }
