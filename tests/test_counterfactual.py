"""Counterfactual removal read out (gmv/analysis/counterfactual.py) on planted data: removing the images that
planted copies came from moves exactly those copies; removing random images moves nothing the report credits."""

import numpy as np
import pytest

from gmv.analysis.counterfactual import (affected_targets, near_copy_threshold, paired_shift, removal_effect,
                                         removed_reproduction)
from gmv.errors import GmvError
from gmv.valuation.matchers import MatcherConfig, match
from gmv.valuation.methods import Evidence, GMValuator


def planted(seed=0):
    """Pool 100 / 100; X̂ = 150 near-copies of 30 X_v1 images (5 each) + 150 fresh points."""
    rng = np.random.default_rng(seed)
    pool = rng.normal(size=(200, 6))
    sources = rng.choice(100, 30, replace=False)
    copies = pool[np.repeat(sources, 5)] + rng.normal(0, 0.02, (150, 6))
    gen = np.concatenate([copies, rng.normal(size=(150, 6))])
    return rng, pool, sources, gen


def test_removing_the_sources_moves_their_copies_and_random_removal_does_not():
    rng, pool, sources, gen = planted()
    ev = Evidence(pool.astype(np.float32), gen.astype(np.float32), np.array(["v1"] * 100 + ["v2"] * 100),
                  match(pool, gen, 5, MatcherConfig(kind="flat"), announce=False))
    attributions = GMValuator(k=5).attribute(ev)
    # the retrained generator: without 10 of the sources, their copies become fresh points; the rest unchanged
    gone = sources[:10]
    gen_cf = gen.copy()
    moved = np.isin(np.repeat(sources, 5), gone)
    gen_cf[:150][moved] = rng.normal(size=(int(moved.sum()), 6))
    removed = np.zeros(200, bool)
    removed[gone] = True
    shift = paired_shift(gen, gen_cf)
    hit = affected_targets(attributions, removed, top=1)
    assert np.array_equal(hit[:150], moved)  # every copy of a removed source, and no other copy
    assert hit[150:].mean() < 0.15  # fresh points credit some removed image only by chance (≈ 10 of 200)
    effect = removal_effect(shift, hit, n_boot=300)
    assert effect["auroc"] > 0.8 and effect["shift_diff_ci_low"] > 0 and effect["p_value"] < 1e-6
    # a random removal of 10 other X_v1 images: their copies (if any) did not move
    others = np.setdiff1d(np.arange(100), gone)
    random_removed = np.zeros(200, bool)
    random_removed[rng.choice(others, 10, replace=False)] = True
    effect_random = removal_effect(shift, affected_targets(attributions, random_removed, top=1), n_boot=300)
    assert effect_random.get("auroc", 0.0) < 0.6
    threshold = near_copy_threshold(gen, pool[100:], q=0.05)
    before, after = removed_reproduction(gen, pool[gone], threshold), removed_reproduction(gen_cf, pool[gone], threshold)
    assert before["near_copies"] == 10 and after["near_copies"] <= 2  # only chance neighbours left
    assert after["nn_distance_mean"] > before["nn_distance_mean"]


def test_bad_inputs_are_refused():
    with pytest.raises(GmvError, match="one shape"):
        paired_shift(np.zeros((3, 2)), np.zeros((4, 2)))
    with pytest.raises(GmvError, match="removal mask"):
        affected_targets(np.zeros((3, 5)), np.zeros(4, bool))
    assert "note" in removal_effect(np.ones(3), np.array([True, False, False]))


