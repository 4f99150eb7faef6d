"""gmv.pipeline.train_stage's record of training time across parts (progress.json)."""

import os

import pytest
import torch

from gmv.cache import CacheEntry
from gmv.pipeline.train_stage import start_part


def checkpoint(entry: CacheEntry, iteration: int, mtime: float) -> None:
    last = entry.folder / "checkpoints" / "last.ckpt"
    last.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"gmv": {"iteration": iteration}}, last)
    os.utime(last, (mtime, mtime))


def test_a_killed_part_counts_its_time_up_to_the_checkpoint_resumed(tmp_path):
    entry = CacheEntry(tmp_path, "train", "k")
    entry.folder.mkdir(parents=True)
    first = start_part(entry, None)  # fresh entry: one open part from iteration 0
    assert first == {"continued_from": None, "parts": [{"started": pytest.approx(first["parts"][0]["started"]),
                                                          "from_iteration": 0}]}
    # the part was killed; its newest checkpoint (iteration 500) was written 40 s after it started
    checkpoint(entry, 500, first["parts"][0]["started"] + 40.0)
    second = start_part(entry, None)
    assert second["parts"][0]["seconds"] == pytest.approx(40.0) and second["parts"][0]["to_iteration"] == 500
    assert second["parts"][1]["from_iteration"] == 500 and "seconds" not in second["parts"][1]
    # killed again before any new checkpoint: that part trained nothing that was kept
    third = start_part(entry, None)
    assert [p.get("seconds") for p in third["parts"]] == [pytest.approx(40.0), 0.0, None]


def test_a_continuation_starts_a_new_record_and_keeps_it_when_resumed(tmp_path):
    entry = CacheEntry(tmp_path, "train", "long")
    entry.folder.mkdir(parents=True)
    (entry.folder / "progress.json").write_text('{"continued_from": null, "parts": [{"started": 0, "from_iteration": 0}]}')
    checkpoint(entry, 2000, 1e9)  # the shorter run's last checkpoint, linked in
    shorter = {"key": "short", "iterations": 2000}
    record = start_part(entry, shorter)
    assert record["continued_from"] == shorter and [p["from_iteration"] for p in record["parts"]] == [2000]
    # the continuation is killed and resumed: continue_shorter_run then returns None, the record remembers
    checkpoint(entry, 2500, record["parts"][0]["started"] + 10.0)
    again = start_part(entry, None)
    assert again["continued_from"] == shorter and [p["from_iteration"] for p in again["parts"]] == [2000, 2500]
