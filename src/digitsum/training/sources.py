"""What a run learns from: MNIST's training images (less validation's) with any extra labelled digits
(``--extra-digits``, extra.py) and its bank of synthetic non-digits (negatives.py), and the weights it
starts from (``--init``, fresh by default).

Every rank reads the same files. config.json records each extra file with its digest and the
starting weights with theirs, and a resumed run refuses extra digits that changed since it started.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from ..checkpoint import load_checkpoint
from ..config import ModelConfig, TrainConfig
from ..errors import CheckpointError, ConfigError
from ..extra import changed_sources, read_extra_digits
from ..mixture import NumberMixture
from ..negatives import BROAD_KINDS, KINDS, training_bank

BUNDLED = "bundled"  # --init's name for the model shipped in the package


def with_extra_digits(train_mix: NumberMixture, cfg: TrainConfig) -> tuple[NumberMixture, list[dict]]:
    """The training mixture with ``cfg.extra_digits`` after MNIST's images (each ``cfg.extra_repeat`` times; the
    epoch order shuffles them in), and what config.json records of each file."""
    if not cfg.extra_digits:
        return train_mix, []
    extra = read_extra_digits(list(cfg.extra_digits))
    images = torch.cat([train_mix.images, extra.images.repeat(cfg.extra_repeat, 1, 1)])  # (N + R*E, 28, 28)
    labels = torch.cat([train_mix.labels, extra.labels.repeat(cfg.extra_repeat)])  # (N + R*E,)
    return NumberMixture(images, labels), list(extra.sources)


def with_bank(train_mix: NumberMixture, cfg: TrainConfig) -> NumberMixture:
    """The training mixture with its bank of synthetic non-digits, when the run trains on them: drawn from the
    run's seed, the same on every rank."""
    if not cfg.negatives:
        return train_mix
    kinds = BROAD_KINDS if cfg.negative_kinds == "broad" else KINDS
    bank = training_bank(train_mix.images, train_mix.labels, cfg.negatives, cfg.seed, kinds)
    return NumberMixture(train_mix.images, train_mix.labels, negatives=bank)


def check_extra_unchanged(config: dict, run_dir: Path) -> None:
    """A resumed run's extra digits must be what it started with (CheckpointError naming those that are not)."""
    changed = changed_sources(config.get("data", {}).get("extra_digits", []))
    if changed:
        raise CheckpointError(f"the extra digits of {run_dir} changed since it started ({', '.join(changed)}): "
                              "put them back as they were, or start a new run")


def init_path(init: str) -> str | None:
    """``--init``'s checkpoint as load_checkpoint takes it (None: the bundled model)."""
    return None if init == BUNDLED else init


def initial_weights(model_cfg: ModelConfig, cfg: TrainConfig) -> tuple[dict[str, torch.Tensor] | None, dict]:
    """(the weights ``cfg.init`` names, or None for a fresh network; what config.json records of them).

    The checkpoint must hold the network ``model_cfg`` describes (ConfigError otherwise)."""
    if not cfg.init:
        return None, {}
    checkpoint = load_checkpoint(init_path(cfg.init))
    theirs = checkpoint.model_config
    if theirs != model_cfg:
        raise ConfigError(f"--init {cfg.init} holds another network ({theirs.arch}, fusion {theirs.fusion}, "
                          f"verdict {theirs.verdict}) than the one to train: give its --arch and --fusion, or "
                          "leave them out")
    state = {k: v.detach().clone() for k, v in checkpoint.model.state_dict().items()}
    digest = hashlib.sha256(b"".join(v.contiguous().numpy().tobytes() for v in state.values())).hexdigest()
    return state, {"init": cfg.init, "init_weights_sha256": digest}