def test_a_retrain_on_a_subset_measures_its_outputs_on_a_base_run_s_targets(tmp_path):
    """control.kind=model_output: a base study's X̂ as targets, a retrain without 5 X_v1 images, its outputs in
    outputs.npz; no X̂ of its own is drawn; missing targets stop it before training."""
    from tests.test_pipeline import TINY, cfg_of
    from gmv.pipeline import run_study

    tiny = [*TINY, "generator=cfg_diffusion", "generator.batch_size=8", "data.image_size=8", "generate.m=12"]
    run_study(cfg_of(*tiny, f"cache_dir={tmp_path / 'c'}"), tmp_path / "base")
    control = (f"+control={{kind: model_output, targets: {tmp_path / 'base' / 'samples.npz'}, n_targets: 6, "
               "timesteps: 2}")
    m = run_study(cfg_of(*tiny, control, "data.subset={rule: random, r: 5}", f"cache_dir={tmp_path / 'c'}"),
                  tmp_path / "retrain")
    out = np.load(tmp_path / "retrain" / "outputs.npz")["outputs"]
    assert out.shape == (6,) and np.isfinite(out).all() and (out < 0).all() and m["n_targets"] == 6
    assert not (tmp_path / "retrain" / "samples.npz").exists()
    assert len(np.load(tmp_path / "retrain" / "split.npz")["dropped"]) == 5
    with pytest.raises(GmvError, match="control.targets must be a base run's samples.npz"):
        run_study(cfg_of(*tiny, "+control={kind: model_output, targets: /nowhere.npz, n_targets: 6, timesteps: 2}",
                         f"cache_dir={tmp_path / 'c'}"), tmp_path / "bad")


