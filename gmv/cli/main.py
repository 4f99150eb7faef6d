"""`gmv`: the study app — Hydra over conf/ (see conf/config.yaml for what the default study does).

    gmv                                          the default study (digits, guided diffusion, RA1–RA3)
    gmv experiment=smoke generator=stylegan2     the whole pipeline at the smallest sizes
    gmv experiment=paper/cifar10_biggan_cpu data.source=PATH.npz embedder.weights=PATH.th
    gmv -m valuation.k=1,5,10 matcher=pq matcher.m=8,16     a sweep; then `gmv-report multirun/...`

Bad settings stop with `gmv: error: …` and exit status 2 before any training starts.
`-q`/`--quiet` (= `quiet=true`): no progress bars or stage lines, only warnings, errors and the closing
summary; `verbose=true` keeps third-party INFO lines.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from gmv.errors import GmvError
from gmv.generators import register_configs
from gmv.valuation.matchers import register_configs as register_matcher_configs

register_configs()  # the typed `generator=…` options, before Hydra composes
register_matcher_configs()  # and `matcher=…` (gmv.valuation.matchers.MatcherConfig)

#: the config tree: $GMV_CONF, else the one shipped in the package (gmv/conf: in a checkout a link to its
#: conf/, in an installed wheel a copy of it)
CONF_DIR = os.environ.get("GMV_CONF") or str(Path(__file__).parent.parent / "conf")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def app(cfg: DictConfig) -> dict | None:
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from gmv.console import quiet_third_party
    from gmv.pipeline import run_study

    quiet_third_party(bool(cfg.get("verbose", False)), quiet=bool(cfg.get("quiet", False)))
    hc = HydraConfig.get()
    group = None
    if hc.mode == RunMode.MULTIRUN:
        group = str(Path(hc.sweep.dir)).replace(os.sep, "/").removeprefix("multirun/")
    try:
        return run_study(cfg, Path(hc.runtime.output_dir), group=group,
                         generator_name=hc.runtime.choices.get("generator"))
    except GmvError as e:
        print(f"gmv: error: {e}", file=sys.stderr)
        sys.exit(2)


def _quiet_flag(argv: list[str]) -> list[str]:
    """`-q`/`--quiet` are gmv's, not Hydra's: turned into the `quiet=true` override."""
    flags = {"-q", "--quiet"}
    if not flags & set(argv):
        return argv
    return [a for a in argv if a not in flags] + ["quiet=true"]


def main() -> None:
    sys.argv = [sys.argv[0], *_quiet_flag(sys.argv[1:])]
    if not Path(CONF_DIR, "config.yaml").is_file():
        print(f"gmv: error: no config tree at {CONF_DIR}; reinstall gmv (`pip install .`) or set GMV_CONF "
              "to a conf/ folder",
              file=sys.stderr)
        sys.exit(2)
    app()


if __name__ == "__main__":
    main()
