"""RA1–RA3 analysis: statistics checked against textbook formulas, searches against brute force."""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import stats

from gmv.analysis.membership import membership_summary
from gmv.analysis import (
    exact_knn,
    extremes,
    format_table1,
    gallery,
    lowest,
    nearest_generated,
    nearest_distances,
    nearest_neighbour_distances,
    ra3_report,
    table1_rows,
    tsne_figure,
    tsne_map,
    value_histogram,
    welch_one_sided,
    write_table1,
)
from gmv.analysis import ra3
from gmv.analysis.ra2 import cohens_d
from gmv.errors import GmvError


def brute_distances(q: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sqrt(((q[:, None, :].astype(np.float64) - b[None, :, :]) ** 2).sum(-1))


def open_png(path) -> Image.Image:
    img = Image.open(path)
    img.load()
    assert img.format == "PNG"
    return img


# ---------------------------------------------------------------- RA2 statistics

A = np.array([4.1, 5.3, 6.0, 5.5, 7.2, 6.6, 5.9])
B = np.array([3.9, 4.4, 5.1, 4.0, 4.8])


def test_welch_matches_textbook_formulas():
    va, vb = A.var(ddof=1) / len(A), B.var(ddof=1) / len(B)
    t_hand = (A.mean() - B.mean()) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(A) - 1) + vb**2 / (len(B) - 1))  # Welch–Satterthwaite
    p_hand = stats.t.sf(t_hand, df)
    t, p = welch_one_sided(A, B)
    assert t == pytest.approx(t_hand, rel=1e-12)
    assert p == pytest.approx(p_hand, rel=1e-9)
    # one-sided in the stated direction: swapping the samples gives 1 − p
    t2, p2 = welch_one_sided(B, A)
    assert t2 == pytest.approx(-t_hand) and p2 == pytest.approx(1 - p_hand)


def test_cohens_d_by_hand():
    pooled = math.sqrt(((len(A) - 1) * A.var(ddof=1) + (len(B) - 1) * B.var(ddof=1)) / (len(A) + len(B) - 2))
    assert cohens_d(A, B) == pytest.approx((A.mean() - B.mean()) / pooled, rel=1e-12)
    assert membership_summary(A, B, n_boot=200)["cohens_d"] == pytest.approx((A.mean() - B.mean()) / pooled)


def test_planted_membership_signal_is_detected():
    rng = np.random.default_rng(1)
    v1 = rng.normal(3.0, 1.0, 150)
    v2 = rng.normal(0.0, 1.0, 150)
    s = membership_summary(v1, v2, n_boot=500)
    assert s["significant"] is True and s["p_value"] < 0.01 and s["t_statistic"] > 0
    assert s["auroc"] > 0.95
    assert s["mannwhitney_p"] < 0.01
    assert 0 < s["diff_ci_low"] < s["diff_mean"] < s["diff_ci_high"]
    assert s["diff_mean"] == pytest.approx(v1.mean() - v2.mean())
    assert (s["n_v1"], s["n_v2"], s["alpha"]) == (150, 150, 0.01)
    # the reverse direction is not significant: the test is one-sided
    assert membership_summary(v2, v1, n_boot=100)["significant"] is False


def test_auroc_is_pairwise_win_rate_and_matches_mann_whitney():
    rng = np.random.default_rng(2)
    v1 = np.round(rng.exponential(1.0, 40), 1)  # rounding creates ties, as real values have
    v2 = np.round(rng.exponential(0.7, 30), 1)
    v1[:10] = 0.0
    v2[:12] = 0.0
    wins = (v1[:, None] > v2[None, :]).sum() + 0.5 * (v1[:, None] == v2[None, :]).sum()
    s = membership_summary(v1, v2, n_boot=100)
    assert s["auroc"] == pytest.approx(wins / (len(v1) * len(v2)))
    assert s["mannwhitney_u"] == pytest.approx(wins)
    assert s["zero_share_v1"] == pytest.approx(np.count_nonzero(v1 == 0) / 40)
    assert s["zero_share_v2"] == pytest.approx(np.count_nonzero(v2 == 0) / 30)


