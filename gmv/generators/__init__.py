"""Generators: BigGAN, StyleGAN2 and classifier-free guidance diffusion as Lightning modules that follow
one contract (`gmv.generators.base.GeneratorModule`).

`GENERATORS` names them for Hydra: `register_configs()` stores each one's typed structured config
(`GeneratorModule.hydra_schema`, built from its settings dataclass) as the option `generator=<name>`,
so a value of the wrong type or a misspelt setting is refused when Hydra composes, before anything
runs. The `gmv` app registers them at import; code that composes gmv's config tree itself
(`hydra.initialize_config_dir` + `compose`) calls `register_configs()` first.
"""

from __future__ import annotations

#: config name → generator class (`_target_`); a new generator adds one line here
GENERATORS = {
    "biggan": "gmv.generators.biggan.BigGAN",
    "stylegan2": "gmv.generators.stylegan2.StyleGAN2",
    "cfg_diffusion": "gmv.generators.cfg_diffusion.CFGDiffusion",
}


def register_generator(name: str, cls) -> None:
    """Store generator class `cls`'s typed config as the Hydra option `generator=<name>`."""
    from hydra.core.config_store import ConfigStore

    if getattr(cls, "hydra_schema", None) is None:
        raise TypeError(f"{cls.__name__} has no hydra_schema: a GeneratorModule with presets has one")
    ConfigStore.instance().store(group="generator", name=name, node=cls.hydra_schema)


def register_configs() -> None:
    """Register every generator in `GENERATORS` with Hydra's ConfigStore (idempotent)."""
    from hydra.utils import get_class

    for name, target in GENERATORS.items():
        register_generator(name, get_class(target))
