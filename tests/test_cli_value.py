"""`gmv-value` end to end: a planted membership case, its outputs, and every bad input it must refuse early."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gmv.analysis.ra2 import welch_one_sided
from gmv.cli.value import main
from gmv.valuation.methods import default_baselines
from gmv.data import ImageSet, load_images, split_imageset, stratified_split


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """digits split in halves; X̂ = one noisy copy (σ = 20/255) of every X_v1 image."""
    d = tmp_path_factory.mktemp("planted")
    data = load_images("digits")
    v1, v2 = split_imageset(data, stratified_split(data.labels, ratio=0.5, seed=0))
    rng = np.random.default_rng(0)
    noisy = np.clip(v1.images + rng.normal(0, 20, v1.images.shape), 0, 255).astype(np.uint8)
    v1.save_npz(d / "v1.npz")
    v2.save_npz(d / "v2.npz")
    ImageSet(noisy, v1.labels).save_npz(d / "gen.npz")
    return d


def run_cli(planted, out, *extra):
    return main(["--train", str(planted / "v1.npz"), "--held-out", str(planted / "v2.npz"),
                 "--generated", str(planted / "gen.npz"), "--out", str(out), "--wandb", "disabled",
                 "--tsne-cap", "300", "--cache-dir", str(planted / "cache"), *extra])


def test_planted_members_get_the_value(planted, tmp_path, capsys):
    out = tmp_path / "run"
    assert run_cli(planted, out, "--k", "5", "--index", "pq", "--rerank", "50") == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["auroc"] >= 0.95 and m["p_value"] < 0.01
    assert m["mean_value_v1"] > m["mean_value_v2"]
    assert m["sum_values"] == pytest.approx(m["n_generated"])  # every generated point hands out 1
    assert m["recall_at_k"] >= 0.9
    for key in ["k", "n_generated", "n_v1", "n_v2", "t_statistic", "cohens_d", "nn_dist_gen_to_v1",
                "ra3_mean_dist_high", "ra3_mean_dist_low"]:
        assert key in m
    assert m["nn_dist_gen_to_v1"] < m["nn_dist_gen_to_v2"]  # RA1 in numbers
    assert m["ra3_n_ranked"] == m["n_v1"]  # RA3 ranks the training images, as the paper's does
    rows = (out / "values.csv").read_text().splitlines()
    no_reference = default_baselines(has_reference=False)  # the registered default baselines
    assert rows[0] == "index,split,label,value,n_matches,p_value,bh_flag," + ",".join(no_reference)
    # the per-image audit: planted members are flagged, held-out images (the control) are not
    assert m["audit_n_flagged_v1"] > 0.5 * m["n_v1"] and m["audit_n_flagged_v2"] <= 0.05 * m["n_v2"]
    assert m["control_shuffled_p_value"] > 0.01  # shuffled v1/v2 labels: no signal
    assert m["tau_rule"] == "auto" and 0.89 < m["top_credit_mean"] < 0.91
    for name in ("gmvaluator", *no_reference):
        assert m[f"method/{name}/auroc"] > 0.6, name
    assert "gan_leaks" in (out / "methods.md").read_text()
    assert len(rows) - 1 == m["n_v1"] + m["n_v2"]
    tables = np.load(out / "match_tables.npz")
    assert tables["distances"].shape == tables["indices"].shape == (m["n_generated"], 5)
    for f in ["ra1_tsne.png", "ra2_hist.png", "ra2_table.md", "ra2_table.csv", "ra3_high.png", "ra3_low.png"]:
        assert (out / f).stat().st_size > 0, f
    assert "Reject H0" in (out / "ra2_table.md").read_text()
    per_class = list(csv.reader((out / "ra2_per_class.csv").open()))  # ten digit classes, one row each
    assert [r[0] for r in per_class[1:]] == [f"class {c}" for c in range(10)]  # names equal the ids
    assert "class_3_t_statistic" not in m  # no --report-class
    assert "Average value v1" in capsys.readouterr().out


@pytest.fixture(scope="module")
def two_classes(planted, tmp_path_factory):
    """The planted case cut to digits 0 and 1, named "zero" and "one", with two attributes per training
    image: "is a one" (what the pixels show) and a coin flip (what they cannot show), and the digit as its
    identity."""
    d = tmp_path_factory.mktemp("two_classes")
    rng = np.random.default_rng(1)
    z = {name: np.load(planted / f"{name}.npz") for name in ("v1", "v2", "gen")}
    for name in ("v1", "v2", "gen"):
        keep = np.isin(z[name]["labels"], [0, 1])
        images, labels = z[name]["images"][keep], z[name]["labels"][keep]
        attrs = None if name == "gen" else np.stack([labels == 1, rng.random(len(labels)) < 0.5], 1).astype(np.uint8)
        extras = {} if name == "gen" else {"identity": 100 + labels}  # a "person" per digit, as CelebA's identities
        ImageSet(images, labels, class_names=["zero", "one"], attributes=attrs, extras=extras).save_npz(d / f"{name}.npz")
    return d


def test_two_classes_get_per_class_rows_and_attribute_agreement(two_classes, tmp_path, capsys):
    out = tmp_path / "two"
    assert run_cli(two_classes, out, "--k", "5", "--ra3-n", "4", "--report-class", "1") == 0
    m = json.loads((out / "metrics.json").read_text())
    rows = list(csv.DictReader((out / "ra2_per_class.csv").open()))
    assert [r["Setting"] for r in rows] == ["class 0 (zero)", "class 1 (one)"]
    values = list(csv.DictReader((out / "values.csv").open()))
    p_values = []
    for c, row in zip((0, 1), rows):  # each row is the Welch test on that class's values alone
        side = {s: [float(v["value"]) for v in values if v["split"] == s and v["label"] == str(c)] for s in ("v1", "v2")}
        t, p = welch_one_sided(side["v1"], side["v2"])
        assert float(row["t-statistic"]) == pytest.approx(t) and float(row["p-value"]) == pytest.approx(p)
        assert (int(row["n v1"]), int(row["n v2"])) == (len(side["v1"]), len(side["v2"]))
        p_values.append(p)
    assert m["class_1_t_statistic"] == pytest.approx(float(rows[1]["t-statistic"]))
    assert m["class_1_p_value"] == pytest.approx(p_values[1]) and "class_0_t_statistic" not in m
    assert m["class_1_auroc"] > 0.9 and m["class_1_mean_value_v1"] > m["class_1_mean_value_v2"]
    assert m["per_class_share_p_below_0.01"] == np.mean([p < 0.01 for p in p_values])
    # attributes present → RA3 by attributes, for 4 × --ra3-n images a side
    assert m["attr_n"] == 16
    # "is a one" is read off the pixels (the coin flip is not): the probe beats the majority guess
    assert m["attr_probe_accuracy"] > m["attr_probe_majority"] + 0.15
    assert m["attr_agreement_high"] > m["attr_agreement_random"] + 0.1  # matches share "is a one"
    # identities present → RA3 by identity: a digit's nearest other digit is (almost always) the same "person",
    # against a chance of about one half with two persons
    assert m["id_n"] == 16 and m["id_nn_accuracy"] > 0.9 and 0.4 < m["id_nn_chance"] < 0.6
    assert m["id_agreement_high"] > 0.9
    printed = capsys.readouterr().out
    assert "RA2 per class (ra2_per_class.md)" in printed and "class 1: t " in printed
    assert "attribute agreement" in printed and "same person as the top matches' nearest other photo" in printed


def test_paper_setting_and_a_reference_set(planted, tmp_path):
    ref = tmp_path / "ref.npz"
    v2 = np.load(planted / "v2.npz")
    ImageSet(v2["images"][::-1][:200].copy(), v2["labels"][::-1][:200].copy()).save_npz(ref)
    out = tmp_path / "paper"
    assert run_cli(planted, out, "--k", "4", "--paper", "--reference", str(ref), "--tsne-cap", "100") == 0
    m = json.loads((out / "metrics.json").read_text())
    assert (m["tau"], m["distance"], m["tau_rule"]) == (1.0, "sqeuclidean", "given")
    assert "method/gan_leaks_calibrated/auroc" in m
    assert (out / "values.csv").read_text().splitlines()[0].endswith("gan_leaks,gan_leaks_calibrated")


def test_calibrated_baseline_without_reference_is_refused(planted, tmp_path, capsys):
    assert run_cli(planted, tmp_path / "x", "--baselines", "gan_leaks_calibrated") == 2
    assert "needs --reference" in capsys.readouterr().err


def test_second_run_reuses_cached_embeddings(planted, tmp_path):
    from gmv.valuation.api import valuate

    kw = dict(held_out=planted / "v2.npz", k=3, cache_dir=planted / "cache2")
    first = valuate(planted / "v1.npz", planted / "gen.npz", **kw)
    second = valuate(planted / "v1.npz", planted / "gen.npz", **kw)
    assert not any(first.reused.values()) and all(second.reused.values())
    assert np.array_equal(first.values, second.values)


def test_out_is_replaced_whole_never_mixed(planted, tmp_path, monkeypatch):
    """A rerun into an existing --out replaces the folder as a whole; a run that fails in the report
    leaves the old results untouched and no partial folder behind."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "stale.txt").write_text("from an older run")
    assert run_cli(planted, out, "--k", "3") == 0
    assert not (out / "stale.txt").exists() and (out / "values.csv").is_file()
    first = (out / "values.csv").read_text()

    import gmv.analysis.report as report

    def half_written(val, out_dir, audit=None, pool_columns=None):
        (Path(out_dir) / "values.csv").write_text("index,value\n0,1e9\n")  # written, then the report fails
        raise RuntimeError("disk full")

    monkeypatch.setattr(report, "write_value_tables", half_written)
    with pytest.raises(RuntimeError, match="disk full"):
        run_cli(planted, out, "--k", "4")
    assert (out / "values.csv").read_text() == first  # the old results, whole
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no partial folder


