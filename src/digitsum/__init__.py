"""digitsum: an MNIST image and a number 0-9 in; the digit and digit + number out."""

__version__ = "0.1.0"

from .checkpoint import Checkpoint, CheckpointError, load_checkpoint  # noqa: E402
from .config import ModelConfig, TrainConfig  # noqa: E402
from .model import DigitSumNet, build_model  # noqa: E402
from .predict import Prediction, load_model  # noqa: E402

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "DigitSumNet",
    "ModelConfig",
    "Prediction",
    "TrainConfig",
    "__version__",
    "build_model",
    "load_checkpoint",
    "load_model",
]