def test_the_counterfactual_report_of_a_sweep_of_retrains(tmp_path):
    """A base study and retrains without its top-ranked, random and one target's top-attributed X_v1 images,
    each drawing its own paired X̂'; gmv-report --base reads every one against the base: shifts, the comparison
    with the random removal of the same r, removed images' near-copies, the target's shift percentile."""
    import csv
    import os
    import subprocess
    import sys
    from pathlib import Path

    from gmv.analysis.counterfactual_read import load_base
    from gmv.data.subset import parse_subset, subset_rows
    from gmv.pipeline import stages
    from gmv.valuation.run_attributions import run_attributions

    root = Path(__file__).resolve().parents[1]
    bin_dir = Path(sys.executable).parent
    tiny = ["experiment=smoke", "logger.mode=disabled", "train.max_iterations=2", "generator=cfg_diffusion",
            "generator.batch_size=4", "data.image_size=8", "data.split.per_class_limit=3", "generate.m=10",
            "valuation.k=2", "valuation.tsne_cap=30", "valuation.ra3_n=2", "valuation.reference_size=0",
            f"cache_dir={tmp_path / 'c'}"]
    env = {**os.environ, "WANDB_MODE": "disabled"}
    base = tmp_path / "base"
    r = subprocess.run([str(bin_dir / "gmv"), *tiny, f"hydra.run.dir={base}"], capture_output=True, text=True,
                       env=env, cwd=root)
    assert r.returncode == 0, r.stderr[-2000:]
    removals = [f"data.subset={{rule: top, r: 2, ranking: {base / 'values.csv'}}}",
                f"data.subset={{rule: top, r: 2, ranking: {base / 'values.csv'}, column: knn_count}}",
                "data.subset={rule: random, r: 2}",
                f"data.subset={{rule: top, r: 1, ranking: {base}, target: 3}}"]
    for i, removal in enumerate(removals):
        r = subprocess.run([str(bin_dir / "gmv"), *tiny, removal, f"hydra.run.dir={tmp_path / 'sweep' / str(i)}"],
                           capture_output=True, text=True, env=env, cwd=root)
        assert r.returncode == 0, r.stderr[-2000:]
    # the target removal dropped exactly the image generated image 3 is most attributed to (GMValuator's credit)
    attributions, _ = run_attributions(base, 4)
    cfg = __import__("omegaconf").OmegaConf.load(base / "config.yaml")
    split, v1, _ = stages.split_data(stages.load_data(cfg.data), cfg.data.split)
    kept = subset_rows(parse_subset({"rule": "top", "r": 1, "ranking": str(base), "target": 3}), split, v1)
    dropped = np.load(tmp_path / "sweep" / "3" / "split.npz")["dropped"]
    assert list(dropped) == [split.v1[int(np.argmax(attributions["gmvaluator"][3]))]]
    assert len(kept) == len(split.v1) - 1
    r = subprocess.run([str(bin_dir / "gmv-report"), str(tmp_path / "sweep")], capture_output=True, text=True,
                       env=env, cwd=root)
    assert r.returncode == 2 and "--base" in r.stderr
    r = subprocess.run([str(bin_dir / "gmv-report"), str(tmp_path / "sweep"), "--base", str(base)],
                       capture_output=True, text=True, env=env, cwd=root)
    assert r.returncode == 0, r.stderr[-2000:]
    with open(tmp_path / "sweep" / "report" / "counterfactual.csv") as f:
        rows = {row["job"].split("/")[1]: row for row in csv.DictReader(f)}
    assert [rows[str(i)]["method"] for i in range(4)] == ["gmvaluator", "knn_count", "random", "gmvaluator"]
    b = load_base(base)
    for i, row in ((int(k), v) for k, v in rows.items()):  # the shift read by hand: the paired X̂ and X̂' in the base's pixel embedding
        gen_cf = np.load(tmp_path / "sweep" / str(i) / "samples.npz")["images"].reshape(10, -1).astype(np.float64)
        manual = np.linalg.norm(b.gen_emb.astype(np.float64) - gen_cf / 255.0, axis=1).mean()
        assert float(row["shift_mean"]) == pytest.approx(manual, rel=1e-4)
    assert rows["3"]["target"] == "3" and 0 <= float(rows["3"]["target_percentile"]) <= 1
    md = (tmp_path / "sweep" / "report" / "counterfactual.md").read_text()
    assert "vs random" in md and "Per target" in md and (tmp_path / "sweep" / "report" / "counterfactual.png").is_file()
    assert not list((tmp_path / "sweep" / "report").glob("sweep_*.png"))  # no generic per-parameter figures of retrains

    # --lds joins an LDS report (its lds.csv) to this one: each method's LDS beside its removal effect and cost
    lds_dir = tmp_path / "lds"
    lds_dir.mkdir()
    (lds_dir / "lds.csv").write_text("method,lds,lds_ci_low,lds_ci_high\ngmvaluator,0.5,0.4,0.6\n"
                                     "knn_count,0.3,0.2,0.4\nrandom (control),0.01,-0.02,0.04\n")
    r = subprocess.run([str(bin_dir / "gmv-report"), str(tmp_path / "sweep"), "--base", str(base), "--lds",
                        str(tmp_path)], capture_output=True, text=True, env=env, cwd=root)
    assert r.returncode == 2 and "no lds.csv" in r.stderr  # a wrong folder is refused before any retrain is read
    r = subprocess.run([str(bin_dir / "gmv-report"), str(tmp_path / "sweep"), "--base", str(base), "--lds",
                        str(lds_dir)], capture_output=True, text=True, env=env, cwd=root)
    assert r.returncode == 0, r.stderr[-2000:]
    report = tmp_path / "sweep" / "report"
    with open(report / "counterfactual_methods.csv") as f:
        pooled = {(p["method"], p["rule"]): p for p in csv.DictReader(f)}
    with open(report / "contribution.csv") as f:
        joined = {row["method"]: row for row in csv.DictReader(f)}
    assert list(joined) == ["gmvaluator", "knn_count", "random"]  # the LDS report's order; its control is "random"
    assert float(joined["gmvaluator"]["lds"]) == 0.5 and float(joined["random"]["lds_ci_high"]) == 0.04
    for method in ("gmvaluator", "knn_count"):
        assert joined[method]["top2_vs_random"] == pooled[(method, "top")]["vs_random_diff"]
    assert joined["random"]["top2_vs_random"] == ""  # the control is not compared with itself
    top = pooled[("gmvaluator", "top")]  # affected targets pooled over retrains, with a CI
    assert 0 <= float(top["affected_auroc_ci_low"]) <= float(top["affected_auroc"]) <= float(top["affected_auroc_ci_high"]) <= 1
    assert joined["gmvaluator"]["target_percentile"] != "" and float(joined["gmvaluator"]["seconds_total"]) > 0
    assert (report / "contribution.png").is_file() and "top 2 removed − random" in (report / "contribution.md").read_text()
    # the base and the LDS report are named as a reader of the report finds them, not by this machine's paths
    assert "seed 0: `../../base`" in (report / "counterfactual.md").read_text() and str(tmp_path) not in md
    assert "LDS from `../../lds`" in (report / "contribution.md").read_text()
    # what is committed of a study (counterfactual.csv + counterfactual_shifts.npz) rebuilds its tables exactly
    from gmv.analysis.counterfactual_report import pooled_rows, read_shifts, target_rows

    rows, shifts, affected = read_shifts(report)
    by_job = {r["job"].split("/")[1]: r for r in rows}
    assert sorted(by_job) == ["0", "1", "2", "3"] and by_job["3"]["target"] == 3 and by_job["0"]["target"] is None
    for name, rebuilt in (("counterfactual_methods.csv", pooled_rows(rows, shifts, affected)),
                          ("counterfactual_targets.csv", target_rows(rows))):
        with open(report / name) as f:
            written = list(csv.DictReader(f))
        assert len(rebuilt) == len(written) > 0
        assert all(w[k] == str(v) for p, w in zip(rebuilt, written) for k, v in p.items())

    # each retrain keeps its reading (counterfactual_job.npz): without its samples — a committed retrain, or one
    # finished in an earlier session — the report is the same; changed samples are read again; a retrain with
    # neither, or read against another base, is refused with what to do
    def report_rows(*extra):
        r = subprocess.run([str(bin_dir / "gmv-report"), str(tmp_path / "sweep"), "--base", str(base), *extra],
                           capture_output=True, text=True, env=env, cwd=root)
        assert r.returncode == 0, r.stderr[-2000:]
        return (report / "counterfactual.csv").read_text()

    before = (report / "counterfactual.csv").read_text()
    kept = {i: (tmp_path / "sweep" / str(i) / "samples.npz").read_bytes() for i in range(4)}
    for i in range(4):
        assert (tmp_path / "sweep" / str(i) / "counterfactual_job.npz").is_file()
        (tmp_path / "sweep" / str(i) / "samples.npz").unlink()
    assert report_rows() == before
    with np.load(__import__("io").BytesIO(kept[2])) as f:
        images = f["images"].copy()
    np.savez(tmp_path / "sweep" / "2" / "samples.npz", images=np.roll(images, 1, axis=0))
    changed = {r["job"].split("/")[1]: r for r in csv.DictReader(__import__("io").StringIO(report_rows()))}
    first = {r["job"].split("/")[1]: r for r in csv.DictReader(__import__("io").StringIO(before))}
    assert changed["2"]["shift_mean"] != first["2"]["shift_mean"] and changed["0"] == first["0"]
    (tmp_path / "sweep" / "2" / "samples.npz").unlink()
    (tmp_path / "sweep" / "1" / "counterfactual_job.npz").unlink()
    r = subprocess.run([str(bin_dir / "gmv-report"), str(tmp_path / "sweep"), "--base", str(base)],
                       capture_output=True, text=True, env=env, cwd=root)
    assert r.returncode == 2 and "samples.npz is gone" in r.stderr and "no counterfactual_job.npz" in r.stderr
    # the reading's key is the base run's files by content: a copy of the base keeps it, an edited one does not
    import shutil

    from gmv.analysis.counterfactual_read import base_key

    shutil.copytree(base, tmp_path / "base_copy")
    modules = ("gmv.valuation.embedders",)
    assert base_key(tmp_path / "base_copy", modules) == base_key(base, modules) == load_base(base).key
    with open(tmp_path / "base_copy" / "values.csv", "a") as f:
        f.write("\n")
    assert base_key(tmp_path / "base_copy", modules) != base_key(base, modules)


