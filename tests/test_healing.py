"""A cache that heals and runs that survive being killed (issue 10, item 3).

- Damage: each kind of cache entry (a trained generator, samples, embeddings) truncated, deleted or
  corrupted → the next run says so in one line, recomputes what was lost, and ends with the same values.
- Kill: a study SIGKILLed during training, sampling, embedding, matching or the report → the rerun ends
  with values identical to an uninterrupted run's.
- Concurrency: two runs on one cache_dir both succeed and the generator is trained once.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_pipeline import TINY, cfg_of, env

ROOT = Path(__file__).resolve().parents[1]
KILL_AT = ROOT / "tests" / "kill_at.py"
GMV = Path(sys.executable).parent / "gmv"

#: TINY with a checkpoint every iteration and samples drawn in several batches (resumable parts)
STUDY = [*TINY, "train.max_iterations=4", "train.checkpoint_every=1", "generate.batch_size=8", "num_threads=1"]


def _values(run_dir: Path) -> str:
    return (run_dir / "values.csv").read_text()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted run: its cache (copied by the damage tests) and its values."""
    from gmv.pipeline import run_study

    base = tmp_path_factory.mktemp("reference")
    run_study(cfg_of(*STUDY, f"cache_dir={base / 'cache'}"), base / "run")
    return base


def _rerun(reference: Path, tmp_path: Path, damage) -> tuple[Path, str]:
    from gmv.pipeline import run_study

    cache = tmp_path / "cache"
    shutil.copytree(reference / "cache", cache)
    damage(cache)
    run_study(cfg_of(*STUDY, f"cache_dir={cache}"), tmp_path / "run")
    return tmp_path / "run", json.loads((tmp_path / "run" / "stages.json").read_text())


def _only(cache: Path, pattern: str) -> Path:
    found = sorted(cache.glob(pattern))
    assert len(found) == 1, (pattern, found)
    return found[0]


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


DAMAGES = {"truncate": _truncate, "delete": Path.unlink, "corrupt": _corrupt}


@pytest.mark.parametrize("entry, damage", [("train", "truncate"), ("train", "corrupt"), ("samples", "delete"),
                                           ("samples", "truncate"), ("embeddings", "truncate"),
                                           ("embeddings", "corrupt"), ("embeddings", "delete")])
def test_a_damaged_entry_is_reported_and_recomputed(reference, tmp_path, capfd, entry, damage):
    target = {"train": "train/*/checkpoints/last.ckpt", "samples": "samples/*/samples.npz",
              "embeddings": "embeddings/*/*.npy"}[entry]

    def hurt(cache: Path) -> None:
        paths = sorted(cache.glob(target))
        assert paths, target
        DAMAGES[damage](paths[0])

    capfd.readouterr()
    run, stages = _rerun(reference, tmp_path, hurt)
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if "damaged" in line]
    assert len(lines) == 1, err
    assert _values(run) == _values(reference / "run")
    stage = {"train": "train", "samples": "generate", "embeddings": "embed"}[entry]
    assert stages[stage]["reused"] is False  # recomputed …
    untouched = {"train": [], "samples": ["train"], "embeddings": ["train", "generate"]}[entry]
    assert all(stages[s]["reused"] for s in untouched)  # … and nothing upstream of it


def test_training_heals_from_the_newest_intact_checkpoint(reference, tmp_path, capfd):
    """last.ckpt and the final periodic checkpoint (iteration 4) truncated: resume from iteration 3 and
    retrain the last iteration — to the same weights, so the same values."""
    capfd.readouterr()

    def hurt(cache: Path) -> None:
        _truncate(_only(cache, "train/*/checkpoints/last.ckpt"))
        _truncate(_only(cache, "train/*/checkpoints/iter_000004.ckpt"))

    run, stages = _rerun(reference, tmp_path, hurt)
    err = capfd.readouterr().err
    assert "resuming from iter_000003.ckpt" in err, err
    assert _values(run) == _values(reference / "run")


def _gmv(*args, cwd: Path, kill: tuple[str, int] | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(KILL_AT), kill[0], str(kill[1])] if kill else [str(GMV)]
    return subprocess.run([*cmd, *args], cwd=cwd, env=env(), capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("point, n", [("checkpoint", 2), ("part", 2), ("chunk", 1), ("match", 1), ("report", 1)])
def test_a_killed_run_reruns_to_identical_values(reference, tmp_path, point, n):
    args = [*STUDY, f"cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={tmp_path / 'run'}"]
    killed = _gmv(*args, cwd=tmp_path, kill=(point, n))
    assert killed.returncode == -9, killed.stderr[-2000:]
    rerun = _gmv(*args, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert _values(tmp_path / "run") == _values(reference / "run")


def test_two_concurrent_runs_share_one_training(tmp_path):
    cache = tmp_path / "cache"
    runs = [subprocess.Popen([str(GMV), *STUDY, f"cache_dir={cache}", f"hydra.run.dir={tmp_path / f'run{i}'}"],
                             cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for i in range(2)]
    outs = [r.communicate(timeout=600) for r in runs]
    assert [r.returncode for r in runs] == [0, 0], [o[1][-2000:] for o in outs]
    trained = [json.loads((tmp_path / f"run{i}" / "stages.json").read_text())["train"]["reused"] for i in range(2)]
    assert sorted(trained) == [False, True]  # one trained, the other waited and reused
    assert any("waiting for it" in err for _, err in outs)
    assert _values(tmp_path / "run0") == _values(tmp_path / "run1")
    assert len(list(cache.glob("train/*/done.json"))) == 1
