"""scripts/counterfactual_by_class.py on a hand-made counterfactual folder: the classes a removal took, the
per-class shift against random, and the D-TRAK scope check (GMValuator's top r over the same targets)."""

import csv
import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "counterfactual_by_class.py"


def _script():
    spec = importlib.util.spec_from_file_location("counterfactual_by_class", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _base(path: Path, value_column=None):
    """X_v1 = dataset images 10..13 (labels 0, 0, 1, 1), X_v2 = 20..23; 4 generated images labelled 0, 0, 1, 1,
    each matched to 2 pool points (pool = X_v1 then X_v2)."""
    path.mkdir(parents=True)
    indices = np.array([[0, 4], [1, 0], [2, 3], [3, 6]])
    credit = np.array([[0.75, 0.25], [0.5, 0.5], [1.0, 0.0], [0.5, 0.5]], np.float32)
    np.savez(path / "match_tables.npz", indices=indices, credit=credit, distances=np.zeros((4, 2), np.float32))
    np.savez(path / "split.npz", v1=np.array([10, 11, 12, 13]), v2=np.array([20, 21, 22, 23]))
    np.savez(path / "samples.npz", labels=np.array([0, 0, 1, 1]), images=np.zeros((4, 1, 2, 2), np.float32))
    value = value_column or [1.25, 0.5, 1.0, 0.5]  # Eq. 6 of the tables above, by hand
    with open(path / "values.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "split", "label", "value"])
        w.writerows([[i, "v1", lab, v] for i, (lab, v) in enumerate(zip([0, 0, 1, 1], value))])
        w.writerows([[i, "v2", lab, 0.0] for i, lab in enumerate([0, 0, 1, 1])])


def _job(path: Path, dropped, shift):
    path.mkdir(parents=True)
    np.savez(path / "split.npz", dropped=np.array(dropped, np.int64))
    np.savez(path / "counterfactual_job.npz", shift=np.array(shift, np.float64))


def test_by_class_and_dtrak_scope_against_hand_computed_values(tmp_path):
    res, base0 = tmp_path / "cf", tmp_path / "base0"
    _base(base0)
    _job(res / "retrains/random_0/random_r2", [11, 13], [1.0, 1.0, 1.0, 1.0])
    _job(res / "retrains/ranked_0/d_trak_top_r2", [10, 11], [3.0, 2.0, 1.0, 1.5])  # both class-0 images
    assert _script().main(["--res", str(res), "--base0", str(base0), "--targets", "2"]) == 0
    (row,) = list(csv.DictReader(open(res / "by_class.csv")))
    assert row["job"] == "ranked_0/d_trak_top_r2" and row["removed_per_class"] == "2 0"
    assert float(row["diff_class_0"]) == pytest.approx(1.5) and float(row["diff_class_1"]) == pytest.approx(0.25)
    assert float(row["median_diff"]) == pytest.approx(0.75) and float(row["mean_diff"]) == pytest.approx(0.875)
    (scope,) = list(csv.DictReader(open(res / "dtrak_scope.csv")))
    # the first 2 targets credit pool points 0 (1.25), 1 (0.5) and 4 (an X_v2 image, not ranked): top 2 = 10, 11
    assert scope["gen_classes_of_targets"] == "0" and scope["x_v1_credited_by_targets"] == "2"
    assert scope["gmvaluator_on_targets_top_r_in_dtrak_top_r"] == "2"


def test_refuses_a_base_whose_tables_do_not_give_its_values(tmp_path):
    res, base0 = tmp_path / "cf", tmp_path / "base0"
    _base(base0, value_column=[1.0, 1.0, 1.0, 1.0])
    _job(res / "retrains/random_0/random_r2", [11, 13], [1.0] * 4)
    _job(res / "retrains/ranked_0/d_trak_top_r2", [10, 11], [1.0] * 4)
    with pytest.raises(SystemExit, match="does not give values.csv's value column"):
        _script().main(["--res", str(res), "--base0", str(base0)])


def test_scope_rankings_and_comparison_against_hand_computed_values(tmp_path):
    res, base0 = tmp_path / "cf", tmp_path / "base0"
    _base(base0)
    _job(res / "retrains/random_0/random_r2", [11, 13], [1.0, 1.0, 1.0, 1.0])
    _job(res / "retrains/ranked_0/d_trak_top_r2", [10, 12], [2.0, 1.0, 9.0, 9.0])
    script = _script()
    assert script.main(["--res", str(res), "--base0", str(base0), "--targets", "2", "--rankings"]) == 0
    ranking = list(csv.DictReader(open(res / "scope/rankings/base_0.csv")))
    assert [r["split"] for r in ranking] == ["v1"] * 4 and [r["label"] for r in ranking] == ["0", "0", "1", "1"]
    assert [float(r["value_targets2"]) for r in ranking] == pytest.approx([1.25, 0.5, 0.0, 0.0])
    _job(res / "scope/scope_0/value_targets2_top_r2", [10, 11], [3.0, 1.5, 0.0, 0.0])
    assert script.main(["--res", str(res), "--base0", str(base0), "--targets", "2"]) == 0
    (row,) = list(csv.DictReader(open(res / "scope_comparison.csv")))
    # on targets 0, 1: GMValuator's removal 3.0, 1.5; D-TRAK's 2.0, 1.0; random 1.0, 1.0
    assert float(row["gmvaluator_minus_dtrak"]) == pytest.approx(0.75)
    assert float(row["gmvaluator_vs_random"]) == pytest.approx(1.25) and float(row["dtrak_vs_random"]) == 0.5
    assert float(row["wilcoxon_p"]) == pytest.approx(0.25)  # two positive differences: exact one-sided p = 1/4


def test_target_removals_count_the_images_the_target_actually_credits(tmp_path):
    res, base0 = tmp_path / "cf", tmp_path / "base0"
    _base(base0)
    _job(res / "retrains/random_0/random_r2", [11, 13], [1.0] * 4)
    _job(res / "retrains/ranked_0/d_trak_top_r2", [10, 11], [1.0] * 4)
    # target 0 credits pool points 0 (X_v1 image 10) and 4 (X_v2): of a top-2 removal, image 11 is a tie at zero
    _job(res / "retrains/target_0/value_t0", [10, 11], [1.0] * 4)
    _job(res / "retrains/target_0/value_t1", [10, 11], [1.0] * 4)  # target 1 credits 10 and 11: the same removal
    (res / "counterfactual.csv").write_text("job,target_percentile\ntarget_0/value_t0,0.75\n")
    assert _script().main(["--res", str(res), "--base0", str(base0)]) == 0
    rows = list(csv.DictReader(open(res / "target_removals.csv")))
    assert [r["target_percentile"] for r in rows] == ["0.75", ""]
    assert [(r["job"], r["dropped"], r["dropped_classes"], r["dropped_scored_above_zero"], r["same_removal_jobs"])
            for r in rows] == [("target_0/value_t0", "10 11", "0 0", "1", "2"),
                               ("target_0/value_t1", "10 11", "0 0", "2", "2")]
