"""Tracker: disabled mode is inert (no wandb import, no files); offline mode writes a local run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from pathlib import Path

import numpy as np
import pytest

import gmv
from gmv.errors import GmvError
from gmv.tracking import Tracker


@pytest.fixture
def wandb_env(tmp_path, monkeypatch):
    """Keep W&B offline, quiet, and off the real home directory."""
    for var in ("WANDB_API_KEY", "WANDB_ENTITY", "WANDB_RUN_ID", "WANDB_RESUME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for var in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "home" / var.lower()))
    return tmp_path


def test_unknown_mode_lists_the_valid_ones():
    with pytest.raises(GmvError, match="offline, online, disabled"):
        Tracker(mode="ofline")


def test_disabled_mode_imports_nothing_and_writes_nothing(tmp_path):
    png = tmp_path / "in" / "x.png"
    png.parent.mkdir()
    png.write_bytes(b"not really a png")
    work = tmp_path / "work"
    work.mkdir()
    code = textwrap.dedent(
        f"""
        import sys
        from gmv.tracking import Tracker
        with Tracker(mode="disabled", dir={str(work / "runs")!r}, name="n", config={{"k": 1}}) as t:
            assert not t.enabled and t.run is None and t.run_dir is None
            t.log_metrics({{"a": 1.0}}, step=0)
            t.log_table("tab", [{{"x": 1}}])
            t.log_image("img", {str(png)!r})
            t.log_artifact("art", "data", [{str(png)!r}])
        t.finish()
        assert "wandb" not in sys.modules, "disabled mode imported wandb"
        print("ok")
        """
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env["PYTHONPATH"] = os.pathsep.join([str(Path(gmv.__file__).parents[1]), env.get("PYTHONPATH", "")])
    res = subprocess.run([sys.executable, "-c", code], cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"
    assert list(work.iterdir()) == []  # not even the run folder was created


def test_offline_mode_writes_a_run_under_dir(wandb_env):
    runs = wandb_env / "runs"
    png = wandb_env / "fig.png"
    from PIL import Image

    Image.new("RGB", (8, 8), (200, 30, 30)).save(png)
    data = wandb_env / "values.csv"
    data.write_text("i,value\n0,1.5\n")

    with Tracker(mode="offline", project="gmv-test", dir=runs, name="unit", config={"k": 3}) as t:
        assert t.enabled
        t.log_metrics({"nn_share_v1": np.float64(0.75), "significant": True, "idx": [1, 2]}, step=0)
        t.log_table("ra2_table", [{"Setting": "a", "p-value": 1e-5, "CI": (0.1, 0.2)}, {"Setting": "b", "AUROC": 0.6}])
        t.log_image("hist", png)
        t.log_artifact("values run/1", "valuation", [data])
        with pytest.raises(GmvError, match="no file"):
            t.log_image("missing", wandb_env / "nope.png")
        run_dir = t.run_dir
    assert not t.enabled  # finished by the context manager

    offline_runs = list((runs / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1 and run_dir.parent == offline_runs[0]
    assert list(offline_runs[0].glob("run-*.wandb")), "no run log was written"
    tables = list((run_dir / "media" / "table").glob("ra2_table_*.table.json"))
    assert len(tables) == 1
    table = json.loads(tables[0].read_text())
    assert table["columns"] == ["Setting", "p-value", "CI", "AUROC"]
    assert [row[0] for row in table["data"]] == ["a", "b"] and table["data"][1][1] is None
    assert list((run_dir / "media" / "images").glob("hist_*.png"))


def test_a_study_logged_offline_ends_with_its_valuation_artifact(wandb_env):
    """The study app's default logger is W&B offline: the run must finish (metrics.json is written at the
    end of the run, and the valuation artifact is logged after it), with its W&B run on disk."""
    from test_pipeline import TINY, cfg_of

    from gmv.pipeline import run_study

    overrides = [o for o in TINY if not o.startswith("logger.mode")] + ["logger.mode=offline",
                                                                      f"cache_dir={wandb_env / 'cache'}"]
    metrics = run_study(cfg_of(*overrides), wandb_env / "run")
    assert (wandb_env / "run" / "metrics.json").is_file() and "p_value" in metrics
    offline_runs = list((wandb_env / "run" / "wandb").glob("offline-run-*"))
    assert len(offline_runs) == 1 and list(offline_runs[0].glob("run-*.wandb"))
