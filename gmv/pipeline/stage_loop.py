"""The stage loop of a study (gmv/pipeline/study.py): a `Stage` declares what it needs from the study and
what it gives, and `run_stage` checks both, times it and, for a cached stage, reuses, heals or fills its
cache entry (gmv/cache.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from gmv.cache import CacheEntry
from gmv.pipeline.manifest import StageClock

if TYPE_CHECKING:
    from gmv.pipeline.study import Study


@dataclass(frozen=True)
class Stage:
    """One step of a study. `run(study, entry)` does the work (entry is None for uncached stages) and
    returns the facts a cached stage records in done.json; a cached stage also gives `key(study)`, the
    cache folder name `entry`, `load(study, entry)` for a finished entry and `files(entry)`, its outputs."""

    name: str
    needs: tuple[str, ...]
    gives: tuple[str, ...]
    run: Callable[[Study, CacheEntry | None], dict | None]
    may_be_none: tuple[str, ...] = ()  # of `gives`, those a stage may leave None (e.g. no reference set)
    key: Callable[[Study], str] | None = None
    entry: str | None = None
    load: Callable[[Study, CacheEntry], None] | None = None
    files: Callable[[CacheEntry], list[str]] | None = None


def run_stage(stage: Stage, study: Study, clock: StageClock) -> None:
    missing = [name for name in stage.needs if getattr(study, name) is None]
    if missing:  # the stage list is out of order: a bug in gmv, not a user error
        raise RuntimeError(f"stage {stage.name} needs {missing}, which no earlier stage set")
    clock.start()
    if stage.key is None:  # not cached by the loop; a stage with a cache of its own says whether it reused it
        facts = stage.run(study, None) or {}
        clock.stop(stage.name, facts.get("reused"))
        _check_gives(stage, study)
        return
    key = study.keys[stage.name] = stage.key(study)
    entry = CacheEntry(study.cache, stage.entry or stage.name, key)
    with entry.lock():
        reused = entry.usable()  # a damaged entry is reported and cleared here
        if reused:
            stage.load(study, entry)
        else:
            facts = stage.run(study, entry) or {}
            entry.complete(stage.files(entry), **facts)
    clock.stop(stage.name, reused, key)
    _check_gives(stage, study)


def _check_gives(stage: Stage, study: Study) -> None:
    unset = [name for name in stage.gives if getattr(study, name) is None and name not in stage.may_be_none]
    if unset:  # a stage that does not do what it declares: a bug in gmv, not a user error
        raise RuntimeError(f"stage {stage.name} should have set {unset}, and did not")
