"""A method's cost: seconds and the peak memory it needs beyond what the process held (gmv/valuation/cost.py)."""

import time

import numpy as np

from gmv.valuation.cost import measured


def test_peak_extra_memory_sees_a_large_array_and_not_a_small_one():
    with measured() as big:
        a = np.ones(200 * 2 ** 20 // 8)  # 200 MiB, touched
        time.sleep(0.05)
        del a
    with measured() as small:
        b = np.ones(1000)
        del b
    assert 190 <= big.peak_extra_mib <= 260
    assert small.peak_extra_mib < 20
    assert big.seconds >= 0.05


def test_every_method_gets_its_own_cost_in_the_valuation_and_metrics(tmp_path):
    from gmv.analysis.report import valuation_metrics
    from gmv.data.imageset import ImageSet
    from gmv.valuation.api import valuate

    rng = np.random.default_rng(0)
    train = ImageSet(rng.integers(0, 256, (40, 4, 4, 1), dtype=np.uint8), np.zeros(40, np.int64))
    held = ImageSet(rng.integers(0, 256, (30, 4, 4, 1), dtype=np.uint8), np.zeros(30, np.int64))
    gen = ImageSet(train.images[:10], np.zeros(10, np.int64))
    val = valuate(train, gen, held_out=held, k=5, baselines=["knn_count", "gan_leaks"])
    assert set(val.costs) == {"gmvaluator", "knn_count", "gan_leaks"}
    for c in val.costs.values():
        assert c["seconds"] >= 0 and np.isfinite(c["peak_extra_mib"])
    metrics = valuation_metrics(val)
    assert metrics["method/knn_count/seconds"] == val.costs["knn_count"]["seconds"]
    shared = round(val.seconds["embed"] + val.seconds["match"], 3)
    assert all(c["shared_seconds"] == shared for c in val.costs.values())


def test_method_costs_are_read_back_from_a_run(tmp_path):
    import json

    from gmv.analysis.method_cost import cost_cells, method_costs

    (tmp_path / "metrics.json").write_text(json.dumps({
        "method/gmvaluator/seconds": 0.5, "method/gmvaluator/shared_seconds": 2.0,
        "method/gmvaluator/peak_extra_mib": 12.0, "method/d_trak/seconds": 300.0, "method/d_trak/shared_seconds": 0.0,
        "method/d_trak/auroc": 0.4, "seconds_embed": 2.0}))
    costs = method_costs(tmp_path)
    assert costs["gmvaluator"]["total_seconds"] == 2.5 and costs["d_trak"]["total_seconds"] == 300.0
    assert "auroc" not in costs["d_trak"]
    assert cost_cells(costs, "gmvaluator") == ["2.5 (0.5 + 2.0)", "12"]
    assert cost_cells(costs, "knn_count") == ["not measured", "–"]
