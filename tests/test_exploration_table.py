"""scripts/exploration_table.py: every run's trajectory rows, with its overrides and training time."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def fake_run(folder: Path, overrides: list[str], rows: list[tuple[int, float, float]]) -> Path:
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (folder / "metrics.json").write_text(json.dumps({"train_seconds": 300.0, "train_iterations": 3000, "n_v1": 100}))
    header = "iteration,t_statistic,p_value,auroc,cohens_d,fd_ratio,m,k,tau_used\n"
    body = "".join(f"{it},{t},{p},0.8,1.0,0.5,1000,5,0.04\n" for it, t, p in rows)
    (folder / "trajectory.csv").write_text(header + body)
    return folder


def test_table_lists_every_configuration_and_iteration(tmp_path):
    a = fake_run(tmp_path / "a", ["generator=cfg_diffusion", "seed=100", "study=x", "cache_dir=/c"],
                 [(500, 3.0, 1e-3), (1000, 6.0, 1e-9)])
    b = fake_run(tmp_path / "b", ["data.split.per_class_limit=40", "logger.mode=disabled"], [(1000, 1.5, 0.07)])
    out = tmp_path / "table"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "exploration_table.py"), str(a), str(b),
                        "--out", str(out), "--title", "T"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = (out / "exploration.csv").read_text().splitlines()
    assert len(lines) == 1 + 3
    assert lines[1].startswith("generator=cfg_diffusion seed=100,100,500,50,")  # study/cache_dir dropped; 300 s · 500/3000
    assert lines[3].startswith("data.split.per_class_limit=40,100,1000,100,1.5,0.07")
    md = (out / "exploration.md").read_text()
    assert md.startswith("# T") and md.count("\n| `") == 3


def test_a_stopped_run_without_metrics_is_listed_without_training_time(tmp_path):
    import numpy as np

    run = fake_run(tmp_path / "stopped", ["seed=100"], [(500, 0.5, 0.3)])
    (run / "metrics.json").unlink()
    np.savez(run / "split.npz", v1=np.arange(16), v2=np.arange(16, 32))
    out = tmp_path / "table"
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "exploration_table.py"), str(run), "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (out / "exploration.csv").read_text().splitlines()[1] == "seed=100,16,500,,0.5,0.3,0.8,1.0,0.5,1000,5,0.04"
    assert "| 500 | – |" in (out / "exploration.md").read_text()


def test_kept_rows_come_first_unchanged(tmp_path):
    """--keep: an earlier table's rows (their run folders gone) stay, byte for byte, before the new runs'."""
    old = fake_run(tmp_path / "old", ["seed=100", "train.max_iterations=1500"], [(500, 0.5, 0.3), (1500, 1.0, 0.2)])
    first = tmp_path / "first"
    script = [sys.executable, str(ROOT / "scripts" / "exploration_table.py")]
    assert subprocess.run([*script, str(old), "--out", str(first)], capture_output=True, timeout=120).returncode == 0
    new = fake_run(tmp_path / "new", ["seed=100", "train.max_iterations=6000"], [(6000, 2.0, 0.03)])
    out = tmp_path / "second"
    r = subprocess.run([*script, str(new), "--keep", str(first / "exploration.csv"), "--out", str(out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    before = (first / "exploration.csv").read_text().splitlines()
    after = (out / "exploration.csv").read_text().splitlines()
    assert after[:3] == before and len(after) == 4 and after[3].startswith("seed=100 train.max_iterations=6000,100,6000,")


def test_a_continued_run_lists_its_own_probes_timed_from_where_it_continued(tmp_path):
    """A run that continued a shorter run's first 1,000 iterations timed only the 2,000 it added (300 s): its probe
    at 1,000 is the shorter run's and is left out; 2,000 and 3,000 are at 150 s and 300 s."""
    run = fake_run(tmp_path / "long", ["seed=100"], [(1000, 1.0, 0.1), (2000, 2.0, 0.01), (3000, 3.0, 1e-3)])
    script = [sys.executable, str(ROOT / "scripts" / "exploration_table.py")]
    for extra, folder in (([], "from_metrics"), (["--continued-from", "1000"], "from_the_option")):
        metrics = {"train_seconds": 300.0, "train_iterations": 3000, "n_v1": 100}
        if not extra:
            metrics["train_continued_from"] = 1000
        (run / "metrics.json").write_text(json.dumps(metrics))
        r = subprocess.run([*script, str(run), "--out", str(tmp_path / folder), *extra], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        lines = (tmp_path / folder / "exploration.csv").read_text().splitlines()[1:]
        assert [line.split(",")[2:4] for line in lines] == [["2000", "150"], ["3000", "300"]]
    # stopped before it finished (no metrics.json, no time): still only its own probes
    (run / "metrics.json").unlink()
    import numpy as np

    np.savez(run / "split.npz", v1=np.arange(16), v2=np.arange(16, 32))
    r = subprocess.run([*script, str(run), "--out", str(tmp_path / "stopped"), "--continued-from", "1000"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = (tmp_path / "stopped" / "exploration.csv").read_text().splitlines()[1:]
    assert [line.split(",")[2:4] for line in lines] == [["2000", ""], ["3000", ""]]


def test_time_counts_from_train_seconds_from_iteration(tmp_path):
    """metrics.json's train_seconds_from_iteration says where the recorded time starts: 0 for a run timed whole
    across its parts (300 s for 3,000 iterations: 100 s per 1,000), 1,000 for one resumed from a checkpoint whose
    earlier part went unrecorded (its probe at 1,000 has no time, the others count from there)."""
    run = fake_run(tmp_path / "run", ["seed=100"], [(1000, 1.0, 0.1), (2000, 2.0, 0.01), (3000, 3.0, 1e-3)])
    script = [sys.executable, str(ROOT / "scripts" / "exploration_table.py")]
    expected = {0: [["1000", "100"], ["2000", "200"], ["3000", "300"]],
                1000: [["1000", ""], ["2000", "150"], ["3000", "300"]]}
    for since, rows in expected.items():
        for in_metrics in (True, False):  # older metrics lack the key: --timed-from says it
            metrics = {"train_seconds": 300.0, "train_iterations": 3000, "n_v1": 100, "train_continued_from": None}
            metrics.update({"train_seconds_from_iteration": since} if in_metrics else {})
            (run / "metrics.json").write_text(json.dumps(metrics))
            out = tmp_path / f"t{since}{in_metrics}"
            extra = [] if in_metrics else ["--timed-from", str(since)]
            r = subprocess.run([*script, str(run), "--out", str(out), *extra], capture_output=True, text=True,
                               timeout=120)
            assert r.returncode == 0, r.stderr
            lines = (out / "exploration.csv").read_text().splitlines()[1:]
            assert [line.split(",")[2:4] for line in lines] == rows
