"""Training-set edits (gmv/data/edit.py): every addition kind on a tiny set, its record, caching by content,
bad settings stopping before training, and a whole study with an addition."""

import csv
import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from gmv.data.edit import KINDS, apply_edit, corrupt, parse_additions
from gmv.data.imageset import ImageSet
from gmv.data.split import Split, split_imageset, stratified_split
from gmv.errors import GmvError

ROOT = Path(__file__).resolve().parents[1]
GMV = Path(sys.executable).parent / "gmv"


def tiny_data(n_classes: int = 3, per_class: int = 12, side: int = 8) -> ImageSet:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(n_classes), per_class)
    images = rng.integers(0, 256, (len(labels), side, side, 1), dtype=np.uint8)
    return ImageSet(images, labels, class_names=[f"c{i}" for i in range(n_classes)], name="tiny")


def edited(additions, data=None, classes=None, **options):
    data = tiny_data() if data is None else data
    split = stratified_split(data.labels, classes=classes, per_class_limit=6, seed=1)  # 3 + 3 per class
    v1, _ = split_imageset(data, split)
    return data, split, v1, apply_edit(data, split, v1, parse_additions(additions), **options)


def test_each_kind_adds_its_count_with_its_record():
    for kind in KINDS:
        extra = {"source": "photos"} if kind == "ood" else {}
        data, split, v1, e = edited([{"kind": kind, "count": 4, "seed": 2, **extra}], image_size=8)
        assert len(e.v1) == len(v1) + 4, kind
        assert np.array_equal(e.v1.images[:len(v1)], v1.images)  # the originals first, unchanged
        assert list(e.kind) == [""] * len(v1) + [kind] * 4
        assert set(e.v1.labels[len(v1):]) <= set(np.unique(v1.labels))  # every added label is an X_v1 class
        rec = e.record()
        assert list(rec["added_kind"]) == [kind] * 4 and len(rec["added_index"]) == 4
        cols = e.pool_columns(n_v2=5)
        assert len(cols["added"]) == len(e.v1) + 5 and list(cols["added"][-5:]) == [""] * 5


def test_duplicates_are_exact_copies_and_outside_images_come_from_neither_half():
    data, split, v1, e = edited([{"kind": "duplicate", "count": 3}, {"kind": "clean", "count": 3},
                                 {"kind": "mislabel", "count": 3}, {"kind": "corrupt", "count": 3}])
    n = len(v1)
    dup = slice(n, n + 3)
    src = e.source_index[dup]
    assert np.isin(src, split.v1).all()  # dataset indices of X_v1 images
    assert np.array_equal(e.v1.images[dup], data.images[src]) and np.array_equal(e.v1.labels[dup], data.labels[src])
    outside = e.source_index[n + 3:]
    assert len(set(outside)) == 9 and not np.isin(outside, np.concatenate([split.v1, split.v2])).any()
    assert np.array_equal(np.sort(outside), e.outside)
    clean = slice(n + 3, n + 6)
    assert np.array_equal(e.v1.images[clean], data.images[e.source_index[clean]])
    mis = slice(n + 6, n + 9)
    assert (e.v1.labels[mis] != e.true_label[mis]).all() and np.array_equal(e.true_label[mis],
                                                                            data.labels[e.source_index[mis]])
    cor = slice(n + 9, n + 12)
    assert not np.array_equal(e.v1.images[cor], data.images[e.source_index[cor]])  # damaged
    assert np.array_equal(e.v1.labels[cor], data.labels[e.source_index[cor]])


def test_fraction_rounds_half_up_and_seeds_decide_the_draw():
    _, _, v1, e = edited([{"kind": "duplicate", "fraction": 0.25}])  # 9 X_v1 images → 2.25 → 2
    assert int(e.added.sum()) == 2
    a = edited([{"kind": "noise", "count": 2, "seed": 5}])[3]
    b = edited([{"kind": "noise", "count": 2, "seed": 5}])[3]
    c = edited([{"kind": "noise", "count": 2, "seed": 6}])[3]
    assert np.array_equal(a.v1.images, b.v1.images) and not np.array_equal(a.v1.images, c.v1.images)


def test_ood_from_the_study_s_own_other_classes():
    data, split, v1, e = edited([{"kind": "ood", "count": 3}], classes=[0])
    added = e.source_index[e.added]
    assert (data.labels[added] != 0).all() and (e.v1.labels[e.added] == 0).all()


