"""Training settings: one dataclass, filled from defaults, then a YAML file, then command-line flags."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from maskdetect.faces.crop import CropPolicy
from maskdetect.fileio import atomic_write_text
from maskdetect.models import list_models

BALANCE_CHOICES = ("sampler", "loss", "none")
DEVICE_CHOICES = ("auto", "cpu", "cuda")


@dataclass
class TrainConfig:
    """Everything a training run depends on; saved beside the run as ``config.yaml``.

    >>> TrainConfig(data="tree", out="run", model="small_cnn").balance
    'sampler'
    """

    data: str = ""  # the split tree: data/{train,validation}/{covered,incorrect,uncovered}/
    out: str = ""  # the run directory: checkpoints, metrics.jsonl, config.yaml
    model: str = "mobilenet_v2"
    pretrained: bool = False
    freeze_backbone: bool = False  # resnet50 only: train the head alone
    input_size: int = 160
    # The crop policy's scale, recorded in checkpoints. None: the one the tree's marker records (1.3
    # for a tree without one); a value that contradicts the marker is refused before training.
    crop_scale: float | None = None
    epochs: int = 10
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.05
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    # Share of training crops turned grey: CCTV at night (infrared) and old photos have no colour.
    grayscale: float = 0.05
    balance: str = "sampler"
    patience: int = 3  # epochs without a better validation loss before stopping; 0 = never stop early
    seed: int = 0
    deterministic: bool = False
    amp: bool = True  # mixed precision, CUDA only
    channels_last: bool = True  # CUDA only
    workers: int = 1
    threads: int = 0  # torch CPU threads; 0 = the cores left after the loader workers
    save_every: int = 50  # optimizer steps between resumable snapshots (and one each epoch)
    device: str = "auto"

    def validate(self) -> None:
        """Check every value before any time is spent; raise ValueError naming the bad one."""
        if not self.data:
            raise ValueError("no split tree given (--data DIR)")
        if not self.out:
            raise ValueError("no run directory given (--out DIR)")
        if self.model not in list_models():
            raise ValueError(f"unknown model {self.model!r}; choices: {', '.join(list_models())}")
        if self.balance not in BALANCE_CHOICES:
            raise ValueError(f"unknown balance {self.balance!r}; choices: {', '.join(BALANCE_CHOICES)}")
        if self.device not in DEVICE_CHOICES:
            raise ValueError(f"unknown device {self.device!r}; choices: {', '.join(DEVICE_CHOICES)}")
        if self.freeze_backbone and self.model != "resnet50":
            raise ValueError(f"freeze_backbone applies to resnet50 only, not {self.model!r}")
        for name, low in [("input_size", 8), ("epochs", 1), ("batch_size", 1), ("save_every", 1)]:
            if getattr(self, name) < low:
                raise ValueError(f"{name} must be at least {low}, got {getattr(self, name)}")
        from maskdetect.preprocess import INPUT_SIZE_RANGE  # here: preprocess imports torch

        low, high = INPUT_SIZE_RANGE  # what a checkpoint may claim: a run must not train one no one loads
        if self.input_size > high:
            raise ValueError(f"input_size must be from {low} to {high}, got {self.input_size}")
        for name in ("workers", "threads", "patience", "warmup_epochs", "weight_decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.crop_scale is not None:
            CropPolicy(scale=self.crop_scale)  # the policy's own range check names a bad scale
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if not 0 <= self.label_smoothing < 1:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if not 0 <= self.grayscale <= 1:
            raise ValueError(f"grayscale must be in [0, 1], got {self.grayscale}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def model_kwargs(self) -> dict[str, Any]:
        """Extra constructor options for the chosen architecture."""
        return {"freeze_backbone": True} if self.freeze_backbone else {}


def config_keys() -> list[str]:
    """The names a YAML config may use (dashes or underscores).

    >>> "batch_size" in config_keys()
    True
    """
    return [f.name for f in fields(TrainConfig)]


def coerce_settings(settings: dict[str, Any], source: str) -> dict[str, Any]:
    """Check names and convert values to the types TrainConfig declares.

    Raises:
        ValueError: an unknown key (the message lists the valid ones) or a value of the wrong type.
    """
    types = {f.name: f.type for f in fields(TrainConfig)}
    coerced = {}
    for raw_key, value in settings.items():
        key = str(raw_key).replace("-", "_")
        if key not in types:
            raise ValueError(f"{source}: unknown setting {raw_key!r}; valid settings: {', '.join(types)}")
        coerced[key] = _convert(value, types[key], f"{source}: setting {raw_key!r}")
    return coerced


def _convert(value: Any, type_name: str, where: str) -> Any:
    if type_name.endswith(" | None"):
        if value is None:
            return None
        type_name = type_name.removesuffix(" | None")
    if type_name == "bool":
        if isinstance(value, bool):
            return value
        raise ValueError(f"{where} must be true or false, got {value!r}")
    converter = {"int": int, "float": float, "str": str}[type_name]
    if isinstance(value, bool) or value is None or isinstance(value, (list, dict)):
        raise ValueError(f"{where} must be a {type_name}, got {value!r}")
    try:
        converted = converter(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where} must be a {type_name}, got {value!r}") from None
    if type_name == "int" and isinstance(value, float) and value != converted:
        raise ValueError(f"{where} must be a whole number, got {value!r}")
    return converted


def read_yaml_settings(path: str | os.PathLike) -> dict[str, Any]:
    """Read a YAML mapping of settings, checked and converted.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not YAML, not a mapping, or an unknown key / bad value (named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such config file")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: expected a mapping of settings, got {type(loaded).__name__}")
    return coerce_settings(loaded, str(path))


def build_config(*layers: dict[str, Any]) -> TrainConfig:
    """Defaults, overridden by each layer in turn (later wins); the result is validated.

    >>> build_config({"data": "t", "out": "r", "model": "small_cnn"}, {"epochs": 2}).epochs
    2
    """
    merged: dict[str, Any] = {}
    for layer in layers:
        merged.update(coerce_settings(layer, "settings"))
    config = TrainConfig(**merged)
    config.validate()
    return config


def load_train_config(
    settings: dict[str, Any], *, config_file: str | os.PathLike | None = None, resume: bool = False
) -> TrainConfig:
    """Defaults < the run's saved config.yaml (with `resume`) < `config_file` < `settings`.

    Args:
        settings: TrainConfig fields given explicitly (e.g. command-line flags); None values are ignored.
        config_file: a YAML file of settings.
        resume: continue the run in `settings["out"]`: its saved config.yaml is the base.

    Raises:
        ValueError: `resume` without `out`, or a bad setting (named). FileNotFoundError: no saved config.

    >>> load_train_config({"data": "t", "out": "r", "model": "small_cnn", "epochs": 2, "lr": None}).epochs
    2
    """
    given = {name: value for name, value in settings.items() if value is not None}
    layers: list[dict[str, Any]] = []
    if resume:
        if "out" not in given:
            raise ValueError("--resume needs --out, the run directory to continue")
        saved = Path(given["out"]) / "config.yaml"
        if not saved.is_file():
            raise FileNotFoundError(f"{saved}: no saved config; is {given['out']} a run directory?")
        layers.append(read_yaml_settings(saved))
    if config_file:
        layers.append(read_yaml_settings(config_file))
    layers.append(given)
    return build_config(*layers)


def save_config(config: TrainConfig, path: str | os.PathLike) -> None:
    """Write the settings as YAML (atomically), so a run can be repeated or resumed."""
    atomic_write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
