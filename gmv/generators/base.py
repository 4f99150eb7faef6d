"""The contract every generator follows (BigGAN, StyleGAN2, classifier-free guidance diffusion, and
any new one: README.md, "Adding a generator"), written once.

A generator is a `GeneratorModule` (a `lightning.LightningModule`) built from a named preset plus overrides:

    module = BigGAN(n_classes=10, image_size=32, channels=3, preset="cifar10", n_dis=4)

A subclass declares (class attributes)
- `family`: its name in messages ("BigGAN"); `presets`: {name: settings}, the settings a frozen dataclass
  whose field annotations are the settings' types (int, float, bool, str, tuple[int, ...], tuple[float,
  float], float | None), with each field's meaning as a comment; `default_preset`.
- `sampling_fields`: the settings that only change how a *trained* generator samples (guidance w, DDIM
  steps, truncation ψ, …). The pipeline leaves them out of the training cache key, so changing them does
  not retrain; tests/test_generator_contract.py checks that they change the samples but not the training.

A subclass implements
- `check_settings(cfg, image_size) -> list[str]`: what is wrong with resolved, typed settings ([] = fine).
- `networks() -> {name: nn.Module}`: the trained networks ("G", "D"; "UNet"), not their EMA copies.
- `training_step` and `configure_optimizers` (Lightning), and `generate(labels, generator)`.
- where it applies: `real_batches_per_iteration` (BigGAN: n_dis), `lazy_regularisation()` (StyleGAN2).

The base provides
- settings: preset + overrides (None = "the preset's value") are resolved, typed by OmegaConf's structured
  config of the dataclass and checked in `__init__` (`resolve_settings`, also callable on the class), so bad settings
  raise `GmvError` before any network is built.
  `self.config` holds them and `self.preset` the preset's name. The hyper-parameters Lightning saves are
  the data shape, the preset and the overrides as plain values, so `load_from_checkpoint` rebuilds the
  same module and hparams.yaml stays safe to load.
- `training_settings()`, `sampling_settings()`: the effective settings (preset resolved) as plain dicts;
  `batch_size`; `parameter_counts()` → {network: count, …, "total": sum}.
- `check_labels(labels)` (generate: class ids in [0, n_classes)), `batch_labels(y)` (training batches;
  unconditional models train on y = 0), `update_ema(ema, live, decay)` (the one EMA update).
- `iteration`: *generator* iterations (one G update, or one denoiser update), saved in checkpoints; what
  `max_iterations` in the training harness refers to. Do not use `trainer.global_step` for schedules:
  with manual optimisation it counts every optimiser step. No schedule may depend on the training length
  either: a longer run continues a finished shorter one from its checkpoint (gmv/pipeline/train_stage.py).
  Finish each iteration's state changes (EMA, counter) inside `training_step`/`optimizer_step`: the harness
  checkpoints right after them.
- `hydra_schema`: the typed Hydra structured config of the class (built from its settings dataclass;
  `gmv.generators.register_configs` stores it as a `generator=<name>` option).

Training batches are `(x, y)`: x float32 N×C×H×W in [−1, 1], y int64 class ids in [0, n_classes);
n_classes = 1 is unconditional. All training randomness comes from torch's global RNG (the harness
checkpoints and restores it). `generate(labels, generator)` draws images from the EMA weights: float32
N×C×H×W in [−1, 1], a function of the weights and the `torch.Generator`'s state alone.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, ClassVar, List, Mapping, Optional, TypeVar

import lightning as L
import torch
from torch import nn

from gmv.config_utils import plain
from gmv.errors import GmvError

C = TypeVar("C")


# --------------------------------------------------------------------------- settings


def resolve_preset(name: str, presets: Mapping[str, C], overrides: Mapping[str, Any], what: str) -> C:
    """The preset `name` with `overrides` applied; unknown names or fields raise GmvError.

    An override of None means "the preset's value" (the Hydra configs list every field as null)."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if name not in presets:
        raise GmvError(f"unknown {what} preset {name!r}; choose one of {', '.join(sorted(presets))}")
    base = presets[name]
    fields = {f.name for f in dataclasses.fields(base)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise GmvError(f"unknown {what} setting(s) {unknown}; valid settings: {', '.join(sorted(fields))}")
    return dataclasses.replace(base, **dict(overrides))


_EXPECTED = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _fixed_length(tp: Any) -> int | None:
    """n for tuple[X, …, X] of n entries (betas: tuple[float, float]); None for tuple[X, ...] and others."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _fixed_length(inner[0]) if len(inner) == 1 else None
    return len(args) if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis) else None


def coerce_settings(cfg: C, family: str) -> C:
    """Every field of the settings dataclass `cfg` as its annotated type — OmegaConf's structured config of
    the dataclass does the typing ("8" → 8 for an int, 1 → 1.0 for a float, "abc" refused) — with lists back
    to tuples and fixed-length tuples checked; GmvError naming each bad field."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    schema = OmegaConf.structured(type(cfg))
    hints = typing.get_type_hints(type(cfg))
    changes, problems = {}, []
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        try:
            node = OmegaConf.merge(schema, {f.name: _plain_value(value)})[f.name]
        except OmegaConfBaseException as e:
            problems.append(f"{f.name}: {str(e).splitlines()[0]}")
            continue
        typed = tuple(OmegaConf.to_container(node)) if OmegaConf.is_list(node) else node
        n = _fixed_length(hints[f.name])
        if n is not None and typed is not None and len(typed) != n:
            problems.append(f"{f.name} must be a list of {n} values, got {value!r}")
        changes[f.name] = typed
    if problems:
        raise GmvError(f"{family}: " + "; ".join(problems))
    return dataclasses.replace(cfg, **changes)


def _plain_value(value: Any) -> Any:
    """Tuples → lists (YAML-safe hyper-parameters, JSON-like settings)."""
    if isinstance(value, (tuple, list)):
        return [_plain_value(v) for v in value]
    return value


def _hydra_type(tp: Any) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        inner = [a for a in args if a is not type(None)]
        return _hydra_type(inner[0]) if len(inner) == 1 else Any
    if origin is tuple:
        return List[args[0]] if args and args[0] in _EXPECTED else List[Any]
    return tp if tp in _EXPECTED else Any


def settings_schema(cls: type[GeneratorModule]) -> type:
    """The typed Hydra structured config of generator class `cls`: `_target_`, `preset`, and every field
    of its settings dataclass as Optional[type] = None (None: the preset's value). Hydra rejects a value
    of the wrong type (`generator.g_width=abc`) or an unknown name (`generator.g_widht=8`) when it composes."""
    settings_cls = type(next(iter(cls.presets.values())))
    hints = typing.get_type_hints(settings_cls)
    fields: list[tuple[str, Any, Any]] = [
        ("_target_", str, dataclasses.field(default=f"{cls.__module__}.{cls.__qualname__}")),
        ("preset", str, dataclasses.field(default=cls.default_preset)),
    ]
    fields += [(f.name, Optional[_hydra_type(hints[f.name])], dataclasses.field(default=None))
               for f in dataclasses.fields(settings_cls)]
    schema = dataclasses.make_dataclass(f"{cls.__name__}Config", fields)
    # importable as <module>.<Class>.hydra_schema, so a composed config pickles (e.g. for a SLURM launcher)
    schema.__module__, schema.__qualname__ = cls.__module__, f"{cls.__qualname__}.hydra_schema"
    schema.__doc__ = f"Hydra config of {cls.__qualname__}: the settings of {settings_cls.__qualname__}, None = the preset's."
    return schema


# --------------------------------------------------------------------------- EMA and labels


@torch.no_grad()
def update_ema(ema: nn.Module, live: nn.Module, decay: float, *, buffers: str = "copy", anchor: str = "ema") -> None:
    """ema ← decay·ema + (1 − decay)·live for every parameter (decay 0: a copy).

    `buffers`: "copy" (BatchNorm statistics, spectral-norm vectors, running means come from `live`) or
    "average" (floating-point buffers averaged like the parameters, integer ones copied).
    `anchor` picks the floating-point form of the same average — torch.lerp rounds differently with its
    ends swapped — so that every generator trains to the weights it trained to before this helper
    existed (the committed results): "ema" is `ema.lerp_(live, 1 − decay)` (BigGAN, diffusion), "live"
    is `live.lerp(ema, decay)`, the form of StyleGAN2-ADA's code (StyleGAN2).
    """
    if buffers not in ("copy", "average") or anchor not in ("ema", "live"):
        raise ValueError(f"update_ema: buffers must be copy|average and anchor ema|live, got {buffers!r}, {anchor!r}")
    ema_p = list(ema.parameters())
    live_p = [p.detach().to(q.dtype) for p, q in zip(live.parameters(), ema_p, strict=True)]
    if decay == 0.0:
        for q, p in zip(ema_p, live_p):
            q.copy_(p)
    elif anchor == "ema":
        torch._foreach_lerp_(ema_p, live_p, 1.0 - decay)
    else:
        for q, p in zip(ema_p, live_p):
            q.copy_(p.lerp(q, decay))
    for b_ema, b in zip(ema.buffers(), live.buffers(), strict=True):
        if buffers == "average" and b_ema.dtype.is_floating_point and decay != 0.0:
            b_ema.lerp_(b.to(b_ema.dtype), 1.0 - decay)
        else:
            b_ema.copy_(b)


def check_labels(labels: Any, n_classes: int) -> torch.Tensor:
    """`labels` (a tensor, array or list) as a flat int64 tensor of class ids, each in [0, n_classes)."""
    y = torch.as_tensor(labels).long().reshape(-1)
    if y.numel() and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise GmvError(f"class ids must lie in [0, {n_classes}) for this {n_classes}-class generator, "
                       f"got values {int(y.min())}…{int(y.max())}")
    return y


# --------------------------------------------------------------------------- the module


class GeneratorModule(L.LightningModule):
    """Base class: data shape, settings, iteration counter, labels, EMA and sampling entry point."""

    family: ClassVar[str] = "generator"
    presets: ClassVar[Mapping[str, Any]] = {}
    default_preset: ClassVar[str] = "tiny"
    sampling_fields: ClassVar[frozenset[str]] = frozenset()
    hydra_schema: ClassVar[type | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.presets:
            cls.hydra_schema = settings_schema(cls)

    def __init__(self, n_classes: int, image_size: int, channels: int, preset: str | None = None, **overrides: Any):
        super().__init__()
        if n_classes < 1:
            raise GmvError(f"n_classes must be ≥ 1, got {n_classes}")
        if channels not in (1, 3):
            raise GmvError(f"channels must be 1 or 3, got {channels}")
        self.n_classes = int(n_classes)
        self.image_size = int(image_size)
        self.channels = int(channels)
        self.register_buffer("_iteration", torch.zeros((), dtype=torch.long), persistent=True)
        self.config: Any = None
        self.preset: str | None = None
        if not self.presets:  # a bare module (e.g. a test double) with no settings
            if preset is not None or overrides:
                raise GmvError(f"{type(self).__name__} has no presets; got preset={preset!r}, {sorted(overrides)}")
            return
        self.preset = str(preset or self.default_preset)
        self.config = self.resolve_settings(self.image_size, self.preset, **overrides)
        given = sorted(k for k, v in overrides.items() if v is not None)
        self.save_hyperparameters({"n_classes": self.n_classes, "image_size": self.image_size,
                                   "channels": self.channels, "preset": self.preset,
                                   **{k: _plain_value(getattr(self.config, k)) for k in given}})

    @classmethod
    def resolve_settings(cls, image_size: int, preset: str | None = None, **overrides: Any) -> Any:
        """The settings `__init__` would use, without building anything: preset + overrides (None = the
        preset's value) coerced to the dataclass's types and checked; GmvError when they are bad."""
        given = {k: plain(v) for k, v in overrides.items() if v is not None}
        cfg = coerce_settings(resolve_preset(str(preset or cls.default_preset), cls.presets, given, cls.family),
                              cls.family)
        problems = cls.check_settings(cfg, int(image_size))
        if problems:
            raise GmvError(f"{cls.family}: " + "; ".join(problems))
        return cfg

    @classmethod
    def check_settings(cls, cfg: Any, image_size: int) -> list[str]:
        """Problems of the resolved, typed settings `cfg` for images of `image_size` ([] = fine)."""
        return []

    # --- settings -------------------------------------------------------------------------------

    def settings(self) -> dict[str, Any]:
        """Every effective setting (the preset with the overrides) as plain values."""
        if self.config is None:
            return {}
        return {f.name: _plain_value(getattr(self.config, f.name)) for f in dataclasses.fields(self.config)}

    def training_settings(self) -> dict[str, Any]:
        """The effective settings that determine the trained weights (all but `sampling_fields`)."""
        return {k: v for k, v in self.settings().items() if k not in self.sampling_fields}

    def sampling_settings(self) -> dict[str, Any]:
        """The effective settings that only change how the trained generator samples."""
        return {k: v for k, v in self.settings().items() if k in self.sampling_fields}

    @property
    def batch_size(self) -> int:
        """The real batch size the data loader should use (the settings' `batch_size`)."""
        if self.config is None:
            raise GmvError(f"{type(self).__name__} has no settings, so no batch size")
        return int(self.config.batch_size)

    @property
    def real_batches_per_iteration(self) -> int:
        """Real batches one generator iteration consumes (BigGAN: n_dis)."""
        return 1

    def lazy_regularisation(self) -> dict[str, int]:
        """{name: interval}: regularisers that run only at iterations where iteration % interval == 0."""
        return {}

    def networks(self) -> dict[str, nn.Module]:
        """The trained networks by the paper's names ("G", "D"; "UNet"), without their EMA copies."""
        raise NotImplementedError(f"{type(self).__name__} does not list its networks")

    def parameter_counts(self) -> dict[str, int]:
        counts = {name: sum(p.numel() for p in net.parameters()) for name, net in self.networks().items()}
        return {**counts, "total": sum(counts.values())}

    # --- iterations, labels, sampling -------------------------------------------------------------

    @property
    def iteration(self) -> int:
        return int(self._iteration.item())

    def _advance_iteration(self) -> None:
        self._iteration += 1

    def check_labels(self, labels: Any) -> torch.Tensor:
        """Labels to sample: a flat int64 tensor of class ids in [0, n_classes), else GmvError."""
        return check_labels(labels, self.n_classes)

    def batch_labels(self, y: torch.Tensor) -> torch.Tensor:
        """A training batch's labels: class ids, or all 0 for an unconditional model (any labels given)."""
        if self.n_classes == 1:
            return torch.zeros_like(y, dtype=torch.long)
        return check_labels(y, self.n_classes)

    @torch.inference_mode()
    def generate(self, labels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Images float32 N×C×H×W in [−1, 1] for the given class ids, from the EMA weights."""
        raise NotImplementedError
