"""Config values as plain Python, shared by gmv/pipeline, gmv/generators and gmv/training.

Hydra hands configs over as OmegaConf nodes (`DictConfig`, `ListConfig`); everything gmv hashes,
saves in a checkpoint or passes to a library is plain dicts, lists and scalars. Importing this
module imports nothing else: omegaconf is only touched when a node is actually given.
"""

from __future__ import annotations

from typing import Any


def plain(value: Any) -> Any:
    """An OmegaConf node as plain Python containers (interpolations resolved); anything else as it is."""
    if hasattr(value, "_metadata"):  # DictConfig / ListConfig
        from omegaconf import OmegaConf

        return OmegaConf.to_container(value, resolve=True)
    return value
