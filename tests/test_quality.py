"""Quality-weighted credit (gmv/valuation/quality.py): the realism score by hand, values summing to Σ q_j,
per-sample scores from a file, and the planted control — corrupted samples hand out less credit."""

from pathlib import Path

import numpy as np
import pytest

from gmv.errors import GmvError
from gmv.valuation.matchers import MatcherConfig, match
from gmv.valuation.methods import Evidence, GMValuator
from gmv.valuation.quality import FileQuality, RealismQuality, build_quality, realism_scores


def evidence(pool, gen, split, k=3):
    pool, gen = np.asarray(pool, np.float32), np.asarray(gen, np.float32)
    return Evidence(pool, gen, np.asarray(split), match(pool, gen, k, MatcherConfig(kind="flat"), announce=False))


def test_realism_score_by_hand():
    # 1-D reals 0, 1, 2, 10 with k = 1: radii 1, 1, 1, 8; the half with the largest radii is dropped, which
    # keeps the three radius-1 points (the median radius is 1). R(x̂) = max_i r_i / |x̂ − x_i|:
    #   x̂ = 0.5 → max(1/0.5, 1/0.5, 1/1.5) = 2;  x̂ = 4 → 1/2;  x̂ = 5 → 1/3;  x̂ = 10 → 1/8 (10 was dropped)
    real = np.array([[0.0], [1.0], [2.0], [10.0]])
    scores, certified = realism_scores(real, np.array([[0.5], [4.0], [5.0], [10.0]]), k=1)
    assert scores == pytest.approx([2.0, 0.5, 1 / 3, 1 / 8])
    assert certified == 1.0
    q = RealismQuality(k=1).weights(evidence(real, [[0.5], [4.0], [5.0], [10.0]], ["v1"] * 4, k=1))
    assert q == pytest.approx([1.0, 0.5, 1 / 3, 1 / 8])  # q = min(1, R)


def test_realism_with_few_candidates_is_exact_where_certified():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(400, 4)), rng.normal(size=(50, 4)) * 1.5
    exact, _ = realism_scores(real, fake, k=3)
    approx, certified = realism_scores(real, fake, k=3, candidates=20)
    assert (approx <= exact + 1e-9).all()  # a lower bound always
    ok = np.isclose(approx, exact)
    assert certified > 0 and ok.mean() >= certified  # certified rows are exact


def test_values_sum_to_the_quality_mass_and_none_is_the_paper():
    rng = np.random.default_rng(1)
    pool, gen = rng.normal(size=(40, 3)), rng.normal(size=(30, 3))
    ev = evidence(pool, gen, ["v1"] * 20 + ["v2"] * 20)
    plain = GMValuator(k=3).value(ev)
    assert plain.values.sum() == pytest.approx(30) and "quality" not in plain.arrays
    weighted = GMValuator(k=3, quality="realism").value(ev)
    q = weighted.arrays["quality"]
    assert weighted.values.sum() == pytest.approx(q.sum()) and (0 < q).all() and (q <= 1).all()
    assert weighted.arrays["credit"].sum(axis=1) == pytest.approx(q)  # each row hands out q_j