def test_corruptions_damage_each_image_their_way():
    rng = np.random.default_rng(0)
    img = np.full((3, 16, 16, 1), 40, np.uint8)
    img[:, 4:12, 4:12] = 220
    out = corrupt(img, ["noise", "blur", "jpeg"], rng)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert np.abs(out[0].astype(int) - img[0]).mean() > 30  # σ = 80 noise
    assert out[1].max() < 210 and out[1].std() < 0.8 * img[1].std()  # σ = 2 px blur: the square's edges spread
    assert out[1].mean() == pytest.approx(img[1].mean(), abs=1)  # blurring keeps the mean (reflected borders)
    assert not np.array_equal(out[2], img[2])


@pytest.mark.parametrize("spec, message", [
    ([{"kind": "copy", "count": 1}], "unknown kind 'copy'"),
    ([{"kind": "duplicate", "fraction": 1.5}], "fraction must be a share of X_v1 in (0, 1]"),
    ([{"kind": "duplicate"}], "exactly one of fraction"),
    ([{"kind": "noise", "count": 0}], "count must be an integer ≥ 1"),
    ([{"kind": "clean", "count": 1, "source": "photos"}], "`source` applies to kind ood only"),
    ([{"kind": "corrupt", "count": 1, "corruption": "rain"}], "corruption must be one of"),
])
def test_bad_settings_are_one_line(spec, message):
    with pytest.raises(GmvError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        parse_additions(spec)


def test_settings_that_need_the_data_fail_before_training():
    with pytest.raises(GmvError, match="X_v1 has one class"):
        edited([{"kind": "mislabel", "count": 1}], classes=[0])
    with pytest.raises(GmvError, match="unconditional"):
        edited([{"kind": "mislabel", "count": 1}], conditional=False)
    with pytest.raises(GmvError, match="every class of the data"):
        edited([{"kind": "ood", "count": 1}])
    with pytest.raises(GmvError, match="gives 32×32×1 images, X_v1 is 8×8×1"):
        edited([{"kind": "ood", "count": 1, "source": "photos"}])  # no data.image_size: sizes differ
    with pytest.raises(GmvError, match="only 18 are available"):
        edited([{"kind": "clean", "count": 19}])  # 36 images − 18 in the halves


def test_the_edited_set_is_cached_by_content():
    from gmv.cache import array_digest

    a = edited([{"kind": "noise", "count": 2, "seed": 1}])[3].v1
    b = edited([{"kind": "noise", "count": 2, "seed": 1}])[3].v1
    c = edited([{"kind": "noise", "count": 2, "seed": 2}])[3].v1
    assert array_digest(a.images, a.labels) == array_digest(b.images, b.labels)
    assert array_digest(a.images, a.labels) != array_digest(c.images, c.labels)


def test_a_study_with_an_addition_records_it_everywhere(tmp_path):
    from tests.test_pipeline import TINY, cfg_of
    from gmv.pipeline import run_study

    cfg = cfg_of(*TINY, "data.addition=[{kind: duplicate, count: 3}]",
                 f"cache_dir={tmp_path / 'cache'}")
    metrics = run_study(cfg, tmp_path / "run")
    split = np.load(tmp_path / "run" / "split.npz")
    assert list(split["added_kind"]) == ["duplicate"] * 3 and np.isin(split["added_index"], split["v1"]).all()
    with open(tmp_path / "run" / "values.csv") as f:
        rows = list(csv.DictReader(f))
    n_v1 = len(split["v1"])
    assert [r["added"] for r in rows].count("duplicate") == 3 and metrics["n_v1"] == n_v1 + 3
    assert all(r["added"] == "duplicate" for r in rows[n_v1:n_v1 + 3])
    assert [int(r["added_index"]) for r in rows[n_v1:n_v1 + 3]] == list(split["added_index"])
    assert metrics["n_added"] == 3 and metrics["n_added/duplicate"] == 3
    # an unknown kind stops the app before training, in one line, exit 2
    r = subprocess.run([str(GMV), *TINY, "addition=duplicate", "data.addition.0.kind=copy",
                        f"hydra.run.dir={tmp_path / 'bad'}", f"cache_dir={tmp_path / 'cache'}"],
                       capture_output=True, text=True, cwd=ROOT, env={**__import__("os").environ,
                                                                      "WANDB_MODE": "disabled"})
    assert r.returncode == 2 and "unknown kind 'copy'" in r.stderr and not (tmp_path / "cache" / "bad").exists()
    assert len([line for line in r.stderr.splitlines() if line.strip()]) == 1


def _fake_job(folder: Path, seed: int, kind: str | None, added_values, clean_values, v2_values):
    """A finished job folder as the study writes it: overrides, config (with the hypotheses), metrics, values.csv."""
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(f"- seed={seed}\n- addition={kind or 'none'}\n")
    (folder / "config.yaml").write_text("addition_hypotheses:\n  duplicate: above\n  noise: below\n  clean: equal\n")
    n_added = len(added_values) if kind else 0
    (folder / "metrics.json").write_text(json.dumps({"n_added": n_added, "fd_embedding": 2.0,
                                                     "fd_embedding_v2_vs_v1": 1.0, "c1_at_5": 0.9}))
    rows = ([("v1", v, "") for v in clean_values] + [("v1", v, kind) for v in (added_values if kind else [])]
            + [("v2", v, "") for v in v2_values])
    lines = ["index,split,label,value,n_matches,added,added_source,added_index"]
    lines += [f"{i},{s},0,{v},1,{k},,{-1}" for i, (s, v, k) in enumerate(rows)]
    (folder / "values.csv").write_text("\n".join(lines) + "\n")


def test_the_addition_report_checks_each_hypothesis_against_known_values(tmp_path):
    from gmv.analysis.sweep import write_sweep_report

    rng = np.random.default_rng(0)
    clean = lambda: rng.uniform(1, 2, 40)  # noqa: E731
    v2 = lambda: rng.uniform(0, 1, 40)  # noqa: E731
    job = 0
    for seed in (0, 1):
        _fake_job(tmp_path / str(job), seed, None, [], clean(), v2())
        _fake_job(tmp_path / str(job + 1), seed, "duplicate", rng.uniform(3, 4, 10), clean(), v2())  # far above
        _fake_job(tmp_path / str(job + 2), seed, "noise", np.zeros(10), clean(), v2())  # far below
        _fake_job(tmp_path / str(job + 3), seed, "clean", rng.uniform(1, 2, 10), clean(), v2())  # alike
        job += 4
    written = write_sweep_report(tmp_path)
    with open(written["addition.csv"]) as f:
        pooled = {r["kind"]: r for r in csv.DictReader(f) if r["level"] == "pooled"}
    assert pooled["duplicate"]["held"] == "held" and float(pooled["duplicate"]["auroc_vs_clean"]) == 1.0
    assert pooled["noise"]["held"] == "held" and float(pooled["noise"]["auroc_vs_clean"]) == 0.0
    assert pooled["clean"]["held"].startswith("held (no difference")
    assert int(pooled["duplicate"]["n_added"]) == 20 and pooled["duplicate"]["seeds"] == "2"
    assert float(pooled["duplicate"]["fd_ratio_mean"]) == 2.0
    md = written["addition.md"].read_text()
    assert "Reference runs without additions (2: seeds 0, 1)" in md and written["addition_values.png"].is_file()


# --------------------------------------------------------------------------- subsets (counterfactual retraining)

from gmv.data.edit import parse_subset, subset_rows  # noqa: E402


def test_subset_keep_drop_and_random_rules():
    data, split, v1, _ = edited([])
    e = apply_edit(data, split, v1, (), parse_subset({"drop": [int(split.v1[0]), int(split.v1[4])]}))
    assert len(e.v1) == len(v1) - 2 and list(e.dropped) == sorted([split.v1[0], split.v1[4]])
    assert np.array_equal(e.v1.images, v1.images[[i for i in range(len(v1)) if i not in (0, 4)]])
    assert np.array_equal(e.sampling_labels, v1.labels)  # X̂'s class mix: X_v1 before removals
    e = apply_edit(data, split, v1, (), parse_subset({"keep": [int(i) for i in split.v1[:3]]}))
    assert np.array_equal(e.v1.images, v1.images[:3]) and len(e.dropped) == len(v1) - 3
    a = subset_rows(parse_subset({"rule": "random", "r": 4, "seed": 1}), split, v1)
    b = subset_rows(parse_subset({"rule": "random", "r": 4, "seed": 1}), split, v1)
    c = subset_rows(parse_subset({"rule": "random", "r": 4, "seed": 2}), split, v1)
    assert len(a) == len(v1) - 4 and np.array_equal(a, b) and not np.array_equal(a, c)
    both = apply_edit(data, split, v1, parse_additions([{"kind": "noise", "count": 2}]),
                      parse_subset({"drop": [int(split.v1[1])]}))
    assert len(both.v1) == len(v1) - 1 + 2 and list(both.kind[-2:]) == ["noise", "noise"]
    assert list(both.record()["dropped"]) == [split.v1[1]]


def test_subset_by_a_ranking_drops_its_top_or_bottom(tmp_path):
    data, split, v1, _ = edited([])
    values = np.arange(len(v1), dtype=float)[::-1]  # X_v1 row 0 has the highest value, the last row the lowest
    lines = ["index,split,label,value,knn_count"] + [f"{i},v1,{v1.labels[i]},{values[i]},{i % 3}" for i in range(len(v1))]
    lines += [f"{len(v1)},v2,0,5.0,1"]
    (tmp_path / "values.csv").write_text("\n".join(lines) + "\n")
    top = subset_rows(parse_subset({"rule": "top", "r": 2, "ranking": str(tmp_path / "values.csv")}), split, v1)
    bottom = subset_rows(parse_subset({"rule": "bottom", "r": 2, "ranking": str(tmp_path / "values.csv")}), split, v1)
    assert list(top) == list(range(2, len(v1))) and list(bottom) == list(range(len(v1) - 2))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a cut the ranking decides: no warning
        subset_rows(parse_subset({"rule": "top", "r": 2, "ranking": str(tmp_path / "values.csv")}), split, v1)
    n_twos = sum(i % 3 == 2 for i in range(len(v1)))
    with pytest.warns(UserWarning, match=f"only 0 X_v1 image.s. score above 2 .* 1 are taken in X_v1's order from "
                                         f"{n_twos} tied"):
        by_count = subset_rows(parse_subset({"rule": "top", "r": 1, "ranking": str(tmp_path / "values.csv"),
                                             "column": "knn_count"}), split, v1)
    assert 2 not in by_count and len(by_count) == len(v1) - 1  # the first row with count 2 (ties: X_v1 order)
    with pytest.warns(UserWarning, match=f"only {n_twos} X_v1 image.s. score above 1 "):
        subset_rows(parse_subset({"rule": "top", "r": n_twos + 1, "ranking": str(tmp_path / "values.csv"),
                                  "column": "knn_count"}), split, v1)
    (tmp_path / "short.csv").write_text("\n".join(lines[:-3]) + "\n")
    with pytest.raises(GmvError, match="not this study's"):
        subset_rows(parse_subset({"rule": "top", "r": 1, "ranking": str(tmp_path / "short.csv")}), split, v1)


@pytest.mark.parametrize("spec, message", [
    ({"keep": [1], "drop": [2]}, "exactly one of keep"),
    ({"rule": "middle", "r": 2}, "rule must be one of"),
    ({"rule": "random"}, "r must be an integer ≥ 1"),
    ({"rule": "top", "r": 2}, "needs `ranking`"),
    ({"drop": ["a"]}, "dataset indices"),
    ({"drop": [1], "size": 3}, "unknown setting"),
    ({"rule": "random", "r": 2, "target": 0}, "data.subset.target ranks by one generated image"),
    ({"rule": "top", "r": 2, "ranking": "values.csv", "target": 0}, "the folder of a finished study run"),
    ({"rule": "top", "r": 2, "ranking": "/", "target": -1}, "integer ≥ 0"),
])
def test_bad_subsets_are_one_line(spec, message):
    with pytest.raises(GmvError, match=message.replace("(", r"\(")):
        parse_subset(spec)


def test_retrains_on_subsets_are_paired(tmp_path):
    """Two retrains of one subset give identical samples; another subset changes the images but not the
    labels X̂ asks for (the same noise and labels: sample j of one model is paired with sample j of the other)."""
    from tests.test_pipeline import TINY, cfg_of
    from gmv.pipeline import run_study

    def run(name, subset, cache):
        run_study(cfg_of(*TINY, f"data.subset={subset}", f"cache_dir={tmp_path / cache}"), tmp_path / name)
        z = np.load(tmp_path / name / "samples.npz")
        return z["images"], z["labels"], np.load(tmp_path / name / "split.npz")

    a1, la1, split_a = run("a1", "{rule: random, r: 5, seed: 1}", "c1")
    a2, la2, _ = run("a2", "{rule: random, r: 5, seed: 1}", "c2")
    b, lb, split_b = run("b", "{rule: random, r: 5, seed: 2}", "c1")
    assert np.array_equal(a1, a2) and np.array_equal(la1, la2)
    assert np.array_equal(la1, lb) and not np.array_equal(a1, b)
    assert len(split_a["dropped"]) == 5 and not np.array_equal(split_a["dropped"], split_b["dropped"])