def test_identical_distributions_show_no_signal():
    rng = np.random.default_rng(3)
    v1 = rng.exponential(1.0, 300)
    same = membership_summary(v1, rng.permutation(v1), n_boot=500)  # the very same values
    assert same["auroc"] == pytest.approx(0.5)
    assert same["t_statistic"] == pytest.approx(0.0, abs=1e-9) and same["p_value"] == pytest.approx(0.5)
    assert same["diff_ci_low"] < 0 < same["diff_ci_high"]
    assert same["significant"] is False

    fresh = np.random.default_rng(30)
    s = membership_summary(fresh.exponential(1.0, 500), fresh.exponential(1.0, 500), n_boot=200)  # same law
    assert abs(s["auroc"] - 0.5) < 0.08 and s["significant"] is False


def test_bootstrap_is_seeded():
    rng = np.random.default_rng(4)
    v1, v2 = rng.normal(size=60), rng.normal(size=50)
    a = membership_summary(v1, v2, n_boot=300, seed=7)
    b = membership_summary(v1, v2, n_boot=300, seed=7)
    c = membership_summary(v1, v2, n_boot=300, seed=8)
    assert (a["diff_ci_low"], a["diff_ci_high"]) == (b["diff_ci_low"], b["diff_ci_high"])
    assert (a["diff_ci_low"], a["diff_ci_high"]) != (c["diff_ci_low"], c["diff_ci_high"])