def test_scores_from_a_file(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("quality\n2\n4\n1\n")
    ev = evidence(np.eye(3), np.eye(3), ["v1", "v1", "v2"], k=1)
    assert FileQuality(path).weights(ev) == pytest.approx([0.5, 1.0, 0.25])  # divided by the maximum
    path.write_text("quality\n2\n4\n")
    with pytest.raises(GmvError, match="2 rows for 3 generated images"):
        FileQuality(path).weights(ev)
    path.write_text("score\n1\n")
    with pytest.raises(GmvError, match="no 'quality' column"):
        FileQuality(path)
    path.write_text("quality\n-1\n1\n")
    with pytest.raises(GmvError, match="≥ 0"):
        FileQuality(path)
    with pytest.raises(GmvError, match="needs the CSV"):
        build_quality("file")
    with pytest.raises(GmvError, match="unknown quality weighting 'iqa'"):
        build_quality("iqa")


def test_planted_corrupted_samples_hand_out_less_credit():
    """X̂: near-copies of X_v1 points, 40% of them replaced by corrupted samples (far off the real manifold,
    nearest to arbitrary pool points). Realism weighting must take most of their credit away, and RA2 on
    the clean part must be at least as strong as without it."""
    from gmv.analysis.membership import auroc

    rng = np.random.default_rng(2)
    pool = rng.normal(size=(200, 8))
    split = np.array(["v1"] * 100 + ["v2"] * 100)
    src = rng.integers(0, 100, 300)
    gen = pool[src] + rng.normal(0, 0.05, (300, 8))
    bad = rng.random(300) < 0.4
    gen[bad] = rng.normal(0, 1, (int(bad.sum()), 8)) * 4  # corrupted: far from every real image
    ev = evidence(pool, gen, split, k=5)
    plain, weighted = GMValuator(k=5).value(ev), GMValuator(k=5, quality="realism").value(ev)
    q = weighted.arrays["quality"]
    assert q[bad].mean() < 0.5 * q[~bad].mean()
    handed = weighted.arrays["credit"].sum(axis=1)
    assert handed[bad].sum() / bad.sum() < 0.5 * handed[~bad].sum() / (~bad).sum()
    a_plain = auroc(plain.side("v1"), plain.side("v2"))
    a_weighted = auroc(weighted.side("v1"), weighted.side("v2"))
    assert a_weighted >= a_plain


def test_the_planted_quality_control_on_images(tmp_path):
    """The control study's machinery on digits: X̂ = noisy copies of X_v1, a share of them corrupted; the
    realism-weighted corrupted samples must hand out less than the intact ones, unweighted ones exactly 1."""
    from gmv.analysis.quality_control import corrupt_samples, quality_control, write_quality_control
    from gmv.data import load_images, split_imageset, stratified_split
    from gmv.data.imageset import ImageSet
    from gmv.valuation.api import valuate

    data = load_images("digits", image_size=8)
    v1, v2 = split_imageset(data, stratified_split(data.labels, per_class_limit=16, seed=0))
    rng = np.random.default_rng(0)
    gen = ImageSet(np.clip(v1.images[rng.integers(0, len(v1), 200)] + rng.normal(0, 8, (200, 8, 8, 1)), 0,
                           255).astype(np.uint8), None)
    damaged = corrupt_samples(gen, 0.3, seed=1)
    assert damaged.extras["corrupted"].sum() == 60
    assert np.array_equal(damaged.images[~damaged.extras["corrupted"]], gen.images[~damaged.extras["corrupted"]])
    plain, weighted = GMValuator(k=3), GMValuator(k=3, quality="realism")

    def value_fn(x):
        val = valuate(v1, x, matcher="flat", held_out=v2, method=plain, baselines=[weighted])
        return {"none": val.methods[plain.name], "realism": val.methods[weighted.name]}

    rows = quality_control(v1, v2, gen, [0.0, 0.3], [0], value_fn, progress=False)
    by = {(r["fraction"], r["weighting"]): r for r in rows}
    assert by[(0.3, "none")]["credit_per_corrupted"] == pytest.approx(1.0)
    # in 64-d pixels of a 320-image pool the realism score penalises noise most, blur and JPEG little (q ≈ 0.75 /
    # 0.84 / 0.91 against 0.90 intact, measured): the corrupted samples hand out less, not much less
    assert by[(0.3, "realism")]["credit_per_corrupted"] < by[(0.3, "realism")]["credit_per_intact"] < 1.0
    assert np.isnan(by[(0.0, "none")]["credit_per_corrupted"])
    summary = write_quality_control(rows, tmp_path)
    assert len(summary) == 4 and (tmp_path / "quality_control.png").is_file()
    assert "credit / corrupted sample" in (tmp_path / "quality_control.md").read_text()


def test_brisque_scores_for_the_file_weighting(tmp_path, monkeypatch):
    """The worked IQA example's plumbing (scripts/iqa_scores.py) on stand-in SVR weights: one score per image,
    in the `quality` column of a CSV; without the weights file, one line naming it and no download."""
    pytest.importorskip("piq")
    import subprocess
    import sys

    import torch

    from gmv.valuation.quality import BRISQUE_WEIGHTS, brisque_quality

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "torch" / "hub"))  # restored after the test
    images = np.random.default_rng(0).integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    with pytest.raises(GmvError, match=BRISQUE_WEIGHTS):
        brisque_quality(images)
    (tmp_path / "torch" / "hub" / "checkpoints").mkdir(parents=True)
    # one support vector with coefficient −100: score = 153.591 − 100·rbf ∈ [53.6, 153.6] → 100 − score ∈ [0, 46.4]
    torch.save((torch.tensor([-100.0]), torch.zeros(1, 36)), tmp_path / "torch" / "hub" / "checkpoints" / BRISQUE_WEIGHTS)
    q = brisque_quality(images)
    assert q.shape == (6,) and (q >= 0).all() and (q <= 46.41).all()
    np.savez(tmp_path / "samples.npz", images=images, labels=np.zeros(6, np.int64))
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run([sys.executable, str(root / "scripts" / "iqa_scores.py"), str(tmp_path / "samples.npz"),
                        "--out", str(tmp_path / "q.csv")], capture_output=True, text=True,
                       env={**__import__("os").environ, "TORCH_HOME": str(tmp_path / "torch")})
    assert r.returncode == 0, r.stderr
    rows = (tmp_path / "q.csv").read_text().split()
    assert rows[0] == "quality" and len(rows) == 7 and all(float(v) >= 0 for v in rows[1:])