def test_saved_attributions_keep_only_the_targets_a_method_scored(tmp_path):
    """D-TRAK with `targets: N` saves m rows of which the first N are filled: only those are its attributions,
    and a request for more targets than it scored leaves it out rather than reading zeros as attributions."""
    from gmv.io import save_npz
    from gmv.valuation.run_attributions import scored_attributions

    a = np.zeros((10, 6), np.float32)
    a[:3] = np.arange(18, dtype=np.float32).reshape(3, 6) + 1
    save_npz(tmp_path / "attributions_d_trak.npz", attributions=a)
    save_npz(tmp_path / "attributions_empty.npz", attributions=np.zeros((10, 6), np.float32))
    out = scored_attributions(tmp_path, None, [], n1=4)
    assert set(out) == {"d_trak"} and out["d_trak"].shape == (3, 4)
    assert np.array_equal(out["d_trak"], a[:3, :4])


def test_pooled_affected_auroc_reads_each_retrain_on_its_own_scale():
    """Two retrains in which the affected targets moved most, one moving everything ten times more than the
    other: pooled on within-retrain percentiles the AUROC is 1; pooling the raw shifts would put the small
    retrain's affected targets below the large one's unaffected ones."""
    from gmv.analysis.counterfactual_report import pooled_affected

    small = np.array([0.1, 0.2, 0.3, 0.4, 0.9, 1.0])
    large = 10 * small
    hit = np.array([False, False, False, False, True, True])
    pooled = pooled_affected([small, large], [hit, hit])
    assert pooled["affected_auroc"] == pytest.approx(1.0) and pooled["affected_n"] == 4
    assert pooled["affected_auroc_ci_low"] <= 1.0 and pooled["affected_p"] < 0.05
    raw = removal_effect(np.concatenate([small, large]), np.concatenate([hit, hit]))
    assert raw["auroc"] < 1.0  # what the percentiles guard against
    # and with no signal (the affected targets in the middle of each retrain) it is 0.5
    mid = np.array([False, False, True, True, False, False])
    assert pooled_affected([small, large], [mid, mid])["affected_auroc"] == pytest.approx(0.5)


