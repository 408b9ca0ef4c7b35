"""Checkpoints as safetensors + JSON: save a model, and the one loader everything uses.

A checkpoint is a ``model.safetensors`` (weights only) with a ``config.json`` beside
it holding at least ``{"model": ModelConfig}``; a run directory also holds
``metrics.json`` and ``calibration.json`` (temperatures and the verdict's threshold; an older
checkpoint without it predicts uncalibrated), and ``novelty.safetensors`` + ``novelty.json``: the
verdict's rule (novelty.py; an older checkpoint without them keeps the head's verdict). Nothing is
ever unpickled.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from .calibration import Calibration
from .config import ModelConfig
from .errors import CheckpointError, ConfigError
from .files import CALIBRATION, CONFIG, METRICS, WEIGHTS, atomic_write_bytes, read_bytes, read_json
from .model import DigitSumNet, build_model
from .novelty import THRESHOLD, Novelty, load_novelty, with_novelty


@dataclass
class Checkpoint:
    """A loaded model with the JSON that describes it."""

    model: DigitSumNet
    config: dict
    model_config: ModelConfig  # the network config.json describes (its "model" entry), as built
    metrics: dict = field(default_factory=dict)
    path: Path | None = None
    calibration: Calibration = field(default_factory=Calibration)
    novelty: Novelty | None = None  # the verdict's rule (None: the head's own verdict)

    @property
    def inference_model(self) -> torch.nn.Module:
        """The model with the checkpoint's verdict rule: what predict, evaluate and export run."""
        return with_novelty(self.model, self.novelty)


def bundled_path() -> Path:
    """The folder of the pretrained model shipped inside the package."""
    return Path(str(resources.files("digitsum") / "weights"))


def save_weights(model: torch.nn.Module, path: str | os.PathLike) -> None:
    """Write the model's weights (only) as safetensors, atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(path, save_safetensors(state))


def _resolve(path: str | os.PathLike | None) -> tuple[Path, Path]:
    """(weights file, config file) for a run directory, a .safetensors file or the bundle."""
    path = bundled_path() if path is None else Path(path)
    if path.suffix == ".onnx":
        raise CheckpointError(f"{path} is an ONNX file, not a checkpoint: use --runtime onnx to run it")
    if path.is_dir():
        return path / WEIGHTS, path / CONFIG
    if path.suffix == ".safetensors" or path.exists():
        return path, path.parent / CONFIG
    raise CheckpointError(f"checkpoint {path} not found: give a run directory or a .safetensors file")


def load_state(path: Path) -> dict[str, torch.Tensor]:
    """Read a safetensors file into a state dict (CheckpointError if corrupt)."""
    try:
        return load_safetensors(read_bytes(path, "checkpoint weights"))
    except (SafetensorError, ValueError) as error:
        raise CheckpointError(f"checkpoint weights {path} are corrupt ({error})") from None


def read_config(path: str | os.PathLike | None = None) -> tuple[dict, ModelConfig]:
    """(config.json, the network it describes) of a run directory, a .safetensors file or the bundle, without
    reading the weights."""
    return _read_config(_resolve(path)[1])


def _read_config(config_path: Path) -> tuple[dict, ModelConfig]:
    config = read_json(config_path, "checkpoint config")
    try:
        return config, ModelConfig.from_dict(config.get("model", {}))
    except (ConfigError, TypeError) as error:
        raise CheckpointError(f"checkpoint config {config_path}: {error}") from None


def load_checkpoint(path: str | os.PathLike | None = None, device: torch.device | str = "cpu") -> Checkpoint:
    """Load a model for inference from a run directory, a .safetensors file, or the bundle."""
    weights, config_path = _resolve(path)
    config, model_config = _read_config(config_path)
    model = build_model(model_config)
    state = load_state(weights)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[1:2] or [str(error)]
        raise CheckpointError(
            f"checkpoint weights {weights} do not match its config ({model_config.arch} architecture): "
            f"{first[0].strip()}"
        ) from None
    metrics_path = config_path.parent / METRICS
    metrics = read_json(metrics_path, "checkpoint metrics") if metrics_path.is_file() else {}
    model.to(device).eval()
    calibration = read_calibration(config_path.parent / CALIBRATION)
    novelty = load_novelty(config_path.parent) if model.has_verdict else None
    if novelty is not None:  # the rule's logit replaces the head's: is_digit_score >= 0.5
        novelty.to(device)
        calibration = replace(calibration, is_digit_threshold=THRESHOLD)
    return Checkpoint(model, config, model_config, metrics, weights, calibration, novelty)


def read_calibration(path: Path) -> Calibration:
    """calibration.json (CheckpointError if malformed), or the neutral Calibration when there is none."""
    if not path.is_file():
        return Calibration()
    try:
        return Calibration.from_dict(read_json(path, "checkpoint calibration"))
    except TypeError as error:
        raise CheckpointError(f"checkpoint calibration {path} is malformed ({error})") from None
