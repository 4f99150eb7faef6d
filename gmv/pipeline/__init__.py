"""The study pipeline: split → train → generate → embed → match → value → analyse → report.

`gmv.pipeline.study.run_study(cfg, run_dir)` runs one study from a Hydra config (conf/); the console
command `gmv` (gmv/cli/main.py) is the Hydra app around it. Stages whose inputs did not change are
reused from `cache_dir` (gmv/cache.py); the stages are listed in gmv/pipeline/study.py.
"""

from gmv.pipeline.study import run_study

__all__ = ["run_study"]