def test_degenerate_inputs():
    with pytest.raises(GmvError, match="at least 2"):
        membership_summary([1.0], [1.0, 2.0])
    with pytest.raises(GmvError, match="NaN"):
        membership_summary([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(GmvError, match="alpha"):
        membership_summary([1.0, 2.0], [1.0, 2.0], alpha=1.5)
    s = membership_summary([2.0, 2.0, 2.0], [2.0, 2.0], n_boot=50)  # zero variance on both sides
    assert math.isnan(s["p_value"]) and s["significant"] is False and math.isnan(s["cohens_d"])
    assert "undefined" in table1_rows({"flat": s})[0]["Result"]
    assert cohens_d([1.0, 1.0], [0.0, 0.0]) == math.inf


# ---------------------------------------------------------------- Table 1


def test_table1_markdown_and_csv(tmp_path):
    rng = np.random.default_rng(5)
    by_label = {
        "BigGAN / class 3 (cat)": membership_summary(rng.normal(2, 1, 80), rng.normal(0, 1, 80), n_boot=200),
        "DDPM | MNIST": membership_summary(rng.normal(0, 1, 80), rng.normal(0, 1, 80), n_boot=200),
    }
    md = format_table1(by_label)
    lines = md.strip().splitlines()
    assert lines[0] == (
        "| Setting | Average value v1 | Average value v2 | p-value | t-statistic | Significance level | Result "
        "| AUROC | Cohen's d | 95% CI of difference |"
    )
    assert set(lines[1]) <= set("|-:") and lines[1].count("|") == 11
    assert len(lines) == 2 + len(by_label)
    assert all(line.count("|") - line.count("\\|") == 11 for line in lines)  # pipes in labels are escaped
    assert "BigGAN / class 3 (cat)" in lines[2] and "Reject H0: values of X_v1 exceed X_v2 (p < 0.01)" in lines[2]
    assert "DDPM \\| MNIST" in lines[3] and "Cannot reject H0 at 0.01" in lines[3]
    p_cell = lines[2].split(" | ")[3]
    assert "e-" in p_cell and float(p_cell) == pytest.approx(by_label["BigGAN / class 3 (cat)"]["p_value"], rel=0.01)

    md_path, csv_path = write_table1(by_label, tmp_path / "out", stem="t1")
    assert md_path.name == "t1.md" and md_path.read_text() == md
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["Setting"] for r in rows] == list(by_label)
    first = by_label["BigGAN / class 3 (cat)"]
    assert float(rows[0]["p-value"]) == pytest.approx(first["p_value"], rel=1e-12)
    assert float(rows[0]["95% CI of difference low"]) == pytest.approx(first["diff_ci_low"])
    assert int(rows[0]["n v1"]) == 80


def test_table1_needs_settings():
    with pytest.raises(GmvError):
        table1_rows({})


def test_value_histogram_writes_png(tmp_path):
    rng = np.random.default_rng(6)
    v1 = np.where(rng.random(200) < 0.3, 0.0, rng.exponential(1.0, 200))
    v2 = np.where(rng.random(200) < 0.6, 0.0, rng.exponential(0.5, 200))
    img = open_png(value_histogram(v1, v2, tmp_path / "hist.png", title="values"))
    assert img.width > 500 and img.height > 250
    open_png(value_histogram(np.zeros(5), np.zeros(4), tmp_path / "zeros.png"))  # all-zero values still draw


# ---------------------------------------------------------------- RA1


def test_exact_knn_matches_brute_force():
    rng = np.random.default_rng(7)
    q, b = rng.normal(size=(40, 16)), rng.normal(size=(70, 16))
    dist, idx = exact_knn(q, b, 5)
    full = brute_distances(q, b)
    np.testing.assert_array_equal(idx, np.argsort(full, axis=1, kind="stable")[:, :5])
    np.testing.assert_allclose(dist, np.sort(full, axis=1)[:, :5], rtol=1e-12)
    dist_all, _ = exact_knn(q, b[:3], 10)  # k clipped to the base size
    assert dist_all.shape == (40, 3)


def test_nearest_neighbour_distances_match_brute_force():
    rng = np.random.default_rng(8)
    v1, v2 = rng.normal(size=(60, 12)), rng.normal(size=(45, 12))
    gen = np.concatenate([v1[:20] + 0.05 * rng.normal(size=(20, 12)), rng.normal(size=(15, 12))])
    d1 = brute_distances(gen, v1).min(1)
    d2 = brute_distances(gen, v2).min(1)
    out = nearest_neighbour_distances(gen, v1, v2)
    assert out["nn_dist_gen_to_v1"] == pytest.approx(d1.mean(), rel=1e-10)
    assert out["nn_dist_gen_to_v2"] == pytest.approx(d2.mean(), rel=1e-10)
    union = brute_distances(gen, np.concatenate([v1, v2]))
    assert out["nn_share_v1"] == pytest.approx(np.mean(union.argmin(1) < len(v1)))
    assert out["nn_share_v1"] > 0.55  # the 20 near-copies of v1 all count for v1
    assert (out["n_gen"], out["n_v1"], out["n_v2"]) == (35, 60, 45)


def test_knn_input_errors():
    with pytest.raises(GmvError, match="dimensions differ"):
        exact_knn(np.zeros((3, 4)), np.zeros((5, 6)))
    with pytest.raises(GmvError, match="NaN"):
        exact_knn(np.full((3, 4), np.nan), np.zeros((5, 4)))
    with pytest.raises(GmvError, match="2-D"):
        exact_knn(np.zeros(4), np.zeros((5, 4)))


def test_tsne_figure_writes_png(tmp_path):
    rng = np.random.default_rng(9)
    v1, v2 = rng.normal(size=(40, 64)), rng.normal(1.0, 1.0, size=(40, 64))  # > 50 dims: PCA first
    gen = v1[:30] + 0.1 * rng.normal(size=(30, 64))
    path = tsne_figure(v1, v2, gen, tmp_path / "fig" / "tsne.png", cap=25, max_iter=250, title="RA1")
    img = open_png(path)
    assert img.width > 400 and img.height > 400
    with_nn = tsne_figure(v1, v2, gen, tmp_path / "nn.png", cap=25, max_iter=250,
                          nn_distances=nearest_distances(gen, v1, v2))  # + the nearest-neighbour panel
    wide = open_png(with_nn)
    assert wide.width > 1.8 * wide.height and wide.width > 1.5 * img.width
    tiny = tsne_figure(v1[:2], v2[:1], gen[:2], tmp_path / "tiny.png", max_iter=250)  # perplexity clipped
    open_png(tiny)
    with pytest.raises(GmvError, match="dimensions differ"):
        tsne_figure(v1, v2[:, :10], gen, tmp_path / "bad.png")


def test_tsne_cap_is_smaller_only_above_large_n_and_an_explicit_cap_wins():
    from gmv.analysis.membership import LARGE_N
    from gmv.analysis.ra1_map import tsne_cap

    assert tsne_cap(200) == 1500 and tsne_cap(LARGE_N) == 1500  # every committed study: as before
    assert tsne_cap(LARGE_N + 1) == 1000 and tsne_cap(1_000_000) == 1000
    assert tsne_cap(1_000_000, 1500) == 1500 and tsne_cap(200, 60) == 60


def test_tsne_map_keeps_the_generated_set_beside_the_half_it_copies(monkeypatch):
    """X̂ is drawn around X_v1's centre, X_v2 lies far away: in the 2-D map nearly every generated point's
    nearest training point is an X_v1 point. Computed with matplotlib unavailable (no plotting involved)."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # any matplotlib import would now fail
    rng = np.random.default_rng(3)
    v1, v2 = rng.normal(0, 1, size=(70, 8)), rng.normal(12, 1, size=(50, 8))
    gen = rng.normal(0, 1, size=(60, 8))
    tmap = tsne_map(v1, v2, gen, cap=40, seed=5, max_iter=500)  # 250 = sklearn's early-exaggeration phase only
    assert tmap.counts == {"v1": 40, "v2": 40, "gen": 40}  # each set capped at 40, equal weight
    assert tmap.xy.shape == (120, 2) and np.all(np.isfinite(tmap.xy))
    assert tmap.groups.tolist() == ["v1"] * 40 + ["v2"] * 40 + ["gen"] * 40
    assert sorted(tmap.draw_order.tolist()) == list(range(120))  # a permutation of the rows
    assert tmap.perplexity == 30 and tmap.seed == 5
    train = tmap.groups != "gen"
    nearest = np.argmin(brute_distances(tmap.xy[~train], tmap.xy[train]), axis=1)
    assert np.mean(tmap.groups[train][nearest] == "v1") > 0.95
    again = tsne_map(v1, v2, gen, cap=40, seed=5, max_iter=500)
    np.testing.assert_array_equal(again.xy, tmap.xy)  # seeded: the same map
    tiny = tsne_map(v1[:2], v2[:1], gen[:2], max_iter=250)
    assert tiny.perplexity == pytest.approx(4 / 3)  # clipped to (n − 1) / 3 for n = 5 points
    with pytest.raises(GmvError, match="at least 4 points"):
        tsne_map(v1[:1], v2[:1], gen[:1])
    with pytest.raises(GmvError, match="cap must be at least 1"):
        tsne_map(v1, v2, gen, cap=0)


# ---------------------------------------------------------------- RA3


def test_extremes_breaks_ties_by_index():
    values = np.array([1.0, 3.0, 3.0, 0.0, 0.0, 2.0, 3.0])
    top, bottom = extremes(values, 2)
    assert top.tolist() == [1, 2] and bottom.tolist() == [3, 4]
    top, bottom = extremes(values, 4)
    assert top.tolist() == [1, 2, 6, 5] and bottom.tolist() == [3, 4, 0, 5]
    top, _ = extremes(values, 100)
    assert len(top) == len(values)
    with pytest.raises(GmvError):
        extremes([1.0, np.nan], 1)


def test_nearest_generated_matches_brute_force():
    rng = np.random.default_rng(10)
    train, gen = rng.normal(size=(5, 8)), rng.normal(size=(30, 8))
    dist, idx = nearest_generated(train, gen, k=6)
    full = brute_distances(train, gen)
    np.testing.assert_array_equal(idx, np.argsort(full, axis=1)[:, :6])
    np.testing.assert_allclose(dist, np.sort(full, axis=1)[:, :6])


def _toy_images(n: int, channels: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 16, 16, channels), dtype=np.uint8)


@pytest.mark.parametrize("channels", [1, 3])
def test_gallery_writes_png(tmp_path, channels):
    train, gen = _toy_images(10, channels, 0), _toy_images(20, channels, 1)
    rows = np.array([3, 7])
    match_idx = np.arange(12).reshape(2, 6)
    match_dist = np.linspace(0.1, 2.0, 12).reshape(2, 6)
    values = np.arange(10, dtype=float)
    path = gallery(train, gen, rows, match_idx, match_dist, values, tmp_path / "g.png", title="top", row_labels=["a", "b"])
    img = open_png(path)
    assert img.width > 1.8 * img.height  # 7 images wide, 2 rows high
    assert img.width > 500
    with pytest.raises(GmvError, match="R×k"):
        gallery(train, gen, rows, match_idx[:1], match_dist[:1], values, tmp_path / "bad.png")
    with pytest.raises(GmvError, match="generated images"):
        gallery(train, gen, rows, match_idx + 100, match_dist, values, tmp_path / "bad.png")


def test_ra3_report_on_planted_matches(tmp_path):
    rng = np.random.default_rng(11)
    n_train, n_gen, dim = 40, 30, 10
    train_emb = rng.normal(size=(n_train, dim)) * 3
    # the generator made 5 near-copies each of training images 0..5; the rest are unrelated
    gen_emb = np.concatenate([np.repeat(train_emb[:6], 5, axis=0)]) + 0.05 * rng.normal(size=(n_gen, dim))
    values = rng.uniform(0, 0.1, n_train)
    values[:6] = np.arange(6, 0, -1) + 10.0  # copied images are the most valuable
    out = ra3_report(
        values, train_emb, gen_emb, _toy_images(n_train, 3, 2), _toy_images(n_gen, 3, 3), tmp_path, n=4, k=6
    )
    assert out["ra3_high_idx"] == [0, 1, 2, 3]
    assert out["ra3_low_idx"] == np.argsort(values)[:4].tolist()
    assert out["ra3_mean_dist_high"] < out["ra3_mean_dist_low"]
    assert out["ra3_t_statistic"] > 0 and out["ra3_p_value"] < 0.01
    assert np.array(out["ra3_high_match_idx"]).shape == (4, 6)
    assert set(out["ra3_high_match_idx"][0][:5]) == set(range(5))  # image 0's five copies come first
    for name in ("ra3_high.png", "ra3_low.png"):
        open_png(tmp_path / name)
    with pytest.raises(GmvError, match="same training set"):
        ra3_report(values[:-1], train_emb, gen_emb, _toy_images(n_train, 3, 2), _toy_images(n_gen, 3, 3), tmp_path)


@pytest.fixture
def gallery_titles(monkeypatch) -> dict:
    """The title each RA3 gallery was drawn with, by file name (ra3.gallery still draws)."""
    titles = {}
    real_gallery = ra3.gallery

    def recording_gallery(*args, title=None, **kwargs):
        titles[Path(args[6]).name] = title
        return real_gallery(*args, title=title, **kwargs)

    monkeypatch.setattr(ra3, "gallery", recording_gallery)
    return titles


def test_ra3_ranks_only_the_training_half_when_told(tmp_path, gallery_titles):
    """A held-out image with the highest value is not a "highest-value training image": with `among` the
    galleries rank the given rows only, indices stay the pool's, and the titles say X_v1."""
    rng = np.random.default_rng(14)
    n_pool, n_gen = 20, 9
    pool_emb, gen_emb = rng.normal(size=(n_pool, 5)), rng.normal(size=(n_gen, 5))
    values = np.arange(n_pool, dtype=float)  # the highest values sit in the held-out rows 10–19
    training = np.arange(10)
    images = _toy_images(n_pool, 1, 4), _toy_images(n_gen, 1, 5)
    out = ra3_report(values, pool_emb, gen_emb, *images, tmp_path, n=3, k=2, among=training)
    assert out["ra3_high_idx"] == [9, 8, 7] and out["ra3_low_idx"] == [0, 1, 2] and out["ra3_n_ranked"] == 10
    assert "training images (X_v1)" in gallery_titles["ra3_high.png"]
    top, bottom = extremes(values, 3, among=[15, 3, 11])
    assert top.tolist() == [15, 11, 3] and bottom.tolist() == [3, 11, 15]
    values[[2, 5, 6, 12, 13]] = -1.0  # three training images tie at the lowest value (two held-out ones too)
    idx, n_tied = lowest(values, 2, seed=0, among=training)
    assert n_tied == 3 and set(idx.tolist()) <= {2, 5, 6}
    with pytest.raises(GmvError, match="distinct indices"):
        extremes(values, 3, among=[0, 25])


def test_lowest_draws_at_random_among_more_ties_than_shown():
    values = np.array([0.5, 0.0, 0.0, 2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0])  # ten zeros
    zeros = set(np.flatnonzero(values == 0).tolist())
    picks = {}
    for seed in range(8):
        idx, n_tied = lowest(values, 3, seed=seed)
        assert n_tied == 10 and len(set(idx.tolist())) == 3 and set(idx.tolist()) <= zeros
        assert idx.tolist() == sorted(idx.tolist())  # shown in index order
        picks[seed] = tuple(idx.tolist())
    assert lowest(values, 3, seed=0)[0].tolist() == list(picks[0])  # seeded
    assert len(set(picks.values())) > 1  # different seeds, different draws …
    assert len({i for p in picks.values() for i in p}) > 3  # … reaching beyond the first three by index
    # as many ties as rows or fewer: the plain ranking (lowest first, ties by index), nothing drawn
    idx, n_tied = lowest(values, 10, seed=0)
    assert n_tied == 10 and idx.tolist() == sorted(zeros)
    idx, n_tied = lowest(np.array([3.0, 1.0, 1.0, 2.0]), 3, seed=4)
    assert (n_tied, idx.tolist()) == (2, [1, 2, 3])


def test_ra3_low_gallery_says_when_it_draws_among_unmatched_images(tmp_path, gallery_titles):
    rng = np.random.default_rng(12)
    n_train, n_gen = 30, 12
    train_emb, gen_emb = rng.normal(size=(n_train, 6)), rng.normal(size=(n_gen, 6))
    values = np.zeros(n_train)
    values[:5] = [4.0, 3.0, 2.0, 2.0, 1.0]  # 25 images never credited
    images = _toy_images(n_train, 1, 4), _toy_images(n_gen, 1, 5)
    out = ra3_report(values, train_emb, gen_emb, *images, tmp_path, n=4, k=3, seed=7)
    caption = "4 of 25 images valued 0 (credited by no generated image), drawn at random, seed 7"
    assert out["ra3_low_caption"] == caption and out["ra3_low_n_tied"] == 25
    assert gallery_titles["ra3_low.png"].endswith("\n" + caption)  # the line under the low gallery's title
    assert "drawn at random" not in gallery_titles["ra3_high.png"]
    assert out["ra3_low_idx"] == lowest(values, 4, seed=7)[0].tolist()
    assert set(out["ra3_low_idx"]) <= set(range(5, 30)) and out["ra3_low_values"] == [0.0] * 4
    assert out["ra3_high_idx"] == [0, 1, 2, 3]
    open_png(tmp_path / "ra3_low.png")
    # distinct low values: ranked as before, no caption
    out = ra3_report(np.arange(n_train, dtype=float), train_emb, gen_emb, *images, tmp_path, n=4, k=3)
    assert out["ra3_low_idx"] == [0, 1, 2, 3] and out["ra3_low_caption"] == "" and out["ra3_low_n_tied"] == 1


# ---------------------------------------------------------------- RA2 per class (report writer)


class _Pool:
    def __init__(self, labels, class_names):
        self.labels, self.class_names = np.asarray(labels), class_names


class _Valuation:
    """The part of a Valuation that the per-class report reads: pool labels, values, the v1/v2 split."""

    def __init__(self, labels, values, split, class_names=None):
        self.pool, self.values, self.split = _Pool(labels, class_names), np.asarray(values, float), np.asarray(split)

    def side(self, which):
        return np.flatnonzero(self.split == which)


def test_per_class_report_rows_are_keyed_by_class_id(tmp_path):
    from gmv.analysis.per_class import per_class_report

    rng = np.random.default_rng(13)
    labels = np.repeat([0, 2, 5], 20)  # class 5 has one image in X_v2 only: no row
    split = np.tile(["v1"] * 10 + ["v2"] * 10, 3)
    split[40:60] = ["v1"] * 19 + ["v2"]
    values = rng.normal(size=60) + np.where(split == "v1", 2.0, 0.0) * (labels == 2)  # signal in class 2 only
    val = _Valuation(labels, values, split, class_names=["zero", "one", "two"])
    metrics, rows = per_class_report(val, tmp_path, report_class=2)
    assert list(rows) == ["class 0 (zero)", "class 2 (two)"]  # names from the pool; class 5 dropped
    i = (labels == 2) & (split == "v1"), (labels == 2) & (split == "v2")
    t, p = welch_one_sided(values[i[0]], values[i[1]])
    assert metrics["class_2_t_statistic"] == pytest.approx(t) and metrics["class_2_p_value"] == pytest.approx(p)
    assert metrics["per_class_share_p_below_0.01"] == pytest.approx(np.mean([r["p_value"] < 0.01 for r in rows.values()]))
    assert metrics["report_class"] == 2 and "class_0_t_statistic" not in metrics
    assert (tmp_path / "ra2_per_class.csv").read_text().count("\n") == 3  # header + two classes
    named, _ = per_class_report(val, tmp_path, class_names=["a", "b", "c"], report_class=5)
    assert {k for k in named if k.startswith("class_")} == set() and named["report_class"] == 5  # no row for 5
    assert list(per_class_report(val, tmp_path, class_names=["a", "b", "c"])[1])[0] == "class 0 (a)"
    one_label = _Valuation(np.zeros(60, int), values, split)
    assert per_class_report(one_label, tmp_path / "single") == ({}, {})
    only, only_rows = per_class_report(one_label, tmp_path / "single", report_class=0)  # one label: the study's row
    assert only_rows == {} and only["class_0_t_statistic"] == pytest.approx(
        welch_one_sided(values[split == "v1"], values[split == "v2"])[0])
    assert not (tmp_path / "single").exists()


# ---- RA1 read off the match tables (issue 21: large valuations search nothing twice) ------------------

@pytest.mark.parametrize("k,distance", [(1, "l2"), (8, "sqeuclidean")])
def test_nn_distances_from_exact_tables_equal_the_exact_search(k, distance):
    from gmv.analysis.ra1 import nearest_neighbour_distances_from_tables
    from gmv.valuation.matchers import MatcherConfig, match

    rng = np.random.default_rng(21)
    v1, v2 = rng.normal(size=(300, 12)), rng.normal(size=(250, 12))
    gen = np.concatenate([v1[:80] + 0.01 * rng.normal(size=(80, 12)), rng.normal(size=(120, 12))])
    pool = np.concatenate([v1, v2]).astype(np.float32)
    tables = match(pool, gen.astype(np.float32), k, MatcherConfig("flat"), distance=distance)
    exact = nearest_neighbour_distances(gen, v1, v2)
    from_tables = nearest_neighbour_distances_from_tables(gen.astype(np.float32), pool, 300, tables.indices,
                                                          tables.distances, squared=distance == "sqeuclidean")
    # K = 1: every row holds one half only, so the other half is searched for every row
    assert from_tables["nn_rows_searched"] == (200 if k == 1 else from_tables["nn_rows_searched"])
    assert 0 < from_tables["nn_rows_searched"] <= 200
    for key in ("nn_dist_gen_to_v1", "nn_dist_gen_to_v2"):
        assert from_tables[key] == pytest.approx(exact[key], rel=1e-5)
    assert from_tables["nn_share_v1"] == exact["nn_share_v1"]
    assert (from_tables["n_gen"], from_tables["n_v1"], from_tables["n_v2"]) == (200, 300, 250)