def test_out_may_not_hold_the_inputs_or_the_cache(planted, tmp_path, capsys):
    assert main(["--train", str(planted / "v1.npz"), "--generated", str(planted / "gen.npz"),
                 "--out", str(planted), "--wandb", "disabled"]) == 2
    assert "lies inside --out" in capsys.readouterr().err


def _bad_inputs(planted: Path, tmp: Path):
    (tmp / "empty").mkdir()
    (tmp / "broken").mkdir()
    (tmp / "broken" / "a.png").write_bytes(b"not a png at all")
    from PIL import Image

    (tmp / "mixed").mkdir()
    Image.new("RGB", (8, 8)).save(tmp / "mixed" / "a.png")
    Image.new("RGB", (9, 9)).save(tmp / "mixed" / "b.png")
    (tmp / "rgb8").mkdir()
    Image.new("RGB", (8, 8)).save(tmp / "rgb8" / "a.png")
    np.savez(tmp / "noimages.npz", pixels=np.zeros((2, 4, 4, 3), np.uint8))
    v1, gen = str(planted / "v1.npz"), str(planted / "gen.npz")
    return {
        "k larger than the training pool": (["--train", v1, "--generated", gen, "--k", "5000"], "larger than"),
        "PQ m not dividing the dimension": (["--train", v1, "--generated", gen, "--index", "pq", "--pq-m", "7"],
                                            "does not divide"),
        "empty folder": (["--train", str(tmp / "empty"), "--generated", gen], "no images found"),
        "unreadable image": (["--train", str(tmp / "broken"), "--generated", gen], "unreadable image"),
        "npz without images": (["--train", str(tmp / "noimages.npz"), "--generated", gen], "no `images` array"),
        "mixed image shapes": (["--train", str(tmp / "mixed"), "--generated", gen], "different sizes"),
        "train/generated shape mismatch": (["--train", v1, "--generated", str(tmp / "rgb8")],
                                           "give both at one size"),
        "missing file": (["--train", str(tmp / "nope.npz"), "--generated", gen], "not found"),
    }