def test_pooled_rows_compare_with_random_on_the_same_seed_by_hand():
    from gmv.analysis.counterfactual_report import pooled_rows

    def row(rule, seed, method="gmvaluator"):
        return {"method": method, "rule": rule, "r": 2, "seed": seed, "target": None, "shift_mean": 0.0,
                "near_copies_before": 1, "near_copies_after": 0, "removed_nn_before": 1.0, "removed_nn_after": 2.0}

    rows = [row("top", 0), row("random", 0, "random"), row("top", 1), row("random", 1, "random")]
    shifts = [np.array([3.0, 5.0]), np.array([1.0, 2.0]), np.array([4.0, 4.0]), np.array([3.0, 1.0])]
    top, random = pooled_rows(rows, shifts)
    d = np.array([2.0, 3.0, 1.0, 3.0])  # each top shift minus the random one of its own seed
    assert top["vs_random_diff"] == pytest.approx(2.25)
    assert top["vs_random_dz"] == pytest.approx(2.25 / np.std(d, ddof=1))  # 2.25 / 0.9574
    assert top["vs_random_ci_low"] <= 2.25 <= top["vs_random_ci_high"]
    assert top["vs_random_p"] == pytest.approx(0.0625)  # Wilcoxon, all four positive: 1 / 2^4
    assert top["near_copies_before"] == 2 and top["removed_nn_after"] == 2.0
    assert random["method"] == "random" and "vs_random_dz" not in random
