"""The closing summary's sample-quality reading: FD / floor beside RA2, read against what every committed run
measured (results/fd_floor/relation.json, written by scripts/fd_floor_relation.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gmv.analysis.report import summary
from gmv.pipeline.summary import (FD_FLOOR_BINS, FD_FLOOR_READING, FD_FLOOR_READING_BY_FAMILY, MIN_FAMILY_POINTS,
                                  fd_floor_line)

RESULTS = Path(__file__).resolve().parents[1] / "results"


def assert_quotes(bins: list[dict], readings: tuple) -> None:
    """Each bin of relation.json and its (points, share p < 0.01, median AUROC) reading agree; None: empty bin."""
    for b, reading in zip(bins, readings, strict=True):
        if not b["n"]:
            assert reading is None
            continue
        n, share, median = reading
        assert b["n"] == n
        assert b["share_p_below_0_01"] == pytest.approx(share, abs=0.005)
        assert b["median_auroc"] == pytest.approx(median, abs=0.0005)


def test_the_reading_quotes_the_committed_relation():
    bins = json.loads((RESULTS / "fd_floor" / "relation.json").read_text())["bins"]
    assert [b["fd_floor_high"] for b in bins[:-1]] == list(FD_FLOOR_BINS)
    assert all(b["n"] for b in bins)  # every pooled bin has points: its reading is never None
    assert_quotes(bins, FD_FLOOR_READING)


def test_the_family_readings_quote_the_committed_relation():
    by_family = json.loads((RESULTS / "fd_floor" / "relation.json").read_text())["by_family"]
    assert sorted(FD_FLOOR_READING_BY_FAMILY) == sorted(by_family)
    for family, bins in by_family.items():
        assert_quotes(bins, FD_FLOOR_READING_BY_FAMILY[family])


def test_a_family_with_enough_points_is_read_against_its_own_runs():
    ratio_of_bin = [1.0, 2.0, 3.0, 9.0]
    checked = 0
    for family, readings in FD_FLOOR_READING_BY_FAMILY.items():
        for i, reading in enumerate(readings):
            line = fd_floor_line(q(ratio_of_bin[i]), family)
            if reading is not None and reading[0] >= MIN_FAMILY_POINTS:
                assert f"of {reading[0]} committed {family} runs and probes" in line
                checked += 1
            else:  # too few of the family's own points here: the pooled reading
                assert f"of {FD_FLOOR_READING[i][0]} committed runs and probes" in line
    assert checked >= 2  # at least two (family, bin) cells are read on their own
    assert fd_floor_line(q(1.0), "no_such_family") == fd_floor_line(q(1.0))


def q(fd, floor=1.0):
    return {"fd_embedding": fd, "fd_embedding_v2_vs_v1": floor, "fd_embedder": "pixels"}


def test_fd_floor_line_names_the_ratio_its_bin_and_how_to_read_it():
    n0, share0, _ = FD_FLOOR_READING[0]
    close = fd_floor_line(q(0.5, 0.5))
    assert close.startswith("FD / floor 1.00 ") and f"of {n0} committed" in close and "below 1.5" in close
    assert f"{share0:.0%} reached p < 0.01" in close
    assert ("the exception, not the rule" in close) == (share0 >= 0.8)  # said only where the data say it
    _, share_diffusion, _ = FD_FLOOR_READING_BY_FAMILY["cfg_diffusion"][0]
    assert share_diffusion >= 0.8 and "the exception, not the rule" in fd_floor_line(q(0.5, 0.5), "cfg_diffusion")
    middle = fd_floor_line(q(2.0))
    assert "FD / floor 2.00" in middle and "at FD / floor 1.5–2.5" in middle and "generator" not in middle
    far = fd_floor_line(q(9.0, 2.0))
    assert "FD / floor 4.50" in far and "above 4" in far and "says more about the generator" in far
    assert fd_floor_line({"fd_embedding": 1.0, "fd_embedder": "pixels"}) is None  # no held-out floor
    assert fd_floor_line(q(1.0, 0.0)) is None


def test_the_reading_sits_right_below_the_ra2_rows():
    metrics = json.loads((RESULTS / "default_study" / "metrics.json").read_text())
    lines = summary(metrics, "default", after_ra2="READING").splitlines()
    auroc = next(i for i, line in enumerate(lines) if line.startswith("AUROC "))
    assert lines[auroc + 1] == "READING"
    assert "READING" not in summary(metrics, "default")
