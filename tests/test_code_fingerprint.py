"""Cache keys that know the code (gmv/code_fingerprint.py): editing what a module does reruns the stages that
run it and the stages built on them — nothing else; comments and docstrings change nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gmv import code_fingerprint
from gmv.code_fingerprint import code_digest, gmv_imports
from gmv.pipeline.study import run_study
from test_pipeline import TINY, cfg_of


@pytest.fixture
def edit(monkeypatch):
    """edit(module, text): the module's source as the cache keys see it gains `text` at its end."""
    real = code_fingerprint.module_source
    edits: dict[str, str] = {}
    monkeypatch.setattr(code_fingerprint, "module_source", lambda name: real(name) + edits.get(name, ""))
    code_fingerprint.clear()

    def apply(module: str, text: str) -> None:
        edits[module] = edits.get(module, "") + text
        code_fingerprint.clear()

    yield apply
    code_fingerprint.clear()


def test_the_digest_follows_code_not_comments(edit):
    roots = ("gmv.generators.biggan", "gmv.training.train")
    assert {"gmv.models.biggan", "gmv.models.diffaugment", "gmv.generators.base"} <= set(gmv_imports(*roots))
    assert "gmv.console" not in gmv_imports(*roots)  # output-neutral modules are not followed
    before = code_digest(*roots)
    edit("gmv.models.biggan", "\n# a comment\n")
    assert code_digest(*roots) == before
    edit("gmv.models.biggan", '\ndef _helper():\n    """a docstring"""\n    return 1\n')
    changed = code_digest(*roots)
    assert changed != before  # code changed (the function), though only through a module it imports
    edit("gmv.models.biggan", '\ndef _other():\n    """another docstring"""\n')
    assert code_digest(*roots) != changed
    assert code_digest("gmv.valuation.embedders", "gmv.valuation.embed") == \
        code_digest("gmv.valuation.embedders", "gmv.valuation.embed")  # the generator edits do not reach it


def test_a_generator_outside_gmv_is_keyed_by_its_own_code(edit):
    import dummy_generator  # noqa: F401  (loaded: a user's own module is read from its file)

    assert "gmv.generators.base" in gmv_imports("dummy_generator")
    before = code_digest("dummy_generator")
    edit("dummy_generator", "\nUSER_EDIT = 1\n")
    assert code_digest("dummy_generator") != before


def entries(cache: Path) -> dict[str, int]:
    return {stage: sum(1 for p in (cache / stage).iterdir() if (p / "done.json").is_file())
            for stage in ("train", "samples", "embeddings")}


def test_editing_a_module_reruns_its_stage_and_the_stages_after_it_only(tmp_path, edit):
    cache = tmp_path / "cache"
    cfg = cfg_of(*TINY, f"cache_dir={cache}")
    run_study(cfg, tmp_path / "r1")
    assert entries(cache) == {"train": 1, "samples": 1, "embeddings": 3}  # X_v1 ∪ X_v2, X̂, the reference set

    edit("gmv.analysis.report", "\nREPORT_EDIT = 1\n")  # the report is not cached: nothing is recomputed
    run_study(cfg, tmp_path / "r2")
    assert entries(cache) == {"train": 1, "samples": 1, "embeddings": 3}

    edit("gmv.models.biggan", "\nNETWORK_EDIT = 1\n")  # the generator's network: retrain and resample
    run_study(cfg, tmp_path / "r3")
    # (this edit leaves the weights as they were, so X̂'s pixels are too: embeddings follow content, reused)
    assert entries(cache) == {"train": 2, "samples": 2, "embeddings": 3}

    edit("gmv.training.sample", "\nSAMPLING_EDIT = 1\n")  # sampling: the trained generator is reused
    run_study(cfg, tmp_path / "r4")
    assert entries(cache) == {"train": 2, "samples": 3, "embeddings": 3}

    edit("gmv.valuation.embedders", "\nEMBEDDER_EDIT = 1\n")  # the embedder: every set is embedded again
    run_study(cfg, tmp_path / "r5")
    assert entries(cache) == {"train": 2, "samples": 3, "embeddings": 6}
    stages = json.loads((tmp_path / "r5" / "stages.json").read_text())
    assert stages["train"]["reused"] is True and stages["generate"]["reused"] is True
