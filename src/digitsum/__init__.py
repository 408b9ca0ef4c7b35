"""digitsum: an MNIST image and a number 0-9 in; the digit and digit + number out.

The public API: ``load_model`` (a Predictor with ``predict`` and ``predict_batch``), the
networks and their configs, checkpoints, and the errors digitsum raises on bad input
(``DigitsumError`` and its kinds, in ``digitsum.errors``).
"""

__version__ = "0.1.0"

from .checkpoint import Checkpoint, load_checkpoint  # noqa: E402
from .config import ModelConfig, TrainConfig  # noqa: E402
from .errors import CheckpointError, DigitsumError, ImageError  # noqa: E402
from .model import DigitSumNet, build_model  # noqa: E402
from .predict import Prediction, load_model  # noqa: E402

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "DigitSumNet",
    "DigitsumError",
    "ImageError",
    "ModelConfig",
    "Prediction",
    "TrainConfig",
    "__version__",
    "build_model",
    "load_checkpoint",
    "load_model",
]
