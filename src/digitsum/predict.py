"""Predictions on people's images: ``load_model()`` returns a Predictor.

A Predictor pairs a backend (a function from normalised images and numbers to ``Logits``:
torch here, or onnxruntime on an .onnx file) with the checkpoint's config, metrics and
calibration. Every image goes through ``preprocess`` to become a 28x28 MNIST-style digit;
``predict_arrays`` is the batched core the others use. Probabilities are calibrated, and each
prediction says whether the image is a digit at all (``is_digit``, with the verdict's probability
behind it), by the calibration's one rule (``Calibration.apply``, calibration.py).
"""

from __future__ import annotations

import copy
import numbers as _numbers
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .calibration import Calibration
from .checkpoint import load_checkpoint
from .errors import ConfigError, InputError
from .evaluate import model_device
from .mixture import normalize
from .model import DigitSumNet, Logits
from .preprocess import load_digit

BATCH_SIZE = 256


@dataclass
class Prediction:
    """What the model read: the digit, the sum, their probabilities, and the 28x28 image it saw."""

    digit: int
    sum: int
    digit_probabilities: list[float]  # 10, calibrated
    sum_probabilities: list[float]  # 19, calibrated
    image: np.ndarray = field(repr=False)  # (28, 28) uint8, light ink on black
    is_digit: bool = True  # False: the image does not look like a digit (digit and sum are then a best guess)
    is_digit_score: float | None = None  # the verdict's score in [0, 1] (novelty.py; None: no verdict head)

    @property
    def digit_probability(self) -> float:
        return self.digit_probabilities[self.digit]

    @property
    def sum_probability(self) -> float:
        return self.sum_probabilities[self.sum]


def check_number(value) -> int:
    """``value`` as an int 0-9; integer strings such as "7" are accepted, anything else is an InputError
    (a ValueError)."""
    number = None
    if isinstance(value, _numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        number = int(value)
    elif isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        number = int(value.strip())
    if number is None or not 0 <= number <= 9:
        raise InputError(f"number must be an integer 0-9, got {value!r}")
    return number


class TorchBackend:
    """A DigitSumNet as a function of numpy arrays: (images, numbers) -> Logits of numpy arrays."""

    def __init__(self, model: DigitSumNet):
        # A copy in channels-last, oneDNN's fastest CPU layout (benchmarks/RESULTS.md, inference section):
        # the caller's model keeps its own mode and memory layout.
        self.model = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)
        self.device = model_device(model)

    def __call__(self, images: np.ndarray, numbers: np.ndarray) -> Logits:
        """images float32 (N, 1, 28, 28) normalised, numbers int64 (N,) -> Logits: (N, 10), (N, 19), and the
        verdict's (N,) for a network with a verdict head (else None)."""
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
            x = x.to(self.device, memory_format=torch.channels_last)  # (N, 1, 28, 28)
            n = torch.from_numpy(np.ascontiguousarray(numbers, dtype=np.int64)).to(self.device)
            outputs = self.model(x, n)
        return Logits(*(None if o is None else o.float().cpu().numpy() for o in outputs))


class Predictor:
    """A model ready for people's images: ``predict``, ``predict_batch`` and ``predict_arrays``."""

    def __init__(self, backend: Callable[[np.ndarray, np.ndarray], Logits],
                 config: dict, metrics: dict, calibration: Calibration | None = None):
        self.backend = backend
        self.config = config
        self.metrics = metrics
        self.calibration = calibration or Calibration()

    def predict(self, image, number) -> Prediction:
        """One image (a path, bytes, a PIL image or a numpy array) and a number 0-9."""
        number = check_number(number)
        return self.predict_arrays(load_digit(image)[None], [number])[0]

    def predict_batch(self, images: Sequence, numbers: Sequence, batch_size: int = BATCH_SIZE) -> list[Prediction]:
        """Many images with their numbers, preprocessed one by one and predicted in batches."""
        if len(images) != len(numbers):
            raise InputError(f"{len(images)} images but {len(numbers)} numbers: give one number per image")
        checked = [check_number(n) for n in numbers]
        digits = np.stack([load_digit(image) for image in images]) if images else _EMPTY
        return self.predict_arrays(digits, checked, batch_size)

    def predict_arrays(self, images28: np.ndarray, numbers: Sequence[int],
                       batch_size: int = BATCH_SIZE) -> list[Prediction]:
        """MNIST-style uint8 images (N, 28, 28) and numbers 0-9 -> one Prediction each, in batches."""
        images28 = np.asarray(images28, dtype=np.uint8)
        numbers = np.asarray(numbers, dtype=np.int64)  # (N,)
        if images28.ndim != 3 or images28.shape[1:] != (28, 28) or len(numbers) != len(images28):
            raise InputError(f"expected uint8 images (N, 28, 28) and N numbers, got {images28.shape} "
                             f"and {numbers.shape}")
        out = []
        for i in range(0, len(images28), batch_size):
            chunk = images28[i : i + batch_size]  # (B, 28, 28)
            x = normalize(torch.from_numpy(chunk)).numpy()  # (B, 1, 28, 28), as in training
            logits = self.backend(x, numbers[i : i + batch_size])  # Logits: (B, 10), (B, 19), (B,) or None
            c = self.calibration.apply(Logits(*(None if t is None else torch.from_numpy(t) for t in logits)),
                                       torch.float64)
            scores = [None] * len(chunk) if c.is_digit_scores is None else c.is_digit_scores.tolist()
            rows = zip(c.digit_probs.argmax(1).tolist(), c.sum_probs.argmax(1).tolist(), c.digit_probs.tolist(),
                       c.sum_probs.tolist(), chunk, c.is_digit.tolist(), scores, strict=True)
            out += [Prediction(d, s, dp, sp, image.copy(), is_digit, score)
                    for d, s, dp, sp, image, is_digit, score in rows]
        return out


_EMPTY = np.zeros((0, 28, 28), dtype=np.uint8)


def _torch_predictor(path, device) -> Predictor:
    checkpoint = load_checkpoint(path, device)
    return Predictor(TorchBackend(checkpoint.inference_model), checkpoint.config, checkpoint.metrics,
                     checkpoint.calibration)


def _onnx_predictor(path, device) -> Predictor:
    """onnxruntime on the CPU, for an .onnx file (``digitsum export`` turns a checkpoint into one)."""
    from .onnx_runtime import open_onnx

    if str(device) != "cpu":
        raise ConfigError(f"the onnx runtime runs on the CPU, not {device}; use device cpu or runtime torch")
    if path is None or Path(path).suffix != ".onnx":
        raise ConfigError(f"the onnx runtime runs .onnx files, and {path or 'the bundled model'} is a checkpoint: "
                          "export it first (digitsum export), or use runtime torch")
    return Predictor(*open_onnx(path))


# The runtimes load_model knows: name -> function (path, device) -> Predictor.
RUNTIMES: dict[str, Callable[[str | os.PathLike | None, str], Predictor]] = {
    "torch": _torch_predictor, "onnx": _onnx_predictor}


def load_model(path: str | os.PathLike | None = None, runtime: str = "torch", device: str = "cpu") -> Predictor:
    """A Predictor for a run directory or .safetensors file, or for the bundled model when ``path`` is None."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r}; use one of: {', '.join(RUNTIMES)}")
    return RUNTIMES[runtime](path, device)
