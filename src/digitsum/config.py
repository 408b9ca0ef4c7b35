"""The task's sizes and the frozen configuration dataclasses: the one home of digitsum's defaults."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

from .errors import ConfigError

NUM_DIGITS, NUM_NUMBERS, NUM_SUMS = 10, 10, 19  # a digit 0-9 and a number 0-9 in; the digit and a sum 0-18 out
BOX, SIDE, CENTRE = 20, 28, 14  # MNIST's digit box, image side and centre-of-mass position, in pixels
ARCHS = ("default", "seed")
FUSIONS = ("product", "concat", "shift")
DEVICES = "cpu, cuda, cuda:N, mps or auto"
LEGACY_MODEL = {"verdict": False}  # what a config.json written before these fields existed meant
LEGACY_TRAIN = {"stretch": 0.0, "negatives": 0.0, "detach_target": False, "negative_kinds": "classic"}


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


@dataclass(frozen=True)
class ModelConfig:
    """The network's shape; enough to rebuild it from a checkpoint."""

    arch: str = "default"
    """``default`` (digitsum's network) or ``seed`` (the notebook's, for comparison)."""
    conv1: int = 16
    """Channels of the first convolution (default architecture)."""
    conv2: int = 32
    """Channels of the second convolution (default architecture)."""
    conv3: int = 64
    """Channels of the third convolution (default architecture)."""
    hidden: int = 128
    """Width of the image features and of the fused layer (default architecture)."""
    embedding: int = 16
    """Size of the number's embedding with ``concat`` fusion (``product`` embeds it in ``hidden``)."""
    fusion: str = "product"
    """How the default architecture's sum head fuses the number: ``product``, ``concat`` or ``shift`` (model.py)."""
    verdict: bool | None = None
    """A head that tells a digit from a non-digit (None: the default network has one, the seed network not)."""

    def __post_init__(self):
        _check(self.arch in ARCHS, f"unknown architecture {self.arch!r}; choose one of {', '.join(ARCHS)}")
        _check(self.fusion in FUSIONS, f"unknown fusion {self.fusion!r}; choose one of {', '.join(FUSIONS)}")
        for name in ("conv1", "conv2", "conv3", "hidden", "embedding"):
            _check(isinstance(getattr(self, name), int) and getattr(self, name) > 0,
                   f"model {name} must be a positive integer, got {getattr(self, name)!r}")
        if self.verdict is None:
            object.__setattr__(self, "verdict", self.arch == "default")
        _check(not (self.verdict and self.arch == "seed"), "the seed network (the notebook's) has no verdict head")

    @classmethod
    def from_dict(cls, values: dict) -> ModelConfig:
        """Rebuild from ``asdict`` output, ignoring unknown keys; a config written before the verdict head
        existed describes a network without one."""
        known = {f.name for f in fields(cls)}
        return cls(**{**LEGACY_MODEL, **{k: v for k, v in values.items() if k in known}})

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TrainConfig:
    """How to train: the defaults are the recipe that meets README's targets."""

    epochs: int = 10
    """Passes over the training images."""
    batch_size: int = 128
    """Images per optimizer step (global: split across processes under torchrun)."""
    lr: float = 4e-3
    """Peak learning rate of the one-cycle schedule (AdamW)."""
    warmup: float = 0.1
    """Share of the run spent warming up to the peak rate (0.1 of 10 epochs: the first epoch)."""
    weight_decay: float = 5e-4
    """AdamW weight decay."""
    label_smoothing: float = 0.1
    """Label smoothing of both cross-entropies."""
    consistency: float = 0.5
    """Weight of the agreement term: KL from the sum implied by the digit head to the sum head."""
    detach_target: bool = False
    """Stop the agreement term's gradient into the digit head (a comparison: objective.digitsum_loss)."""
    max_shift: int = 2
    """Random translation of training images, in pixels (0 disables it)."""
    stretch: float = 0.35
    """Share of training digits stretched toward filling their box, as many scanned digits are (augment.py)."""
    negatives: float = 0.125
    """Synthetic non-digits (negatives.py) added to each batch, as a share of its digits, for the verdict head."""
    negative_kinds: str = "broad"
    """Which non-digits: ``broad`` (negatives.BROAD_KINDS: filled shapes, textures, very thin and very thick
    pens and made-up characters besides the classic ones) or ``classic`` (negatives.KINDS, what runs before
    the broad kinds trained on)."""
    seed: int = 0
    """Seeds the weights, the per-epoch order, numbers and shifts."""
    threads: int = 0
    """CPU threads for torch (0: torch's own choice)."""
    device: str = "cpu"
    """``cpu``, ``cuda``, ``cuda:N``, ``mps`` or ``auto``."""
    limit: int = 0
    """Use only the first N training images (0: all); for smoke tests."""
    val_size: int = 5000
    """Training images held out (the last ones) for per-epoch validation."""
    extra_digits: tuple[str, ...] = ()
    """CSV manifests (``image,digit``) of labelled digits trained on beside MNIST's (extra.py)."""
    extra_repeat: int = 1
    """Times each extra digit appears in an epoch (a few drawings among 55,000 MNIST images need more)."""
    init: str = ""
    """Start from this checkpoint's weights (a run directory, a .safetensors file or ``bundled``); "": fresh."""
    hold_out_pairs: str = ""
    """(digit, number) combinations never trained or validated on, scored apart (pairs.py; "": none)."""

    def __post_init__(self):
        object.__setattr__(self, "extra_digits", tuple(str(p) for p in self.extra_digits))
        _check(self.epochs >= 1, f"--epochs must be at least 1, got {self.epochs}")
        _check(self.batch_size >= 1, f"--batch-size must be at least 1, got {self.batch_size}")
        _check(self.lr > 0, f"--lr must be positive, got {self.lr}")
        _check(0 < self.warmup < 1, f"--warmup must be between 0 and 1 (a share of the run), got {self.warmup}")
        _check(self.weight_decay >= 0, f"--weight-decay must be non-negative, got {self.weight_decay}")
        _check(0 <= self.label_smoothing < 1, f"--label-smoothing must be in [0, 1), got {self.label_smoothing}")
        _check(self.consistency >= 0, f"--consistency must be non-negative, got {self.consistency}")
        _check(0 <= self.max_shift <= 8, f"--max-shift must be 0-8, got {self.max_shift}")
        _check(0 <= self.stretch <= 1, f"--stretch must be in [0, 1] (a share of the digits), got {self.stretch}")
        _check(0 <= self.negatives <= 1, f"--negatives must be in [0, 1] (a share of each batch), got {self.negatives}")
        _check(self.negative_kinds in ("classic", "broad"),
               f"--negative-kinds must be classic or broad, got {self.negative_kinds!r}")
        _check(self.threads >= 0, f"--threads must be non-negative, got {self.threads}")
        _check(self.limit >= 0, f"--limit must be non-negative, got {self.limit}")
        _check(0 < self.val_size < 60000, f"--val-size must be 1-59999, got {self.val_size}")
        _check(self.extra_repeat >= 1, f"--extra-repeat must be at least 1, got {self.extra_repeat}")
        _check(isinstance(self.hold_out_pairs, str), f"--hold-out-pairs must be text, got {self.hold_out_pairs!r}")

    @classmethod
    def from_dict(cls, values: dict) -> TrainConfig:
        """Rebuild from ``asdict`` output, ignoring unknown keys; a run recorded before an option existed
        is read with the value that reproduces it (no stretching, no non-digits)."""
        known = {f.name for f in fields(cls)}
        return cls(**{**LEGACY_TRAIN, **{k: v for k, v in values.items() if k in known}})

    def to_dict(self) -> dict:
        return asdict(self)


