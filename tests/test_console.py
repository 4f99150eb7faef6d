"""The console in a log file (output redirected: CI, nohup, a cluster job): one line per 10% of each
progress bar, no carriage returns, no line repeated."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from gmv.console import is_terminal, progress_bar

ROOT = Path(__file__).resolve().parents[1]
GMV = Path(sys.executable).with_name("gmv")


def test_a_bar_in_a_log_prints_one_line_per_tenth():
    out = io.StringIO()
    assert not is_terminal(out)
    with progress_bar(total=95, desc="embed", unit="img", file=out, leave=False) as bar:
        for step in [1] * 50 + [7, 7, 7, 24]:  # uneven steps, one of them across two tenths
            bar.update(step)
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and len(lines) == len(set(lines))
    assert [line.split("%")[0].split()[-1] for line in lines] == ["0", "11", "20", "31", "40", "51", "60", "75", "100"]
    assert lines[-1].startswith("embed: 100% (95/95 img)")


def test_a_study_written_to_a_file_repeats_no_line(tmp_path):
    log = tmp_path / "run.log"
    with log.open("w") as f:
        rc = subprocess.run([str(GMV), "experiment=smoke", "logger.mode=disabled", "train.max_iterations=20",
                             "generate.m=40", "data.split.per_class_limit=12", "valuation.tsne_cap=60",
                             "valuation.ra3_n=2", "valuation.k=3", f"cache_dir={tmp_path}/cache",
                             f"hydra.run.dir={tmp_path}/run", "num_threads=1"],
                            stdout=f, stderr=subprocess.STDOUT, cwd=ROOT, timeout=600,
                            env={**os.environ, "WANDB_MODE": "disabled"}).returncode
    text = log.read_text()
    assert rc == 0, text[-2000:]
    lines = [line for line in text.splitlines() if line.strip()]
    assert "\r" not in text
    assert all(a != b for a, b in zip(lines, lines[1:]))  # nothing printed twice back to back
    training = [line for line in lines if line.startswith("iterations:")]
    assert len(training) == 11 and training[-1].startswith("iterations: 100% (20/20 it)")
    assert len(lines) < 60