def test_bad_inputs_fail_early_with_one_line(planted, tmp_path, capsys):
    for case, (argv, msg) in _bad_inputs(planted, tmp_path).items():
        out = tmp_path / f"out-{case.replace(' ', '_')}"
        code = main([*argv, "--out", str(out), "--wandb", "disabled"])
        err = capsys.readouterr().err.strip()
        assert code == 2, case
        assert err.startswith("gmv-value: error:") and msg in err, (case, err)
        assert len(err.splitlines()) == 1, (case, err)
        assert not out.exists(), f"{case}: output folder was created before the input was checked"


def test_console_script_prints_no_traceback(planted):
    exe = Path(sys.executable).with_name("gmv-value")
    if not exe.exists():
        pytest.skip("gmv-value console script not installed in this environment")
    r = subprocess.run([str(exe), "--train", str(planted / "v1.npz"), "--generated", str(planted / "gen.npz"),
                        "--k", "0", "--wandb", "disabled"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "k must be an integer ≥ 1" in r.stderr


def test_a_new_method_the_readme_way_is_a_default_baseline_of_gmv_value(planted, tmp_path, monkeypatch):
    """README, "A new method": one class and one line (register_method) — and gmv-value reports it by default."""
    from gmv.valuation import methods
    from gmv.valuation.methods import KNNCount, MethodResult, register_method

    class NearestOnly(KNNCount):  # one class: credit only the first match of each generated image
        name = "nearest_only"

        def value(self, evidence):
            first = evidence.matches.indices[:, 0]
            counts = np.bincount(first[first >= 0], minlength=evidence.n_pool).astype(np.float64)
            return MethodResult(self.name, counts, evidence.split, {"k": 1})

    monkeypatch.setattr(methods, "METHODS", dict(methods.METHODS))
    register_method("nearest_only", NearestOnly, baseline=True)  # one line
    out = tmp_path / "run"
    assert run_cli(planted, out, "--k", "5") == 0
    header = (out / "values.csv").read_text().splitlines()[0]
    assert header.endswith("knn_count,gan_leaks,nearest_only")
    m = json.loads((out / "metrics.json").read_text())
    assert m["method/nearest_only/auroc"] > 0.9  # every noisy copy's nearest image is its source


def test_quality_weighting_from_a_file_is_named_and_recorded(planted, tmp_path, capsys):
    """--quality file: the first half of X̂ at full score, the second at a quarter → values sum to Σ q_j,
    match_tables.npz holds q, the summary names the weighting."""
    m_gen = len(np.load(planted / "gen.npz")["labels"])
    scores = tmp_path / "scores.csv"
    scores.write_text("quality\n" + "\n".join("8" if j < m_gen // 2 else "2" for j in range(m_gen)) + "\n")
    out = tmp_path / "run"
    assert run_cli(planted, out, "--k", "5", "--quality", "file", "--quality-file", str(scores)) == 0
    m = json.loads((out / "metrics.json").read_text())
    q = np.load(out / "match_tables.npz")["quality"]
    assert q[: m_gen // 2] == pytest.approx(1.0) and q[m_gen // 2:] == pytest.approx(0.25)
    assert m["sum_values"] == pytest.approx(q.sum()) and m["quality_weighting"] == "file"
    assert "quality-weighted credit (file)" in capsys.readouterr().out


def test_unlabelled_generated_images_get_no_c1(two_classes, tmp_path):
    """An unconditional generator's samples carry no class (label −1): C1 (do matches share the sample's class?)
    has nothing to compare and is left out, not reported as 0."""
    z = np.load(two_classes / "gen.npz")
    ImageSet(z["images"], np.full(len(z["images"]), -1)).save_npz(tmp_path / "gen.npz")
    out = tmp_path / "run"
    assert main(["--train", str(two_classes / "v1.npz"), "--held-out", str(two_classes / "v2.npz"),
                 "--generated", str(tmp_path / "gen.npz"), "--out", str(out), "--wandb", "disabled",
                 "--cache-dir", str(tmp_path / "cache"), "--k", "5"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert "c1_at_1" not in m and not (out / "c1_per_class.csv").exists()
    assert "auroc" in m  # the rest of the report is there