# Presets of TrainConfig values: ``digitsum train --recipe NAME`` starts from one, and flags override it.
RECIPES: dict[str, dict] = {
    "default": {},  # the recipe for the best accuracy: the dataclass defaults
    # The fastest to about 99.5% test digit and sum on 2 CPU cores (benchmarks/RESULTS.md, "Time to accuracy"):
    # three epochs of larger batches at a higher peak, milder shifts; no stretching and no non-digits, so the
    # network it trains has no verdict head (every image reads as a digit). It warms up for the default's
    # tenth of the run: a warm-up of 0.15 measured 99.51% / 99.46% against 99.52% / 99.50% (3 seeds each).
    "fast": {"epochs": 3, "batch_size": 256, "lr": 8e-3, "max_shift": 1, "stretch": 0.0, "negatives": 0.0},
    # Fine-tuning a trained network (--init) on a few labelled digits of one style (--extra-digits), with MNIST
    # beside them so that it does not forget: two epochs at a tenth of the default's peak rate, each extra
    # digit seen 20 times an epoch (benchmarks/writers.py, "Fine-tuning on one style").
    "finetune": {"epochs": 2, "lr": 4e-4, "extra_repeat": 20},
}


def pair(model_cfg: ModelConfig, cfg: TrainConfig) -> TrainConfig:
    """The one rule joining a network and its training: a verdict head learns from synthetic non-digits.

    A network with a verdict head needs ``cfg.negatives`` > 0 (a ConfigError otherwise: its verdict
    would learn that everything is a digit); one without trains on none, so ``cfg`` comes back with
    ``negatives`` 0, which config.json records as what the run used.
    """
    _check(not (model_cfg.verdict and cfg.negatives <= 0),
           "a network with a verdict head learns it from synthetic non-digits, and this recipe trains on none "
           "(negatives 0): give negatives > 0, or a network without one (ModelConfig(verdict=False))")
    return cfg if model_cfg.verdict else replace(cfg, negatives=0.0)


def model_for(cfg: TrainConfig, arch: str = ModelConfig.arch, fusion: str = ModelConfig.fusion) -> ModelConfig:
    """The network ``digitsum train`` builds for a recipe: the default one has a verdict head exactly when the
    recipe trains on non-digits (``pair``); the seed network never has one."""
    return ModelConfig(arch=arch, fusion=fusion, verdict=arch == "default" and cfg.negatives > 0)


def recipe(name: str, **overrides) -> TrainConfig:
    """The TrainConfig of recipe ``name`` (a key of RECIPES), with ``overrides`` on top."""
    _check(name in RECIPES, f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    return TrainConfig(**{**RECIPES[name], **overrides})
